//! An API server outage under a running operator and its agent: both back off (a bounded
//! number of connection attempts in 20 seconds, not a tight loop) and both converge once it
//! returns — the agent applies the commit made during the outage, the Tenant is Ready again.
//! The outage is played by a proxy in front of the shared API server.

use std::net::SocketAddr;
use std::time::Duration;

use berth_e2e::{OutageProxy, TestOperator, TestRepo, in_namespace, install_crds, tenant_document};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;

use crate::support::{eventually, tenant_ready};

const OUTAGE: Duration = Duration::from_secs(20);

fn config_map(version: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app}}\ndata: {{version: '{version}'}}\n"
    )
}

#[tokio::test]
async fn operator_and_agent_back_off_during_an_outage_and_converge_after() {
    in_namespace("outage", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let tenant = format!("{}-t", platform.name);
        let repo = TestRepo::new();
        repo.write("app.yaml", config_map("1"));
        repo.commit("v1");
        let platform_repo = TestRepo::new();
        let spec = format!("  source: {{url: '{}', interval: 2s}}\n", repo.file_url());
        platform_repo.write(
            &format!("tenants/{tenant}.yaml"),
            tenant_document(&platform.name, &tenant, &spec),
        );
        platform_repo.commit("onboard");

        // The operator (and so its agent) reaches the API server through the proxy.
        let server: SocketAddr = cp
            .admin_config()
            .await?
            .cluster_url
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default()
            .parse()?;
        let proxy = OutageProxy::start(server).await;
        let kubeconfig = tempfile::NamedTempFile::new()?;
        let text = std::fs::read_to_string(&cp.kubeconfig)?
            .replace(&server.to_string(), &proxy.addr.to_string());
        std::fs::write(kubeconfig.path(), text)?;
        let cache = tempfile::tempdir()?;
        let url = platform_repo.file_url();
        let mut args = TestOperator::platform_args(&url).to_vec();
        // Leadership outlives the outage (it is renewed every third of the lease).
        args.extend(["--lease-duration", "60s"]);
        let operator =
            TestOperator::start_as(kubeconfig.path(), &platform.name, cache.path(), &args);
        tenant_ready(&admin, &tenant, Duration::from_secs(120)).await?;

        proxy.set_down(true);
        repo.write("app.yaml", config_map("2"));
        let during = repo.commit("v2, pushed during the outage");
        tokio::time::sleep(OUTAGE).await;
        let attempts = proxy.refused();
        proxy.set_down(false);
        eprintln!("connection attempts during a {OUTAGE:?} outage: {attempts}");
        // Operator (controllers, lease, platform sync, admission watches) and agent together: a
        // tight loop would make thousands.
        assert!(
            attempts < 300,
            "{attempts} connection attempts in {OUTAGE:?}"
        );
        assert!(
            attempts > 0,
            "nobody tried to reach the API server: the outage was not seen"
        );

        let config_maps = Api::<ConfigMap>::namespaced(admin.clone(), &tenant);
        eventually(
            "the commit made during the outage applied",
            Duration::from_secs(90),
            || async {
                let data = config_maps.get("app").await.ok()?.data?;
                (data.get("version")? == "2").then_some(())
            },
        )
        .await?;
        let tenants = Api::<berth_engine::api::Tenant>::all(admin.clone());
        eventually(
            "the Tenant Ready at the new revision",
            Duration::from_secs(60),
            || async {
                let status = tenants.get(&tenant).await.ok()?.status?;
                let ready = status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                (ready && status.last_applied_revision.as_deref() == Some(during.as_str()))
                    .then_some(())
            },
        )
        .await?;
        assert!(
            operator.metric("berth_operator_leader").await >= 1.0,
            "the operator still leads"
        );
        Ok(())
    })
    .await;
}
