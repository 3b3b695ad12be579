//! One policy at admission too: writes to a tenant's namespaces that do not come from its agent
//! are checked by the operator's validating webhook with the tenant's own policy bundle and
//! data (denials name the rule, are counted and recorded in the tenant's signed PolicyReport);
//! Pods meet Kubernetes' Pod Security admission first, which enforces the same profile; the
//! same objects from Git are refused by the agent. With the webhook down, writes to tenant
//! namespaces fail closed while kube-system and the operator's namespace keep working.

use std::process::Output;
use std::time::Duration;

use berth_e2e::{
    ControlPlane, TestOperator, TestRepo, in_namespace, install_crds, tenant_document,
};
use berth_engine::api::{SyncResult, Tenant, TenantSync, agent_namespace};
use berth_engine::report::{PolicyReport, SOURCE_ADMISSION, verify};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::support::{eventually, service_account_token, tenant_ready};

/// `kubectl apply -f -` of `yaml` as `user` (the admin impersonating them).
fn apply_as(cp: &ControlPlane, user: &str, namespace: &str, yaml: &str) -> Output {
    use std::io::Write;
    let mut child = cp
        .kubectl()
        .args([
            "apply",
            "--namespace",
            namespace,
            "--as",
            user,
            "--as-group",
            "system:authenticated",
            "-f",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("writing");
    child.wait_with_output().expect("kubectl")
}

const PRIVILEGED: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: privileged, labels: {team: a}}\nspec:\n  containers:\n  - {name: app, image: 'registry.example/app:1', securityContext: {privileged: true}}\n";
const HOST_PATH: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: host-path, labels: {team: a}}\nspec:\n  volumes: [{name: root, hostPath: {path: /}}]\n  containers:\n  - {name: app, image: 'registry.example/app:1', volumeMounts: [{name: root, mountPath: /host}]}\n";
const HOST_NETWORK: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: host-network, labels: {team: a}}\nspec:\n  hostNetwork: true\n  containers:\n  - {name: app, image: 'registry.example/app:1'}\n";
/// A Pod Kubernetes' restricted Pod Security admits, without the label the tenant's policy
/// requires: only Berth's webhook refuses it.
const UNLABELLED_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: unlabelled}\nspec:\n  securityContext: {runAsNonRoot: true, runAsUser: 10001, seccompProfile: {type: RuntimeDefault}}\n  containers:\n  - name: app\n    image: 'registry.example/app:1.2.3'\n    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}\n    resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 100m, memory: 64Mi}}\n";

/// The same pod template in a Deployment (Pod Security admission checks Pods only).
fn deployment_of(pod: &str, name: &str) -> String {
    let spec = pod
        .split_once("spec:\n")
        .map(|(_, s)| s)
        .unwrap_or_default();
    let template: String = spec.lines().map(|l| format!("      {l}\n")).collect();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, labels: {{team: a}}}}\nspec:\n  replicas: 0\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}, team: a}}}}\n    spec:\n{template}"
    )
}
const UNLABELLED: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: unlabelled}\nspec:\n  replicas: 0\n  selector: {matchLabels: {app: u}}\n  template:\n    metadata: {labels: {app: u}}\n    spec:\n      containers: [{name: app, image: 'registry.example/app:1'}]\n";
const COMPLIANT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: compliant, labels: {team: a, app.kubernetes.io/name: compliant}}\nspec:\n  replicas: 0\n  selector: {matchLabels: {app: c}}\n  template:\n    metadata: {labels: {app: c, team: a}}\n    spec:\n      securityContext: {runAsNonRoot: true, runAsUser: 10001, seccompProfile: {type: RuntimeDefault}}\n      containers:\n      - name: app\n        image: 'registry.example/app:1.2.3'\n        securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}\n        resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 100m, memory: 64Mi}}\n";

/// A tenant with member alice (`edit`) under the restricted profile with a required label.
async fn onboard(admin: &Client, platform: &str) -> (String, TestRepo, TestRepo) {
    install_crds(admin).await;
    let tenant = format!("{platform}-t");
    let repo = TestRepo::new();
    repo.write(
        "app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, labels: {team: a}}\n",
    );
    repo.commit("app");
    let platform_repo = TestRepo::new();
    let spec = format!(
        "  source: {{url: '{}', interval: 2s}}\n  members: [{{kind: User, name: alice, role: edit}}]\n",
        repo.file_url()
    );
    platform_repo.write(
        &format!("tenants/{tenant}.yaml"),
        tenant_document(platform, &tenant, &spec),
    );
    platform_repo.write(
        &format!("policies/tenants/{tenant}.json"),
        r#"{"params": {"profile": "restricted", "required_labels": ["team"]}}"#,
    );
    platform_repo.commit("onboard");
    (tenant, repo, platform_repo)
}

#[tokio::test]
async fn member_writes_are_checked_at_admission_with_the_tenants_own_policy() {
    in_namespace("admission", |cp, admin, platform| async move {
        let (tenant, repo, platform_repo) = onboard(&admin, &platform.name).await;
        let cache = tempfile::tempdir()?;
        let operator = TestOperator::start_platform(
            cp,
            &platform.name,
            cache.path(),
            &platform_repo.file_url(),
        );
        tenant_ready(&admin, &tenant, Duration::from_secs(120)).await?;

        // Pods: the API server itself (no privileged containers on this cluster) and Pod
        // Security admission, enforcing the tenant's profile, answer before any webhook; they
        // refuse what the policy's pod-security rules refuse.
        for (yaml, refused_by) in [
            (
                PRIVILEGED,
                "privileged: Forbidden: disallowed by cluster policy",
            ),
            (HOST_PATH, "violates PodSecurity"),
        ] {
            let out = apply_as(cp, "alice", &tenant, yaml);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "admitted: {yaml}");
            assert!(stderr.contains(refused_by), "{stderr}");
        }
        // Everything else, Pods included, is Berth's webhook's to refuse, naming the rule.
        let host_network = deployment_of(HOST_NETWORK, "host-network");
        let host_path = deployment_of(HOST_PATH, "host-path");
        for (yaml, rule) in [
            (host_network.as_str(), "pod-security/no-host-namespaces"),
            (host_path.as_str(), "pod-security/no-host-path"),
            (UNLABELLED, "labels/required-labels"),
            (UNLABELLED_POD, "labels/required-labels"),
        ] {
            let out = apply_as(cp, "alice", &tenant, yaml);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "admitted: {yaml}");
            assert!(
                stderr.contains("admission webhook") && stderr.contains("denied the request"),
                "{stderr}"
            );
            assert!(
                stderr.contains(&format!("[{rule}]")),
                "{rule} not named: {stderr}"
            );
        }
        let out = apply_as(cp, "alice", &tenant, COMPLIANT);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        // Counted, and recorded in the tenant's signed report of the hour.
        assert!(
            operator
                .metric("berth_operator_admission_requests_total{result=\"denied\"}")
                .await
                >= 4.0
        );
        assert!(
            operator
                .metric("berth_operator_admission_requests_total{result=\"allowed\"}")
                .await
                >= 1.0
        );
        let home = agent_namespace(&tenant);
        let keys = Api::<Tenant>::all(admin.clone())
            .get(&tenant)
            .await?
            .status
            .unwrap_or_default()
            .report_keys;
        let reports = Api::<kube::api::DynamicObject>::namespaced_with(
            admin.clone(),
            &home,
            &berth_engine::report::resource(),
        );
        let recorded = eventually(
            "the admission denials in the tenant's report",
            Duration::from_secs(30),
            || async {
                for item in reports.list(&ListParams::default()).await.ok()?.items {
                    let report: PolicyReport =
                        serde_json::from_value(serde_json::to_value(item).ok()?).ok()?;
                    let denied: Vec<String> = report
                        .results
                        .iter()
                        .filter(|r| r.source == SOURCE_ADMISSION)
                        .map(|r| format!("{}/{}", r.policy, r.rule))
                        .collect();
                    if denied.len() >= 4 {
                        return Some((report, denied));
                    }
                }
                None
            },
        )
        .await?;
        let (report, denied) = recorded;
        assert!(
            verify(&report, &keys).is_ok(),
            "the admission report is signed with the tenant's key"
        );
        for rule in [
            "pod-security/no-host-namespaces",
            "pod-security/no-host-path",
            "labels/required-labels",
        ] {
            assert!(
                denied.contains(&rule.to_owned()),
                "{rule} not recorded: {denied:?}"
            );
        }
        assert!(
            report
                .results
                .iter()
                .all(|r| r.properties.get("user").map(String::as_str) == Some("alice"))
        );

        // The same objects from Git: refused by the agent, nothing applied.
        repo.write(
            "bad.yaml",
            format!(
                "{PRIVILEGED}---\n{HOST_PATH}---\n{UNLABELLED}---\n{host_network}---\n{host_path}"
            ),
        );
        repo.commit("the same objects through Git");
        let syncs = Api::<TenantSync>::namespaced(admin.clone(), &home);
        let refused = eventually("the agent's refusal", Duration::from_secs(60), || async {
            let status = syncs.get("berth").await.ok()?.status?;
            (status.result == SyncResult::Refused).then_some(status.refused)
        })
        .await?;
        let rules: Vec<String> = refused
            .iter()
            .map(|r| format!("{}/{}", r.policy, r.rule))
            .collect();
        for rule in [
            "pod-security/no-privileged",
            "pod-security/no-host-path",
            "labels/required-labels",
        ] {
            assert!(rules.contains(&rule.to_owned()), "{rule}: {rules:?}");
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn with_the_webhook_down_tenant_namespaces_fail_closed_and_the_rest_keeps_working() {
    in_namespace("admission-down", |cp, admin, platform| async move {
        let (tenant, _repo, platform_repo) = onboard(&admin, &platform.name).await;
        let cache = tempfile::tempdir()?;
        let mut operator = TestOperator::start_platform(cp, &platform.name, cache.path(), &platform_repo.file_url());
        tenant_ready(&admin, &tenant, Duration::from_secs(120)).await?;

        // A writer the webhook does not exempt, allowed to edit the tenant's namespace,
        // kube-system and the operator's namespace.
        let token = service_account_token(&admin, &platform.name, "writer").await?;
        for ns in [tenant.as_str(), "kube-system", platform.name.as_str()] {
            let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(json!({
                "metadata": {"name": format!("{}-writer", platform.name)},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
                "subjects": [{"kind": "ServiceAccount", "name": "writer", "namespace": platform.name}],
            }))?;
            Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin.clone(), ns).create(&PostParams::default(), &binding).await?;
        }
        let writer = cp.token_client(&token).await?;
        let config_map = |name: &str| -> ConfigMap {
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"team": "a"}}})).expect("ConfigMap")
        };
        let name = format!("{}-probe", platform.name);
        // Up: admitted (once the webhook has the tenant's policy loaded).
        eventually("a write admitted while the webhook is up", Duration::from_secs(60), || async {
            Api::<ConfigMap>::namespaced(writer.clone(), &tenant)
                .create(&PostParams::default(), &config_map("while-up"))
                .await
                .ok()
        })
        .await?;

        operator.process.terminate();
        let refused = Api::<ConfigMap>::namespaced(writer.clone(), &tenant).create(&PostParams::default(), &config_map("while-down")).await;
        match refused {
            Err(kube::Error::Api(status)) => assert!(status.message.contains("failed calling webhook"), "{status:?}"),
            other => panic!("a write to the tenant's namespace got through with the webhook down: {other:?}"),
        }
        for ns in ["kube-system", platform.name.as_str()] {
            let api = Api::<ConfigMap>::namespaced(writer.clone(), ns);
            api.create(&PostParams::default(), &config_map(&name)).await?;
            api.delete(&name, &DeleteParams::default()).await?;
        }

        // Back up: admitted again.
        let _operator = TestOperator::start_platform(cp, &platform.name, cache.path(), &platform_repo.file_url());
        eventually("writes admitted again", Duration::from_secs(90), || async {
            Api::<ConfigMap>::namespaced(writer.clone(), &tenant)
                .create(&PostParams::default(), &config_map("after"))
                .await
                .ok()
        })
        .await?;
        Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin.clone(), "kube-system")
            .delete(&format!("{}-writer", platform.name), &DeleteParams::default())
            .await?;
        Ok(())
    })
    .await;
}
