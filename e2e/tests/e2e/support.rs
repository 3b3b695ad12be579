//! Small helpers shared by the end-to-end tests.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Creates a ServiceAccount and returns a short-lived token for it (TokenRequest API).
pub async fn service_account_token(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<String, kube::Error> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    accounts.create(&PostParams::default(), &sa).await?;
    Ok(berth_e2e::request_token(client, ns, name).await)
}

/// The HTTP status of a failed API call, if the server answered one.
pub fn status_code<T>(result: &Result<T, kube::Error>) -> Option<u16> {
    match result {
        Err(kube::Error::Api(status)) => Some(status.code),
        _ => None,
    }
}

/// Polls `check` every 250 ms until it returns `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until Tenant `name` is Ready=True; returns its status.
pub async fn tenant_ready(
    admin: &Client,
    name: &str,
    timeout: Duration,
) -> Result<berth_engine::api::TenantStatus, String> {
    let tenants = Api::<berth_engine::api::Tenant>::all(admin.clone());
    eventually(&format!("Tenant {name} Ready"), timeout, || async {
        let status = tenants.get(name).await.ok()?.status?;
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(status)
    })
    .await
}
