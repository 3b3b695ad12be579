//! The operator's webhook receiver: a push notification signed like GitHub's (HMAC-SHA256), or
//! carrying the bearer token, makes the tenant's agent reconcile at once (its interval is an
//! hour here); a forged or missing signature gets 401 and triggers nothing.

use std::time::{Duration, Instant};

use berth_e2e::{TestOperator, TestRepo, http_post, in_namespace, install_crds, tenant_document};
use berth_engine::api::TenantSync;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

use crate::support::eventually;

const TOKEN: &str = "e2e-hook-token-4b1e";

fn config_map(version: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: app}}\ndata: {{version: '{version}'}}\n"
    )
}

fn signature(key: &str, body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[tokio::test]
async fn a_signed_push_triggers_the_agent_and_a_forged_one_nothing() {
    in_namespace("webhook", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let tenant = format!("{}-t", platform.name);
        let repo = TestRepo::new();
        repo.write("app.yaml", config_map("1"));
        repo.commit("v1");
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("hook".into()),
                ..ObjectMeta::default()
            },
            data: Some([("token".to_owned(), ByteString(TOKEN.as_bytes().to_vec()))].into()),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(admin.clone(), &platform.name)
            .create(&PostParams::default(), &secret)
            .await?;
        let platform_repo = TestRepo::new();
        let spec = format!(
            "  source: {{url: '{}', interval: 1h, webhookSecret: hook}}\n",
            repo.file_url()
        );
        platform_repo.write(
            &format!("tenants/{tenant}.yaml"),
            tenant_document(&platform.name, &tenant, &spec),
        );
        platform_repo.commit("onboard");
        let cache = tempfile::tempdir()?;
        let operator = TestOperator::start_platform(
            cp,
            &platform.name,
            cache.path(),
            &platform_repo.file_url(),
        );
        let config_maps = Api::<ConfigMap>::namespaced(admin.clone(), &tenant);
        let version = || async {
            let cm = config_maps.get_opt("app").await.ok()??;
            cm.data?.get("version").cloned()
        };
        eventually("the first revision", Duration::from_secs(90), || async {
            version().await.filter(|v| v == "1")
        })
        .await?;
        // Let the agent settle into its hour-long wait.
        tokio::time::sleep(Duration::from_secs(2)).await;

        repo.write("app.yaml", config_map("2"));
        repo.commit("v2");
        let body = br#"{"ref": "refs/heads/main"}"#;
        let path = format!("/hooks/{tenant}");
        let post = |headers: Vec<(&'static str, String)>| {
            let (addr, path) = (operator.webhook_addr.clone(), path.clone());
            async move {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                http_post(&addr, &path, &headers, body)
                    .await
                    .map(|(code, _)| code)
            }
        };
        // Forged, missing, or for a tenant that does not exist: 401, nothing happens.
        let forged = signature("not-the-token", body);
        assert_eq!(post(vec![("X-Hub-Signature-256", forged)]).await, Some(401));
        assert_eq!(post(vec![]).await, Some(401));
        assert_eq!(
            post(vec![("Authorization", "Bearer wrong".into())]).await,
            Some(401)
        );
        let unknown = http_post(
            &operator.webhook_addr,
            "/hooks/nobody",
            &[("X-Hub-Signature-256", &signature(TOKEN, body))],
            body,
        )
        .await;
        assert_eq!(unknown.map(|(c, _)| c), Some(401));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            version().await.as_deref(),
            Some("1"),
            "a refused hook triggered a sync"
        );
        let sync = Api::<TenantSync>::namespaced(
            admin.clone(),
            &berth_engine::api::agent_namespace(&tenant),
        )
        .get("berth")
        .await?;
        assert!(sync.spec.sync_requested_at.is_none());

        // Signed with the tenant's token: applied at once.
        let started = Instant::now();
        assert_eq!(
            post(vec![
                ("X-Hub-Signature-256", signature(TOKEN, body)),
                ("X-GitHub-Event", "push".into())
            ])
            .await,
            Some(202)
        );
        eventually("the pushed revision", Duration::from_secs(20), || async {
            version().await.filter(|v| v == "2")
        })
        .await?;
        eprintln!("webhook to applied: {:?}", started.elapsed());

        // The bearer form.
        repo.write("app.yaml", config_map("3"));
        repo.commit("v3");
        assert_eq!(
            post(vec![("Authorization", format!("Bearer {TOKEN}"))]).await,
            Some(202)
        );
        eventually("the next revision", Duration::from_secs(20), || async {
            version().await.filter(|v| v == "3")
        })
        .await?;
        assert_eq!(
            operator
                .metric("berth_operator_webhook_requests_total{outcome=\"accepted\"}")
                .await,
            2.0
        );
        assert_eq!(
            operator
                .metric("berth_operator_webhook_requests_total{outcome=\"unauthorized\"}")
                .await,
            4.0
        );
        Ok(())
    })
    .await;
}
