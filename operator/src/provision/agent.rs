//! The tenant's agent as Kubernetes objects (`--agent-mode deployment`): a locked-down
//! Deployment running as the tenant's ServiceAccount, and the copy of the tenant's Git
//! credentials it mounts. Also the credential flags both agent modes pass. Pure functions.

use std::collections::BTreeMap;

use berth_engine::api::Tenant;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use serde_json::json;

use super::{AGENT, ProvisionError, TENANT_LABEL, policy_config_map_name, typed};

/// The copy of the tenant's credentials in its primary namespace, mounted by its agent.
pub const AGENT_GIT_SECRET: &str = "berth-agent-git";
/// Where the Deployment mounts the credentials.
const CREDENTIALS_DIR: &str = "/etc/berth/git";
/// glibc allocator settings for agents: at most two arenas, and freed memory handed back to
/// the system sooner. An idle agent then keeps about 16 MiB of its own memory instead of 20
/// (measured on the release build); with one agent per tenant that adds up.
pub const AGENT_MALLOC_ENV: [(&str, &str); 2] = [
    ("MALLOC_ARENA_MAX", "2"),
    ("MALLOC_TRIM_THRESHOLD_", "131072"),
];
/// Port of the agent's `/metrics`, `/healthz` and `/readyz`.
const METRICS_PORT: u16 = 8080;

/// Secret keys (Flux's names) holding files, and the agent flag that takes each file.
const CREDENTIAL_FILES: [(&str, &str); 4] = [
    ("password", "--password-file"),
    ("identity", "--ssh-key"),
    ("known_hosts", "--known-hosts"),
    ("ca.crt", "--ca-file"),
];
/// Secret key holding the HTTPS user name (a value, passed as `BERTH_GIT_USERNAME`).
pub const USERNAME_KEY: &str = "username";

/// How agents run as Deployments.
#[derive(Clone, Debug)]
pub struct DeploymentSettings {
    pub image: String,
    /// This cluster's name, selecting per-cluster branch/path overrides.
    pub cluster: String,
}

/// The flags giving an agent the credential files in `dir`, for the keys the tenant's Secret
/// has; refuses combinations the agent would refuse, naming the Secret.
pub fn credential_flags<'a>(
    secret: &str,
    keys: impl IntoIterator<Item = &'a String>,
    dir: &str,
) -> Result<Vec<String>, ProvisionError> {
    let keys: Vec<&String> = keys.into_iter().collect();
    let has = |key: &str| keys.iter().any(|k| k.as_str() == key);
    let invalid = |reason: &str| ProvisionError::Credentials {
        secret: secret.to_owned(),
        reason: reason.to_owned(),
    };
    if has("password") != has(USERNAME_KEY) {
        return Err(invalid("`username` and `password` go together"));
    }
    if has("identity") != has("known_hosts") {
        return Err(invalid("`identity` and `known_hosts` go together"));
    }
    Ok(CREDENTIAL_FILES
        .iter()
        .filter(|(key, _)| has(key))
        .flat_map(|(key, flag)| [(*flag).to_owned(), format!("{dir}/{key}")])
        .collect())
}

/// The agent's `run` arguments for the tenant, in either mode: its repository, branch and path
/// for `cluster`, its namespaces and kinds, and its policy copy.
pub fn agent_args(
    tenant: &Tenant,
    cluster: &str,
    operator_namespace: &str,
    cache_dir: &str,
    metrics_addr: &str,
) -> Vec<String> {
    let name = tenant.name_any();
    let (branch, path) = tenant.source_for(cluster);
    let mut args = vec![
        "run".to_owned(),
        "--tenant".into(),
        name.clone(),
        "--namespace".into(),
        tenant.namespaces().join(","),
        "--repo".into(),
        tenant.spec.source.url.clone(),
        "--branch".into(),
        branch,
        "--path".into(),
        path,
        "--interval".into(),
        tenant.spec.source.interval.clone(),
        "--cache-dir".into(),
        cache_dir.to_owned(),
        "--metrics-addr".into(),
        metrics_addr.to_owned(),
        "--policy-configmap".into(),
        format!("{operator_namespace}/{}", policy_config_map_name(&name)),
    ];
    if !tenant.spec.allowed_kinds.is_empty() {
        args.push("--allowed-kind".into());
        args.push(tenant.spec.allowed_kinds.join(","));
    }
    args
}

/// The tenant's credentials copied into its primary namespace (the Secret the platform keeps
/// in the operator's namespace is out of the agent's reach).
pub fn agent_secret(tenant: &Tenant, source: &Secret) -> Result<Secret, ProvisionError> {
    let name = tenant.metadata.name.clone().ok_or(ProvisionError::NoName)?;
    typed(
        "Secret",
        json!({
            "metadata": {"name": AGENT_GIT_SECRET, "namespace": tenant.primary_namespace(),
                "labels": {TENANT_LABEL: name, "app.kubernetes.io/managed-by": "berth"}},
            "type": "Opaque",
            "data": source.data.clone().unwrap_or_default(),
        }),
    )
}

/// The agent's Deployment: one replica (none while suspended), replaced rather than rolled so
/// two agents of a tenant never run at once, non-root, read-only root filesystem, no privilege
/// escalation, every capability dropped, bounded resources, the tenant's ServiceAccount.
pub fn agent_deployment(
    tenant: &Tenant,
    settings: &DeploymentSettings,
    operator_namespace: &str,
    credentials: Option<&Secret>,
) -> Result<Deployment, ProvisionError> {
    let name = tenant.metadata.name.clone().ok_or(ProvisionError::NoName)?;
    let mut args = agent_args(
        tenant,
        &settings.cluster,
        operator_namespace,
        "/var/cache/berth",
        &format!("0.0.0.0:{METRICS_PORT}"),
    );
    let mut env: Vec<serde_json::Value> = AGENT_MALLOC_ENV
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    let mut mounts = vec![
        json!({"name": "cache", "mountPath": "/var/cache/berth"}),
        json!({"name": "tmp", "mountPath": "/tmp"}),
    ];
    let mut volumes = vec![
        json!({"name": "cache", "emptyDir": {"sizeLimit": "1Gi"}}),
        json!({"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}),
    ];
    if let Some(secret) = credentials {
        let keys = secret.data.as_ref().map(|d| d.keys().collect::<Vec<_>>());
        args.extend(credential_flags(
            AGENT_GIT_SECRET,
            keys.unwrap_or_default(),
            CREDENTIALS_DIR,
        )?);
        if secret
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key(USERNAME_KEY))
        {
            env.push(
                json!({"name": "BERTH_GIT_USERNAME", "valueFrom": {"secretKeyRef":
                {"name": AGENT_GIT_SECRET, "key": USERNAME_KEY}}}),
            );
        }
        mounts.push(json!({"name": "git", "mountPath": CREDENTIALS_DIR, "readOnly": true}));
        volumes.push(json!({"name": "git", "secret":
            {"secretName": AGENT_GIT_SECRET, "defaultMode": 0o440}}));
    }
    let labels = BTreeMap::from([
        (TENANT_LABEL, name.as_str()),
        ("app.kubernetes.io/name", AGENT),
        ("app.kubernetes.io/managed-by", "berth"),
    ]);
    let probe =
        |path: &str| json!({"httpGet": {"path": path, "port": METRICS_PORT}, "periodSeconds": 10});
    typed(
        "Deployment",
        json!({
            "metadata": {"name": AGENT, "namespace": tenant.primary_namespace(), "labels": labels},
            "spec": {
                "replicas": if tenant.spec.suspend { 0 } else { 1 },
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": {TENANT_LABEL: name, "app.kubernetes.io/name": AGENT}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": AGENT,
                        "securityContext": {
                            "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                            "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [{
                            "name": "agent",
                            "image": settings.image,
                            "args": args,
                            "env": env,
                            "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
                            "livenessProbe": probe("/healthz"),
                            "readinessProbe": probe("/readyz"),
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "64Mi"},
                                "limits": {"cpu": "500m", "memory": "256Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": false,
                                "readOnlyRootFilesystem": true,
                                "runAsNonRoot": true,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": mounts,
                        }],
                        "volumes": volumes,
                    },
                },
            },
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

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
    fn the_agent_runs_locked_down_as_the_tenants_service_account() {
        let d = agent_deployment(&tenant(TEAM_A), &settings(), "berth-system", None).unwrap();
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(v["metadata"]["namespace"], "team-a");
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
        assert_eq!(c["resources"]["limits"]["memory"], "256Mi");
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
        let d = agent_deployment(&t, &settings(), "berth-system", None).unwrap();
        assert_eq!(d.spec.replicas, Some(0));
    }

    #[test]
    fn credentials_are_mounted_and_passed_as_files() {
        let s = secret(&["username", "password", "ca.crt"]);
        let d = agent_deployment(&tenant(TEAM_A), &settings(), "berth-system", Some(&s)).unwrap();
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
            v["spec"]["template"]["spec"]["volumes"][2]["secret"]["secretName"],
            AGENT_GIT_SECRET
        );
        let copy = agent_secret(&tenant(TEAM_A), &s).unwrap();
        assert_eq!(copy.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(copy.data.unwrap().len(), 3);
    }

    #[test]
    fn incomplete_credentials_are_refused_with_the_secret_named() {
        let keys = ["password".to_owned()];
        let error = credential_flags("team-a-git", &keys, "/d").unwrap_err();
        assert_eq!(
            error.to_string(),
            "credentials Secret team-a-git: `username` and `password` go together"
        );
        let keys = ["identity".to_owned(), "known_hosts".to_owned()];
        assert_eq!(
            credential_flags("s", &keys, "/d").unwrap(),
            [
                "--ssh-key",
                "/d/identity",
                "--known-hosts",
                "/d/known_hosts"
            ]
        );
    }
}
