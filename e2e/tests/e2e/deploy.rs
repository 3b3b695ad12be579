//! `deploy/operator/rbac.yaml` is enough: an operator holding only that identity onboards a
//! tenant from the platform repository (namespaces, RBAC with member roles, quota, limits,
//! network policy, agent token, policy) up to Ready, and offboards it.

use std::time::Duration;

use berth_e2e::{
    TestOperator, TestRepo, in_namespace, install_crds, tenant_document, token_kubeconfig,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;

use crate::support::{eventually, tenant_ready};

const NAMESPACE: &str = "berth-system";

#[tokio::test]
async fn the_shipped_operator_rbac_is_enough_to_onboard_and_offboard() {
    in_namespace("deploy", |cp, admin, test| async move {
        install_crds(&admin).await;
        let rbac = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/operator/rbac.yaml");
        let applied = cp.kubectl().args(["apply", "-f", rbac]).status()?;
        assert!(applied.success(), "kubectl apply {rbac}");
        let (kubeconfig, _) = token_kubeconfig(cp, &admin, NAMESPACE, "berth-operator").await;

        let tenant = format!("{}-t", test.name);
        let tenant_repo = TestRepo::new();
        tenant_repo.write("config.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hello}\ndata: {from: git}\n");
        tenant_repo.commit("hello");
        let platform_repo = TestRepo::new();
        let spec = format!(
            "  source: {{url: '{}', interval: 5s}}\n  quota: {{pods: '5'}}\n  limits: {{default: {{cpu: 100m}}}}\n  members: [{{kind: Group, name: devs, role: admin}}]\n",
            tenant_repo.file_url()
        );
        platform_repo.write(&format!("tenants/{tenant}.yaml"), tenant_document(NAMESPACE, &tenant, &spec));
        platform_repo.commit("onboard");
        let cache = tempfile::tempdir()?;
        let _operator = TestOperator::start_as(
            kubeconfig.path(),
            NAMESPACE,
            cache.path(),
            &TestOperator::platform_args(&platform_repo.file_url()),
        );
        tenant_ready(&admin, &tenant, Duration::from_secs(90)).await?;
        assert!(Api::<ConfigMap>::namespaced(admin.clone(), &tenant).get_opt("hello").await?.is_some());

        platform_repo.remove(&format!("tenants/{tenant}.yaml"));
        platform_repo.commit("offboard");
        let namespaces = Api::<Namespace>::all(admin.clone());
        eventually("the namespace to be gone", Duration::from_secs(120), || async {
            matches!(namespaces.get_opt(&tenant).await, Ok(None)).then_some(())
        })
        .await?;
        Ok(())
    })
    .await;
}
