//! The auditor's report, produced with read-only access: no Secrets, no cluster-admin.

use std::process::Command;

use berth_e2e::{TestRepo, TestTenant, binary, in_namespace, token_kubeconfig};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn an_auditor_with_read_only_access_gets_every_decision() {
    in_namespace("audit", |cp, admin, ns| async move {
        let tenant = TestTenant::provision(cp, &admin, "team-audit", &ns.name).await;
        let repo = TestRepo::new();
        repo.write(
            "pod.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: root}\nspec:\n  containers:\n  - {name: app, image: 'registry.example/app:1', securityContext: {privileged: true}}\n",
        );
        let revision = repo.commit("privileged pod");
        assert_eq!(tenant.run_once(&repo.file_url(), &[]).status.code(), Some(2));

        // The auditor: a ServiceAccount bound to deploy/rbac/berth-auditor.yaml only.
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/rbac/berth-auditor.yaml"))?;
        let role: ClusterRole = serde_saphyr::from_str(&text)?;
        Api::<ClusterRole>::all(admin.clone())
            .patch("berth-auditor", &PatchParams::apply("berth-e2e").force(), &Patch::Apply(&role))
            .await?;
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "auditor"}}))?;
        Api::<ServiceAccount>::namespaced(admin.clone(), &ns.name).create(&PostParams::default(), &sa).await?;
        let binding_name = format!("{}-auditor", ns.name);
        let binding: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": {"name": binding_name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "berth-auditor"},
            "subjects": [{"kind": "ServiceAccount", "name": "auditor", "namespace": ns.name}],
        }))?;
        let bindings = Api::<ClusterRoleBinding>::all(admin.clone());
        bindings.create(&PostParams::default(), &binding).await?;
        let (kubeconfig, token) = token_kubeconfig(cp, &admin, &ns.name, "auditor").await;

        // Read-only indeed: Secrets are out of reach.
        let auditor = cp.token_client(&token).await?;
        let secrets = Api::<Secret>::namespaced(auditor, &ns.name).list(&Default::default()).await;
        assert!(matches!(secrets, Err(kube::Error::Api(ref s)) if s.code == 403), "{secrets:?}");

        let out_dir = tempfile::tempdir()?;
        let out = Command::new(binary("berth-operator"))
            .args(["report", "--output-dir"])
            .arg(out_dir.path())
            .env_clear()
            .env("KUBECONFIG", kubeconfig.path())
            .output()?;
        bindings.delete(&binding_name, &DeleteParams::default()).await?;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

        let html = std::fs::read_to_string(out_dir.path().join("audit.html"))?;
        assert!(html.contains(&format!("Revision <code>{revision}</code>")), "{html}");
        assert!(html.contains("<code>pod-security/no-privileged</code>"), "{html}");
        assert!(html.contains("container app runs privileged"), "{html}");
        assert!(html.contains("<a href=\"#tenant-team-audit\">team-audit</a>"), "{html}");
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out_dir.path().join("audit.json"))?)?;
        let decision = json["decisions"]
            .as_array()
            .and_then(|d| d.iter().find(|d| d["tenant"] == "team-audit"))
            .expect("team-audit decision");
        assert_eq!(decision["revision"], revision.as_str());
        assert!(decision["policy_bundle"].as_str().is_some_and(|b| b.starts_with("sha256:")));
        let csv = std::fs::read_to_string(out_dir.path().join("audit.csv"))?;
        assert!(csv.contains("\"no-privileged\",\"fail\""), "{csv}");
        Ok(())
    })
    .await;
}
