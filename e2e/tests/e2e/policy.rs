//! The default policy library end to end: a repository breaking every rule is refused and each
//! rule is named in the PolicyReport and the auditor's HTML report; the platform's own policy,
//! distributed as a ConfigMap the tenant cannot change, replaces it, and a broken update is
//! refused while the previous bundle stays (with none at all, nothing is applied).

use std::process::Command;

use berth_e2e::{TestNamespace, TestRepo, TestTenant, binary, in_namespace, token_kubeconfig};
use berth_engine::api::{SyncResult, TenantSync};
use berth_engine::policy::config_map::{BUNDLE_KEY, DATA_KEY};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// A pod template compliant with every rule; `extra` is merged into the container.
fn workload(
    kind: &str,
    name: &str,
    labels: &str,
    container_extra: &str,
    pod_extra: &str,
) -> String {
    format!(
        r#"---
apiVersion: apps/v1
kind: {kind}
metadata:
  name: {name}
  labels: {{{labels}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      securityContext: {{runAsNonRoot: true, runAsUser: 10001}}
      {pod_extra}
      containers:
      - name: app
        image: ghcr.io/acme/app:1.2.3
        securityContext: {{allowPrivilegeEscalation: false{container_extra}}}
        resources: {{requests: {{cpu: 10m, memory: 16Mi}}, limits: {{cpu: 100m, memory: 64Mi}}}}
"#
    )
}

const LABELS: &str = "app.kubernetes.io/name: x, team: a";

fn every_rule_broken() -> String {
    let mut repo = String::new();
    repo += &workload("Deployment", "privileged", LABELS, ", privileged: true", "");
    repo += &workload(
        "Deployment",
        "host-path",
        LABELS,
        "",
        "volumes: [{name: h, hostPath: {path: /var}}]",
    );
    repo += &workload(
        "Deployment",
        "host-network",
        LABELS,
        "",
        "hostNetwork: true",
    );
    repo += &workload("StatefulSet", "escalation", LABELS, "", "").replace(
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: true",
    );
    repo += &workload("DaemonSet", "root", LABELS, ", runAsUser: 0", "");
    repo += &workload(
        "Deployment",
        "caps",
        LABELS,
        ", capabilities: {add: [SYS_ADMIN]}",
        "",
    );
    repo += &workload("Deployment", "docker-hub", LABELS, "", "")
        .replace("ghcr.io/acme/app:1.2.3", "nginx:1.27");
    repo += &workload("Deployment", "latest", LABELS, "", "").replace("app:1.2.3", "app:latest");
    repo += &workload("Deployment", "no-resources", LABELS, "", "").replace(
        "resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 100m, memory: 64Mi}}",
        "resources: {}",
    );
    repo += &workload("Deployment", "unlabelled", "team: a", "", "");
    repo += &workload("Deployment", "no-team", "app.kubernetes.io/name: x", "", "");
    repo += "---\napiVersion: v1\nkind: Service\nmetadata: {name: np, labels: {team: a}}\nspec: {type: NodePort, ports: [{port: 80}]}\n";
    repo += "---\napiVersion: v1\nkind: Service\nmetadata: {name: lb, labels: {team: a}}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n";
    repo += "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: editors, labels: {team: a}}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}\nsubjects: [{kind: ServiceAccount, name: default, namespace: other}]\n";
    repo
}

/// Rules a tenant repository can break (the tenancy namespace and scope rules sit behind the
/// guard rails; the agent test proves them with the guard rails off).
const RULES: [&str; 14] = [
    "tenancy/no-powerful-rolebinding",
    "pod-security/no-privileged",
    "pod-security/no-host-path",
    "pod-security/no-host-namespaces",
    "pod-security/no-privilege-escalation",
    "pod-security/run-as-non-root",
    "pod-security/no-added-capabilities",
    "images/allowed-registries",
    "images/pinned-image",
    "resources/requests-and-limits",
    "services/no-node-port",
    "services/no-load-balancer",
    "labels/required-labels",
    "labels/recommended-name-label",
];

fn policy_data() -> &'static str {
    r#"{"params": {"allowed_registries": ["ghcr.io/acme"], "required_labels": ["team"]}}"#
}

async fn reports(client: &Client, ns: &str) -> Vec<serde_json::Value> {
    Api::<DynamicObject>::namespaced_with(client.clone(), ns, &berth_engine::report::resource())
        .list(&ListParams::default())
        .await
        .expect("PolicyReports")
        .items
        .iter()
        .map(|r| serde_json::to_value(r).expect("json"))
        .collect()
}

#[tokio::test]
async fn a_repository_breaking_every_rule_is_refused_and_each_rule_is_named() {
    in_namespace("every-rule", |cp, admin, ns| async move {
        let tenant = TestTenant::provision(cp, &admin, "team-rules", &ns.name).await;
        let repo = TestRepo::new();
        repo.write("all.yaml", every_rule_broken());
        repo.commit("breaks every rule");
        let data = tempfile::NamedTempFile::new()?;
        std::fs::write(data.path(), policy_data())?;
        let data_path = data.path().to_string_lossy().into_owned();
        let out = tenant.run_once(&repo.file_url(), &["--policy-data", &data_path]);
        assert_eq!(out.status.code(), Some(2));
        let sync = Api::<TenantSync>::namespaced(admin.clone(), &tenant.home)
            .get("berth")
            .await?;
        assert_eq!(
            sync.status.as_ref().map(|s| s.result),
            Some(SyncResult::Refused)
        );

        let reports = reports(&admin, &tenant.home).await;
        assert_eq!(reports.len(), 1);
        let named: Vec<String> = reports[0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r["policy"].as_str().unwrap(),
                    r["rule"].as_str().unwrap()
                )
            })
            .collect();
        let out_dir = tempfile::tempdir()?;
        let audit = Command::new(binary("berth-operator"))
            .args(["report", "--output-dir"])
            .arg(out_dir.path())
            .env_clear()
            .env("KUBECONFIG", &cp.kubeconfig)
            .output()?;
        assert!(
            audit.status.success(),
            "{}",
            String::from_utf8_lossy(&audit.stderr)
        );
        let html = std::fs::read_to_string(out_dir.path().join("audit.html"))?;
        for rule in RULES {
            assert!(
                named.contains(&rule.to_owned()),
                "{rule} missing from the PolicyReport: {named:?}"
            );
            assert!(
                html.contains(&format!("<code>{rule}</code>")),
                "{rule} missing from the HTML report"
            );
        }
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn the_platforms_policy_configmap_is_used_and_a_broken_update_keeps_the_previous_one() {
    in_namespace("platform-policy", |cp, admin, ns| async move {
        let platform = TestNamespace::create(&admin, "berth-system").await?;
        let tenant = TestTenant::provision(cp, &admin, "team-pp", &ns.name).await;
        let bundle = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/bundle.tar.gz"))?;
        let policies = Api::<ConfigMap>::namespaced(admin.clone(), &platform.name);
        let policy = ConfigMap {
            metadata: ObjectMeta { name: Some("policy-team-pp".into()), ..ObjectMeta::default() },
            binary_data: Some([(BUNDLE_KEY.to_owned(), ByteString(bundle))].into()),
            data: Some([(DATA_KEY.to_owned(), r#"{"params": {"profile": "restricted", "required_labels": ["team"]}}"#.to_owned())].into()),
            ..ConfigMap::default()
        };
        policies.create(&PostParams::default(), &policy).await?;
        // The agent may read exactly this ConfigMap, nothing else there.
        let role: Role = serde_json::from_value(json!({
            "metadata": {"name": "read-policy-team-pp"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["policy-team-pp"], "verbs": ["get"]}],
        }))?;
        Api::<Role>::namespaced(admin.clone(), &platform.name).create(&PostParams::default(), &role).await?;
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "read-policy-team-pp"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-policy-team-pp"},
            "subjects": [{"kind": "ServiceAccount", "name": "berth-agent", "namespace": tenant.home}],
        }))?;
        Api::<RoleBinding>::namespaced(admin.clone(), &platform.name).create(&PostParams::default(), &binding).await?;
        let reference = format!("{}/policy-team-pp", platform.name);
        let flags = ["--policy-configmap", reference.as_str()];

        // The platform's data (required label "team") decides.
        let repo = TestRepo::new();
        repo.write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n");
        repo.commit("unlabelled");
        assert_eq!(tenant.run_once(&repo.file_url(), &flags).status.code(), Some(2));
        let status = Api::<TenantSync>::namespaced(admin.clone(), &tenant.home).get("berth").await?.status.unwrap_or_default();
        assert_eq!(status.refused.first().map(|r| r.rule.as_str()), Some("required-labels"));
        let good_bundle = status.policy_bundle.clone();
        assert!(good_bundle.is_some());

        // The tenant's agent cannot change the platform's policy.
        let (_, token) = token_kubeconfig(cp, &admin, &tenant.home, "berth-agent").await;
        let as_agent = Api::<ConfigMap>::namespaced(cp.token_client(&token).await?, &platform.name);
        let tamper = as_agent
            .patch("policy-team-pp", &PatchParams::default(), &Patch::Merge(json!({"data": {DATA_KEY: "{}"}})))
            .await;
        assert!(matches!(tamper, Err(kube::Error::Api(ref s)) if s.code == 403), "{tamper:?}");

        // A corrupt update is refused; the previous bundle keeps deciding.
        policies
            .patch("policy-team-pp", &PatchParams::default(), &Patch::Merge(json!({"binaryData": {BUNDLE_KEY: "bm90IGEgYnVuZGxl"}})))
            .await?;
        repo.write("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, labels: {team: a}}\n");
        repo.commit("labelled");
        assert_eq!(tenant.run_once(&repo.file_url(), &flags).status.code(), Some(0));
        let status = Api::<TenantSync>::namespaced(admin.clone(), &tenant.home).get("berth").await?.status.unwrap_or_default();
        assert_eq!(status.policy_bundle, good_bundle);
        let message = status.policy_message.unwrap_or_default();
        assert!(message.starts_with("policy update refused, previous bundle kept"), "{message}");

        // With no valid bundle at all, nothing is applied: the gate fails closed.
        let second = TestNamespace::create(&admin, "no-policy").await?;
        let orphan = TestTenant::provision(cp, &admin, "team-none", &second.name).await;
        let missing = format!("{}/does-not-exist", platform.name);
        assert_eq!(orphan.run_once(&repo.file_url(), &["--policy-configmap", &missing]).status.code(), Some(1));
        let status = Api::<TenantSync>::namespaced(admin.clone(), &orphan.home).get("berth").await?.status.unwrap_or_default();
        assert!(status.message.starts_with("no valid policy bundle, nothing is applied"), "{}", status.message);
        assert!(Api::<ConfigMap>::namespaced(admin.clone(), &second.name).get_opt("settings").await?.is_none());
        second.delete(&admin).await;
        platform.delete(&admin).await;
        Ok(())
    })
    .await;
}
