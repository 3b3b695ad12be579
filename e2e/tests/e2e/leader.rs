//! Two operators on one platform: only the leader writes; the leader killed with SIGKILL in
//! the middle of provisioning is replaced by the standby, which converges with every tenant
//! provisioned once, exactly one agent per tenant and none left from the killed operator.

use std::time::Duration;

use berth_e2e::{
    TestOperator, TestRepo, agent_processes, in_namespace, install_crds, tenant_document,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::ListParams;

use crate::support::{eventually, tenant_ready};

const TENANTS: usize = 4;

#[tokio::test]
async fn only_the_leader_acts_and_a_killed_leader_is_replaced_without_duplicates() {
    in_namespace("leader", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let tenant_repo = TestRepo::new();
        tenant_repo.write(
            "config.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hello}\ndata: {from: git}\n",
        );
        tenant_repo.commit("hello");
        let platform_repo = TestRepo::new();
        let names: Vec<String> = (0..TENANTS)
            .map(|i| format!("{}-{i}", platform.name))
            .collect();
        for name in &names {
            let spec = format!(
                "  source: {{url: '{}', interval: 5s}}\n  quota: {{pods: '5'}}\n",
                tenant_repo.file_url()
            );
            platform_repo.write(
                &format!("tenants/{name}.yaml"),
                tenant_document(&platform.name, name, &spec),
            );
        }
        let url = platform_repo.file_url();
        let args = TestOperator::platform_args(&url);
        let (cache_1, cache_2) = (tempfile::tempdir()?, tempfile::tempdir()?);

        // The first operator leads; the second stands by and writes nothing.
        let mut first = TestOperator::start(cp, &platform.name, cache_1.path(), &args);
        eventually(
            "the first operator to lead",
            Duration::from_secs(30),
            || async { (first.metric("berth_operator_leader").await == 1.0).then_some(()) },
        )
        .await?;
        let second = TestOperator::start(cp, &platform.name, cache_2.path(), &args);
        eventually(
            "the second operator to serve metrics",
            Duration::from_secs(30),
            || async {
                berth_e2e::http_get(&second.metrics_addr, "/readyz")
                    .await
                    .filter(|(code, _)| *code == 503)
            },
        )
        .await?;
        let lease = Api::<Lease>::namespaced(admin.clone(), &platform.name)
            .get("berth-operator")
            .await?;
        let holder = lease
            .spec
            .and_then(|s| s.holder_identity)
            .unwrap_or_default();
        assert!(
            holder.ends_with(&format!("-{}", first.pid())),
            "lease held by {holder}"
        );

        // Provisioning starts with a commit; the leader is killed as soon as it is under way.
        platform_repo.commit("onboard");
        let namespaces = Api::<Namespace>::all(admin.clone());
        let ours =
            ListParams::default().labels(&format!("berth.dev/tenant in ({})", names.join(",")));
        eventually("provisioning to start", Duration::from_secs(60), || async {
            let list = namespaces.list(&ours).await.ok()?;
            (!list.items.is_empty()).then_some(())
        })
        .await?;
        assert_eq!(
            second.writes().await,
            0.0,
            "the standby wrote while the other operator led"
        );
        first.process.0.kill()?;
        first.process.0.wait()?;

        // The standby takes over and finishes the job.
        eventually(
            "the second operator to lead",
            Duration::from_secs(30),
            || async { (second.metric("berth_operator_leader").await == 1.0).then_some(()) },
        )
        .await?;
        for name in &names {
            tenant_ready(&admin, name, Duration::from_secs(120)).await?;
        }
        // No duplicates, no orphans: one namespace and one agent per tenant, every agent the
        // second operator's child; the killed operator's agents stopped with it.
        assert_eq!(namespaces.list(&ours).await?.items.len(), TENANTS);
        for name in &names {
            let agents = eventually(
                &format!("one agent for {name}"),
                Duration::from_secs(30),
                || async {
                    let agents = agent_processes(name);
                    (agents.len() == 1).then_some(agents)
                },
            )
            .await?;
            assert_eq!(
                agents[0].1,
                second.pid(),
                "the agent of {name} belongs to the new leader"
            );
        }
        Ok(())
    })
    .await;
}
