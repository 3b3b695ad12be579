//! What the operator provisions for a Tenant (`berth-operator render`, applied as is) holds on
//! the real API server: the agent (whose identity lives in its own namespace) is confined to
//! the tenant's namespaces and its own, cannot raise its own privileges or touch its quota,
//! reads only its policy, and the quota is enforced.

use std::time::Duration;

use berth_e2e::{TestNamespace, in_namespace, provision_tenant, token_kubeconfig};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ResourceQuota, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{eventually, status_code};

#[tokio::test]
async fn provisioned_rbac_quota_and_policy_access_hold_on_the_api_server() {
    in_namespace("provision", |cp, admin, platform| async move {
        // The tenant's own namespaces are created by the rendered objects.
        let tenant = format!("{}-t", platform.name);
        let (primary, second) = (format!("{tenant}-a"), format!("{tenant}-b"));
        provision_tenant(
            cp,
            &format!(
                "apiVersion: berth.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: {tenant}}}\nspec:\n  namespaces: [{primary}, {second}]\n  source: {{url: 'https://git.example.com/t.git'}}\n  quota: {{pods: '1'}}\n  members: [{{kind: User, name: alice, role: view}}]\n"
            ),
            &platform.name,
        );
        let home = berth_engine::api::agent_namespace(&tenant);
        let cleanup = [primary.clone(), second.clone(), home.clone()].map(|name| TestNamespace { name });

        let policy_name = format!("berth-policy-{tenant}");
        let policy = ConfigMap {
            metadata: ObjectMeta { name: Some(policy_name.clone()), ..ObjectMeta::default() },
            ..ConfigMap::default()
        };
        Api::<ConfigMap>::namespaced(admin.clone(), &platform.name).create(&PostParams::default(), &policy).await?;

        let (_, token) = token_kubeconfig(cp, &admin, &home, "berth-agent").await;
        let agent = cp.token_client(&token).await?;
        let config_map = |name: &str| ConfigMap {
            metadata: ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() },
            ..ConfigMap::default()
        };
        // Writes in both of the tenant's namespaces, nowhere else.
        for ns in [&primary, &second] {
            let api = Api::<ConfigMap>::namespaced(agent.clone(), ns);
            eventually("the agent's Role to take effect", Duration::from_secs(30), || async {
                api.create(&PostParams::default(), &config_map("ok")).await.ok()
            })
            .await?;
        }
        let foreign = Api::<ConfigMap>::namespaced(agent.clone(), &platform.name)
            .create(&PostParams::default(), &config_map("no"))
            .await;
        assert_eq!(status_code(&foreign), Some(403), "{foreign:?}");
        // In its own namespace: its status and reports, but none of the tenant's kinds.
        let at_home = Api::<ConfigMap>::namespaced(agent.clone(), &home)
            .create(&PostParams::default(), &config_map("no"))
            .await;
        assert_eq!(status_code(&at_home), Some(403), "{at_home:?}");

        // It reads its policy ConfigMap and nothing more there; it cannot change it.
        let policies = Api::<ConfigMap>::namespaced(agent.clone(), &platform.name);
        assert!(policies.get(&policy_name).await.is_ok());
        let tamper = policies
            .patch(&policy_name, &PatchParams::default(), &Patch::Merge(json!({"data": {"x": "y"}})))
            .await;
        assert_eq!(status_code(&tamper), Some(403));

        // No way to more privileges: binding cluster-admin, or touching its quota.
        let escalate: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "escalate"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "berth-agent", "namespace": home}],
        }))?;
        let bound = Api::<RoleBinding>::namespaced(agent.clone(), &primary).create(&PostParams::default(), &escalate).await;
        assert_eq!(status_code(&bound), Some(403), "{bound:?}");
        let quota = Api::<ResourceQuota>::namespaced(agent.clone(), &primary)
            .delete("berth-quota", &DeleteParams::default())
            .await;
        assert_eq!(status_code(&quota), Some(403));

        // The member's view role and the quota work as declared.
        let can_i = cp
            .kubectl()
            .args(["auth", "can-i", "list", "pods", "--namespace", &second, "--as", "alice"])
            .output()?;
        assert_eq!(String::from_utf8_lossy(&can_i.stdout).trim(), "yes");
        let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), &primary);
        eventually("the default ServiceAccount", Duration::from_secs(30), || async {
            accounts.get_opt("default").await.ok().flatten()
        })
        .await?;
        let quotas = Api::<ResourceQuota>::namespaced(admin.clone(), &primary);
        eventually("the quota to be counted", Duration::from_secs(60), || async {
            quotas.get("berth-quota").await.ok()?.status?.hard.filter(|h| h.contains_key("pods"))
        })
        .await?;
        let pod = |name: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": {
                "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}))
            .expect("pod")
        };
        let pods = Api::<Pod>::namespaced(admin.clone(), &primary);
        pods.create(&PostParams::default(), &pod("first")).await?;
        let over = pods.create(&PostParams::default(), &pod("second")).await;
        assert_eq!(status_code(&over), Some(403), "{over:?}");

        for ns in cleanup {
            ns.delete(&admin).await;
        }
        Ok(())
    })
    .await;
}
