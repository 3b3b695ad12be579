//! [`Tenants`] backed by the Kubernetes API: tokens from the Secrets named by Tenants, and
//! triggers by server-side apply of the tenant's TenantSync.

use berth_engine::api::{Tenant, TenantSync, TenantSyncSpec};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use super::{Tenants, WebhookError};
use crate::apiserver::{self, ApiError};

/// The field manager of the trigger: it owns `spec.syncRequestedAt` and nothing else.
const FIELD_MANAGER: &str = "berth-webhook";
use berth_engine::api::SYNC_NAME;
/// The key of the webhook Secret holding the token.
const TOKEN_KEY: &str = "token";

pub struct KubeTenants {
    client: Client,
    /// Where the webhook Secrets live.
    namespace: String,
}

impl KubeTenants {
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        Self {
            client,
            namespace: namespace.into(),
        }
    }

    async fn tenant(&self, name: &str) -> Result<Option<Tenant>, WebhookError> {
        let tenant = Api::<Tenant>::all(self.client.clone())
            .get_opt(name)
            .await
            .map_err(ApiError::of("reading", format!("Tenant {name}")))?;
        Ok(tenant)
    }
}

impl Tenants for KubeTenants {
    async fn token(&self, tenant: &str) -> Result<Option<Vec<u8>>, WebhookError> {
        let Some(found) = self.tenant(tenant).await? else {
            tracing::debug!(tenant, "webhook for an unknown tenant");
            return Ok(None);
        };
        let Some(secret_name) = found.spec.source.webhook_secret else {
            tracing::warn!(tenant, "webhook for a tenant without webhookSecret");
            return Ok(None);
        };
        let secret = Api::<Secret>::namespaced(self.client.clone(), &self.namespace)
            .get_opt(&secret_name)
            .await
            .map_err(ApiError::of(
                "reading",
                format!("Secret {}/{secret_name}", self.namespace),
            ))?;
        let Some(secret) = secret else {
            tracing::warn!(
                tenant,
                secret = %secret_name,
                namespace = %self.namespace,
                "webhook Secret not found"
            );
            return Ok(None);
        };
        // An empty key would make every signature computable by anyone.
        match secret.data.and_then(|mut data| data.remove(TOKEN_KEY)) {
            Some(token) if !token.0.is_empty() => Ok(Some(token.0)),
            _ => {
                tracing::warn!(
                    tenant,
                    secret = %secret_name,
                    namespace = %self.namespace,
                    "webhook Secret has no token, or an empty one"
                );
                Ok(None)
            }
        }
    }

    async fn trigger(&self, tenant: &str) -> Result<(), WebhookError> {
        let Some(found) = self.tenant(tenant).await? else {
            // Deleted since its token was read: nothing left to sync.
            tracing::debug!(tenant, "tenant gone before its webhook trigger");
            return Ok(());
        };
        let namespace = found.agent_namespace();
        let request = TenantSync::new(
            SYNC_NAME,
            TenantSyncSpec {
                sync_requested_at: Some(k8s_openapi::jiff::Timestamp::now().to_string()),
            },
        );
        let syncs = Api::<TenantSync>::namespaced(self.client.clone(), &namespace);
        let failed = ApiError::of(
            "requesting a sync in",
            format!("TenantSync {namespace}/{SYNC_NAME}"),
        );
        apiserver::apply(&syncs, FIELD_MANAGER, SYNC_NAME, &request, failed).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};

    use axum::http::{Method, Request, Response, StatusCode};
    use serde_json::{Value, json};

    use super::*;

    /// A request the fake API server received: method, path and query, body.
    type Seen = Arc<Mutex<Vec<(Method, String, Value)>>>;

    /// A client whose API server knows the given objects by request path.
    fn fake_api(objects: Vec<(&'static str, Value)>) -> (Client, Seen) {
        let seen: Seen = Arc::default();
        let log = seen.clone();
        let objects = Arc::new(objects);
        let service = tower::service_fn(move |request: Request<kube::client::Body>| {
            let (log, objects) = (log.clone(), objects.clone());
            async move {
                let (parts, body) = request.into_parts();
                let bytes = axum::body::to_bytes(axum::body::Body::new(body), 1 << 20)
                    .await
                    .unwrap_or_default();
                let sent: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let path = parts.uri.path().to_owned();
                let target = parts.uri.path_and_query().unwrap().to_string();
                log.lock()
                    .unwrap()
                    .push((parts.method.clone(), target, sent.clone()));
                let (status, reply) = if parts.method == Method::PATCH {
                    (StatusCode::OK, sent)
                } else if let Some((_, object)) = objects.iter().find(|(p, _)| *p == path) {
                    (StatusCode::OK, object.clone())
                } else {
                    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "reason": "NotFound", "code": 404});
                    (StatusCode::NOT_FOUND, status)
                };
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(reply.to_string())
                    .unwrap();
                Ok::<_, Infallible>(response)
            }
        });
        (Client::new(service, "default"), seen)
    }

    const TENANT_PATH: &str = "/apis/berth.dev/v1alpha1/tenants/shop";
    const SECRET_PATH: &str = "/api/v1/namespaces/berth-system/secrets/shop-hook";

    fn tenant(webhook_secret: Option<&str>) -> (&'static str, Value) {
        let mut source = json!({"url": "https://git.example/shop.git"});
        if let Some(name) = webhook_secret {
            source["webhookSecret"] = name.into();
        }
        let tenant = json!({"apiVersion": "berth.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "shop"},
            "spec": {"namespaces": ["shop-prod", "shop-dev"], "source": source}});
        (TENANT_PATH, tenant)
    }

    fn secret(data: Value) -> (&'static str, Value) {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "shop-hook", "namespace": "berth-system"}, "data": data});
        (SECRET_PATH, secret)
    }

    async fn token_of(objects: Vec<(&'static str, Value)>) -> Option<Vec<u8>> {
        let (client, _) = fake_api(objects);
        KubeTenants::new(client, "berth-system")
            .token("shop")
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn token_from_the_tenants_secret() {
        // "s3cret" in base64.
        let found = token_of(vec![
            tenant(Some("shop-hook")),
            secret(json!({"token": "czNjcmV0"})),
        ])
        .await;
        assert_eq!(found.as_deref(), Some(b"s3cret".as_slice()));
    }

    #[tokio::test]
    async fn no_token_without_tenant_secret_or_key() {
        assert_eq!(token_of(vec![]).await, None);
        assert_eq!(token_of(vec![tenant(None)]).await, None);
        assert_eq!(token_of(vec![tenant(Some("shop-hook"))]).await, None);
        let other_key = secret(json!({"password": "czNjcmV0"}));
        assert_eq!(
            token_of(vec![tenant(Some("shop-hook")), other_key]).await,
            None
        );
        let empty = secret(json!({"token": ""}));
        assert_eq!(token_of(vec![tenant(Some("shop-hook")), empty]).await, None);
    }

    #[tokio::test]
    async fn trigger_applies_only_sync_requested_at() {
        let (client, seen) = fake_api(vec![tenant(Some("shop-hook"))]);
        KubeTenants::new(client, "berth-system")
            .trigger("shop")
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        let (method, target, body) = seen.last().unwrap();
        assert_eq!(method, Method::PATCH);
        assert!(
            target.starts_with(
                "/apis/berth.dev/v1alpha1/namespaces/berth-agent-shop/tenantsyncs/berth?"
            ),
            "{target}"
        );
        assert!(target.contains("fieldManager=berth-webhook"), "{target}");
        assert!(target.contains("force=true"), "{target}");
        let requested = body["spec"]["syncRequestedAt"].as_str().unwrap();
        assert!(
            requested.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
            "{requested}"
        );
        let expected = json!({"apiVersion": "berth.dev/v1alpha1", "kind": "TenantSync",
            "metadata": {"name": "berth"}, "spec": {"syncRequestedAt": requested}});
        assert_eq!(body, &expected);
    }

    #[tokio::test]
    async fn api_failure_is_an_error() {
        let service = tower::service_fn(|_: Request<kube::client::Body>| async {
            let response = Response::builder()
                .status(StatusCode::INTERNAL_SERVER_ERROR)
                .body(
                    r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":500}"#
                        .to_owned(),
                )
                .unwrap();
            Ok::<_, Infallible>(response)
        });
        let tenants = KubeTenants::new(Client::new(service, "default"), "berth-system");
        assert!(matches!(
            tenants.token("shop").await,
            Err(WebhookError::Api { .. })
        ));
        assert!(matches!(
            tenants.trigger("shop").await,
            Err(WebhookError::Api { .. })
        ));
    }
}
