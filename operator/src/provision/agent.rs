//! The tenant's agent as Kubernetes objects (`--agent-mode deployment`): a locked-down
//! Deployment in the agent's own namespace running as its ServiceAccount, the copies of the
//! tenant's Git credentials and SOPS age key it reads, and the key it signs reports with (its
//! arguments come from `agent_args`, shared with process mode). Pure functions.

use std::collections::BTreeMap;

use berth_engine::api::{MANAGED_BY, TENANT_LABEL, Tenant};
use berth_engine::render::{AGE_KEY_ENV, AgeKey};
use berth_engine::source::GitFlags;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements,
    SeccompProfile, Secret, SecretKeySelector, SecretVolumeSource, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::agent_args::{AGENT_MALLOC_ENV, AgentPaths, USERNAME_KEY, agent_args, credential_flags};
use super::{AGENT, ProvisionError, meta};

/// The copy of the tenant's credentials in the agent's namespace, mounted by its agent.
pub const AGENT_GIT_SECRET: &str = "berth-agent-git";
/// The copy of the tenant's age identities in the agent's namespace, and its one key.
pub const AGENT_SOPS_SECRET: &str = "berth-agent-sops";
const AGE_KEY_FILE: &str = "age.agekey";
/// Pod-template annotation holding the SHA-256 of the age key: the key reaches the agent
/// through its environment, so a new key must roll the Pod.
const AGE_KEY_DIGEST_ANNOTATION: &str = "berth.dev/age-key-sha256";
/// The tenant's report signing key, in the agent's namespace.
pub const REPORT_KEY_SECRET: &str = "berth-report-key";
/// The key of [`REPORT_KEY_SECRET`] holding the PKCS#8 Ed25519 key.
pub const REPORT_KEY_FILE: &str = "ed25519.pk8";
/// Where the Deployment mounts the credentials and the report key.
const CREDENTIALS_DIR: &str = "/etc/berth/git";
const REPORT_KEY_DIR: &str = "/etc/berth/report-key";
/// Port of the agent's `/metrics`, `/healthz` and `/readyz`.
const METRICS_PORT: i32 = 8080;

/// What the platform handed the tenant's agent from the operator's namespace.
#[derive(Clone, Debug, Default)]
pub struct AgentSecrets {
    /// The tenant's Git credentials Secret.
    pub credentials: Option<Secret>,
    /// The age identities of its decryption Secret.
    pub decryption_key: Option<AgeKey>,
}

/// How agents run as Deployments.
#[derive(Clone, Debug)]
pub struct DeploymentSettings {
    pub image: String,
    /// This cluster's name, selecting per-cluster branch/path overrides.
    pub cluster: String,
}

fn labels(tenant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TENANT_LABEL.to_owned(), tenant.to_owned()),
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
    ])
}

/// A Secret of the agent's namespace.
fn agent_namespace_secret(
    tenant: &Tenant,
    name: &str,
    data: BTreeMap<String, ByteString>,
) -> Secret {
    Secret {
        metadata: meta(name, &tenant.agent_namespace(), &labels(&tenant.name_any())),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// The tenant's credentials and age key copied into the agent's namespace (the Secrets the
/// platform keeps in the operator's namespace are out of the agent's reach, the copies out of
/// the tenant's).
pub fn agent_secrets(tenant: &Tenant, secrets: &AgentSecrets) -> Vec<Secret> {
    let credentials = secrets.credentials.as_ref().map(|source| {
        let data = source.data.clone().unwrap_or_default();
        agent_namespace_secret(tenant, AGENT_GIT_SECRET, data)
    });
    let decryption = secrets.decryption_key.as_ref().map(|key| {
        let data = BTreeMap::from([(
            AGE_KEY_FILE.to_owned(),
            ByteString(key.text().as_bytes().to_vec()),
        )]);
        agent_namespace_secret(tenant, AGENT_SOPS_SECRET, data)
    });
    credentials.into_iter().chain(decryption).collect()
}

fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                ..SecretKeySelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The Secret holding the tenant's report signing key (PKCS#8).
pub fn report_key_secret(tenant: &Tenant, pkcs8: Vec<u8>) -> Secret {
    agent_namespace_secret(
        tenant,
        REPORT_KEY_SECRET,
        BTreeMap::from([(REPORT_KEY_FILE.to_owned(), ByteString(pkcs8))]),
    )
}

fn secret_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn empty_dir(name: &str, size: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(Quantity(size.into())),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn quantities(pairs: [(&str, &str); 2]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
        .collect()
}

/// The agent's Deployment in its own namespace: one replica (none while suspended), replaced
/// rather than rolled so two agents of a tenant never run at once, non-root, read-only root
/// filesystem, no privilege escalation, every capability dropped, bounded resources, the
/// agent's ServiceAccount.
pub fn agent_deployment(
    tenant: &Tenant,
    settings: &DeploymentSettings,
    operator_namespace: &str,
    secrets: &AgentSecrets,
) -> Result<Deployment, ProvisionError> {
    let name = tenant.metadata.name.clone().ok_or(ProvisionError::NoName)?;
    let report_key = format!("{REPORT_KEY_DIR}/{REPORT_KEY_FILE}");
    let metrics_addr = format!("0.0.0.0:{METRICS_PORT}");
    let mut args = agent_args(
        tenant,
        &settings.cluster,
        operator_namespace,
        &AgentPaths {
            cache_dir: "/var/cache/berth",
            metrics_addr: &metrics_addr,
            report_key: &report_key,
        },
    )?;
    let mut env: Vec<EnvVar> = AGENT_MALLOC_ENV
        .iter()
        .map(|(name, value)| EnvVar {
            name: (*name).into(),
            value: Some((*value).into()),
            ..EnvVar::default()
        })
        .collect();
    let mut mounts = vec![
        mount("cache", "/var/cache/berth", false),
        mount("tmp", "/tmp", false),
        mount("report-key", REPORT_KEY_DIR, true),
    ];
    let mut volumes = vec![
        empty_dir("cache", "1Gi"),
        empty_dir("tmp", "256Mi"),
        secret_volume("report-key", REPORT_KEY_SECRET),
    ];
    if let Some(secret) = &secrets.credentials {
        let keys: Vec<&String> = secret.data.iter().flat_map(BTreeMap::keys).collect();
        args.extend(credential_flags(AGENT_GIT_SECRET, keys, CREDENTIALS_DIR)?);
        if secret
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key(USERNAME_KEY))
        {
            let username = secret_env(GitFlags::USERNAME_ENV, AGENT_GIT_SECRET, USERNAME_KEY);
            env.push(username);
        }
        mounts.push(mount("git", CREDENTIALS_DIR, true));
        volumes.push(secret_volume("git", AGENT_GIT_SECRET));
    }
    let mut pod_annotations = BTreeMap::new();
    if let Some(key) = &secrets.decryption_key {
        env.push(secret_env(AGE_KEY_ENV, AGENT_SOPS_SECRET, AGE_KEY_FILE));
        pod_annotations.insert(AGE_KEY_DIGEST_ANNOTATION.to_owned(), key.digest());
    }
    let mut pod_labels = labels(&name);
    pod_labels.insert("app.kubernetes.io/name".into(), AGENT.into());
    let probe = |path: &str| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(METRICS_PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(10),
        ..Probe::default()
    };
    let container = Container {
        name: "agent".into(),
        image: Some(settings.image.clone()),
        args: Some(args),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".into()),
            container_port: METRICS_PORT,
            ..ContainerPort::default()
        }]),
        liveness_probe: Some(probe("/healthz")),
        readiness_probe: Some(probe("/readyz")),
        resources: Some(ResourceRequirements {
            requests: Some(quantities([("cpu", "10m"), ("memory", "64Mi")])),
            // Room for kustomize under its own 512 MiB limit, so an oversized render gets the
            // named error rather than the container being killed.
            limits: Some(quantities([("cpu", "500m"), ("memory", "768Mi")])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    Ok(Deployment {
        metadata: meta(AGENT, &tenant.agent_namespace(), &pod_labels),
        spec: DeploymentSpec {
            replicas: Some(if tenant.spec.suspend { 0 } else { 1 }),
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([
                    (TENANT_LABEL.to_owned(), name.clone()),
                    ("app.kubernetes.io/name".to_owned(), AGENT.to_owned()),
                ])),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: (!pod_annotations.is_empty()).then_some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(AGENT.into()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        run_as_group: Some(65532),
                        fs_group: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(yaml: &str) -> Tenant {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn secret(keys: &[&str]) -> Secret {
        Secret {
            data: Some(
                keys.iter()
                    .map(|k| ((*k).to_owned(), ByteString(b"x".to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    const TEAM_A: &str = "apiVersion: berth.dev/v1alpha1\nkind: Tenant\nmetadata: {name: team-a}\nspec:\n  namespaces: [team-a, team-a-jobs]\n  source: {url: 'https://git.example/a.git', clusters: {prod: {branch: prod}}}\n";

    fn settings() -> DeploymentSettings {
        DeploymentSettings {
            image: "registry.example/berth-agent:0.1.0".into(),
            cluster: "prod".into(),
        }
    }

    #[test]
    fn the_agent_runs_locked_down_in_its_own_namespace() {
        let d = agent_deployment(
            &tenant(TEAM_A),
            &settings(),
            "berth-system",
            &AgentSecrets::default(),
        )
        .unwrap();
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["metadata"]["namespace"], "berth-agent-team-a");
        assert_eq!(v["spec"]["replicas"], 1);
        assert_eq!(v["spec"]["strategy"]["type"], "Recreate");
        let pod = &v["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "berth-agent");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let c = &pod["containers"][0];
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
        assert_eq!(c["resources"]["limits"]["memory"], "768Mi");
        assert_eq!(c["resources"]["requests"]["cpu"], "10m");
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let after = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
        assert_eq!(after("--branch"), "prod", "the cluster's branch");
        assert_eq!(after("--namespace"), "team-a,team-a-jobs");
        assert_eq!(after("--home-namespace"), "berth-agent-team-a");
        assert_eq!(after("--report-key"), "/etc/berth/report-key/ed25519.pk8");
        let volumes = &pod["volumes"];
        assert!(
            volumes
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["secret"]["secretName"] == REPORT_KEY_SECRET),
            "{volumes}"
        );
        assert_eq!(
            after("--policy-configmap"),
            "berth-system/berth-policy-team-a"
        );
        assert!(!args.contains(&"--password-file"));
    }

    #[test]
    fn a_suspended_tenant_has_no_running_agent() {
        let mut t = tenant(TEAM_A);
        t.spec.suspend = true;
        let d =
            agent_deployment(&t, &settings(), "berth-system", &AgentSecrets::default()).unwrap();
        assert_eq!(d.spec.replicas, Some(0));
    }

    #[test]
    fn credentials_are_mounted_and_passed_as_files() {
        let secrets = AgentSecrets {
            credentials: Some(secret(&["username", "password", "ca.crt"])),
            decryption_key: None,
        };
        let d = agent_deployment(&tenant(TEAM_A), &settings(), "berth-system", &secrets).unwrap();
        let v = serde_json::to_value(&d).unwrap();
        let c = &v["spec"]["template"]["spec"]["containers"][0];
        let args = c["args"].to_string();
        assert!(
            args.contains(r#""--password-file","/etc/berth/git/password""#),
            "{args}"
        );
        assert!(
            args.contains(r#""--ca-file","/etc/berth/git/ca.crt""#),
            "{args}"
        );
        let username = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "BERTH_GIT_USERNAME");
        assert_eq!(
            username.unwrap()["valueFrom"]["secretKeyRef"]["key"],
            "username"
        );
        assert_eq!(
            v["spec"]["template"]["spec"]["volumes"][3]["secret"]["secretName"],
            AGENT_GIT_SECRET
        );
        let [copy] = agent_secrets(&tenant(TEAM_A), &secrets).try_into().unwrap();
        assert_eq!(
            copy.metadata.namespace.as_deref(),
            Some("berth-agent-team-a")
        );
        assert_eq!(copy.data.unwrap().len(), 3);
    }

    #[test]
    fn the_age_key_reaches_the_agent_only_through_its_environment_and_rolls_it_when_changed() {
        let with = |identity: &str| {
            let key = AgeKey::parse(identity).unwrap();
            let secrets = AgentSecrets {
                credentials: None,
                decryption_key: Some(key),
            };
            let d = agent_deployment(&tenant(TEAM_A), &settings(), "berth-system", &secrets);
            (d.unwrap(), agent_secrets(&tenant(TEAM_A), &secrets))
        };
        let (d, copies) = with("AGE-SECRET-KEY-1AAAA");
        let v = serde_json::to_value(&d).unwrap();
        let c = &v["spec"]["template"]["spec"]["containers"][0];
        let env = c["env"].as_array().unwrap();
        let key = env.iter().find(|e| e["name"] == AGE_KEY_ENV).unwrap();
        assert_eq!(key["valueFrom"]["secretKeyRef"]["name"], AGENT_SOPS_SECRET);
        assert!(!v.to_string().contains("AGE-SECRET-KEY"), "{v}");
        assert_eq!(copies.len(), 1);
        assert_eq!(copies[0].metadata.name.as_deref(), Some(AGENT_SOPS_SECRET));
        let annotation = |d: &Deployment| {
            let meta = d.spec.template.metadata.as_ref().unwrap();
            meta.annotations.as_ref().unwrap()[AGE_KEY_DIGEST_ANNOTATION].clone()
        };
        let (other, _) = with("AGE-SECRET-KEY-1BBBB");
        assert_ne!(annotation(&d), annotation(&other));
    }
}
