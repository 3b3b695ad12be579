//! Admission: the tenant's policy also holds for writes that do not come from its agent. The
//! operator serves a validating webhook over HTTPS (`tls`: a CA it makes, a serving
//! certificate it renews) and owns its `ValidatingWebhookConfiguration` (`configuration`):
//! every create and update in a tenant namespace, by anyone but the tenant's agent, the
//! operator and the control plane, is evaluated with the tenant's own policy bundle and data
//! (`policies`) and answered (`review`); denials are counted and recorded in the tenant's
//! PolicyReport (`reports`). Fails closed: a write the webhook cannot decide is refused.

mod configuration;
mod policies;
mod reports;
mod review;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use berth_engine::api::Tenant;
use berth_engine::http_server;
use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::PostParams;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio_util::sync::CancellationToken;

pub use configuration::Endpoint;
use configuration::PATH;
use policies::Policies;
use reports::Denial;
use tls::{CurrentCert, Material, TLS_SECRET};

use crate::apiserver::{self, ApiError};
use crate::controllers::FIELD_MANAGER;
use crate::metrics::OperatorMetrics;
use crate::provision::{PROVISIONED_LABEL, policy_config_map_name};

/// AdmissionReviews larger than this are refused (the API server caps objects at 3 MiB, and a
/// review holds the object twice on update).
const MAX_BODY: usize = 8 * 1024 * 1024;
/// How often the serving certificate's age is checked.
const RENEWAL_CHECK: Duration = Duration::from_secs(3600);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("serving admission on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Where to listen and how the API server reaches the webhook.
pub struct Settings {
    pub client: Client,
    pub addr: SocketAddr,
    pub endpoint: Endpoint,
    pub operator_namespace: String,
    /// Label selector of the Tenants this operator manages ("" for all).
    pub selector: String,
    pub metrics: Arc<OperatorMetrics>,
}

/// What a request needs.
struct Webhook {
    client: Client,
    operator_namespace: String,
    tenants: Store<Tenant>,
    config_maps: Store<ConfigMap>,
    policies: Policies,
    metrics: Arc<OperatorMetrics>,
}

impl Webhook {
    /// The tenant owning `namespace` (only tenants whose namespaces this operator provisions).
    fn tenant_of(&self, namespace: &str) -> Option<Arc<Tenant>> {
        self.tenants
            .state()
            .into_iter()
            .find(|t| t.namespaces().iter().any(|ns| ns == namespace))
    }

    async fn review(
        self: &Arc<Self>,
        request: &AdmissionRequest<DynamicObject>,
    ) -> AdmissionResponse {
        let Some(object) = review::written_object(request) else {
            return AdmissionResponse::from(request);
        };
        let namespace = request.namespace.clone().unwrap_or_default();
        let Some(tenant) = self.tenant_of(&namespace) else {
            return review::cannot_decide(
                request,
                &format!("namespace {namespace} belongs to no tenant this operator knows"),
            );
        };
        let name = tenant.name_any();
        let policy_name = policy_config_map_name(&name);
        let Some(config_map) = self
            .config_maps
            .get(&reflector::ObjectRef::new(&policy_name).within(&self.operator_namespace))
        else {
            return review::cannot_decide(
                request,
                &format!("tenant {name}'s policy ConfigMap {policy_name} is not published yet"),
            );
        };
        let bundle = match self.policies.get(&name, &config_map).await {
            Ok(bundle) => bundle,
            Err(why) => return review::cannot_decide(request, &why),
        };
        let context = berth_engine::guard::TenantContext {
            name: name.clone(),
            namespaces: tenant.namespaces(),
            hosts: tenant.spec.ingress_hosts.clone(),
            allow_from_namespaces: tenant.spec.network.allow_from_namespaces.clone(),
            ..Default::default()
        };
        let violations = match bundle
            .evaluate(std::slice::from_ref(&object), &context, "admission")
            .await
        {
            Ok(v) => v,
            Err(e) => return review::cannot_decide(request, &e.to_string()),
        };
        let response = review::answer(request, &name, &violations);
        if !response.allowed && !request.dry_run {
            let denial = Denial {
                tenant: (*tenant).clone(),
                object,
                user: request.user_info.username.clone().unwrap_or_default(),
                operation: format!("{:?}", request.operation),
                bundle_version: bundle.version.clone(),
                violations,
            };
            let client = self.client.clone();
            tokio::spawn(async move {
                if let Err(error) = reports::record(&client, denial).await {
                    tracing::warn!(%error, "recording an admission denial");
                }
            });
        }
        response
    }
}

async fn validate(
    State(webhook): State<Arc<Webhook>>,
    axum::Json(review): axum::Json<AdmissionReview<DynamicObject>>,
) -> axum::Json<AdmissionReview<DynamicObject>> {
    let started = Instant::now();
    let request: Result<AdmissionRequest<DynamicObject>, _> = review.try_into();
    let (response, outcome) = match request {
        Ok(request) => {
            let response = webhook.review(&request).await;
            let outcome = if response.allowed {
                "allowed"
            } else {
                "denied"
            };
            (response, outcome)
        }
        Err(e) => (AdmissionResponse::invalid(e), "invalid"),
    };
    let metrics = &webhook.metrics;
    OperatorMetrics::count(&metrics.admission_requests, outcome);
    metrics
        .admission_duration
        .observe(started.elapsed().as_secs_f64());
    axum::Json(response.into_review())
}

/// Runs the webhook until `stop`: certificates, configuration, watches, HTTPS.
pub async fn run(settings: Settings, stop: CancellationToken) -> Result<(), AdmissionError> {
    let Settings {
        client,
        addr,
        endpoint,
        operator_namespace,
        selector,
        metrics,
    } = settings;
    let names = endpoint.names();
    let material = certificates(&client, &operator_namespace, &names, None).await?;
    let current = Arc::new(CurrentCert::new(material.certified_key()?));
    let operator_user = whoami(&client).await?;
    apply_configuration(
        &client,
        &operator_namespace,
        &operator_user,
        &endpoint,
        &material,
    )
    .await?;

    let (tenants, tenant_writer) = reflector::store::<Tenant>();
    let (config_maps, config_map_writer) = reflector::store::<ConfigMap>();
    let webhook = Arc::new(Webhook {
        client: client.clone(),
        operator_namespace: operator_namespace.clone(),
        tenants,
        config_maps,
        policies: Policies::default(),
        metrics,
    });
    let tenant_watch = reflector::reflector(
        tenant_writer,
        watcher(
            Api::<Tenant>::all(client.clone()),
            watcher::Config::default().labels(&selector),
        ),
    )
    .default_backoff()
    .for_each(|_| async {});
    // Each tenant's policy is compiled as soon as it is published, not on its first request.
    let prewarm = webhook.clone();
    let policy_watch = reflector::reflector(
        config_map_writer,
        watcher(
            Api::<ConfigMap>::namespaced(client.clone(), &operator_namespace),
            // The tenants' policy copies (the operator's own label: what an agent applies into
            // this namespace never carries it).
            watcher::Config::default().labels(&format!(
                "{},{}={}",
                berth_engine::api::TENANT_LABEL,
                PROVISIONED_LABEL.0,
                PROVISIONED_LABEL.1
            )),
        ),
    )
    .default_backoff()
    .applied_objects()
    .for_each(move |event| {
        let webhook = prewarm.clone();
        async move {
            let Ok(config_map) = event else { return };
            let Some(tenant) = config_map.labels().get(berth_engine::api::TENANT_LABEL).cloned() else {
                return;
            };
            if let Err(error) = webhook.policies.get(&tenant, &config_map).await {
                tracing::warn!(%tenant, %error, "tenant policy does not load; its writes are refused");
            }
        }
    });
    let watches = tokio::spawn(futures::future::join(tenant_watch, policy_watch));
    let forget = tokio::spawn(forget_offboarded(webhook.clone()));
    let renewal = tokio::spawn(renew(
        client,
        operator_namespace,
        names,
        material,
        current.clone(),
        stop.clone(),
    ));
    let served = serve(addr, current, webhook, stop).await;
    watches.abort();
    renewal.abort();
    forget.abort();
    served
}

/// Drops the policies of tenants that are gone, now and then.
async fn forget_offboarded(webhook: Arc<Webhook>) {
    loop {
        tokio::time::sleep(Duration::from_secs(600)).await;
        let tenants: Vec<String> = webhook
            .tenants
            .state()
            .iter()
            .map(|t| t.name_any())
            .collect();
        webhook.policies.retain(&tenants).await;
    }
}

/// The operator's own user name, exempt from its webhook.
async fn whoami(client: &Client) -> Result<String, AdmissionError> {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(ApiError::of(
            "asking who the operator is with",
            "a SelfSubjectReview",
        ))?;
    Ok(review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .unwrap_or_default())
}

/// The certificates in the Secret, made or renewed as needed (`held`: what this process serves).
async fn certificates(
    client: &Client,
    namespace: &str,
    names: &[String],
    held: Option<&Material>,
) -> Result<Material, AdmissionError> {
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
    let object = format!("Secret {namespace}/{TLS_SECRET}");
    let stored = secrets
        .get_opt(TLS_SECRET)
        .await
        .map_err(ApiError::of("reading", object.clone()))?
        .as_ref()
        .and_then(Material::from_secret);
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let current = match stored.or_else(|| held.cloned()) {
        Some(m) if !m.needs_renewal(names, now) => return Ok(m),
        Some(m) => m.renew(names, now)?,
        None => Material::generate(names, now)?,
    };
    let secret = current.to_secret(namespace);
    let failed = ApiError::of("writing", object);
    apiserver::apply(&secrets, FIELD_MANAGER, TLS_SECRET, &secret, failed).await?;
    tracing::info!(names = ?names, "admission webhook certificate issued");
    Ok(current)
}

async fn apply_configuration(
    client: &Client,
    operator_namespace: &str,
    operator_user: &str,
    endpoint: &Endpoint,
    material: &Material,
) -> Result<(), AdmissionError> {
    let config = configuration::configuration(
        operator_namespace,
        operator_user,
        endpoint,
        &material.ca_pem,
    );
    let name = configuration::name(operator_namespace);
    let api = Api::<ValidatingWebhookConfiguration>::all(client.clone());
    let failed = ApiError::of("applying", format!("ValidatingWebhookConfiguration {name}"));
    apiserver::apply(&api, FIELD_MANAGER, &name, &config, failed).await?;
    Ok(())
}

/// Renews the serving certificate in time and swaps it in.
async fn renew(
    client: Client,
    namespace: String,
    names: Vec<String>,
    mut material: Material,
    current: Arc<CurrentCert>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(RENEWAL_CHECK) => {}
            () = stop.cancelled() => return,
        }
        let renewed = match certificates(&client, &namespace, &names, Some(&material)).await {
            Ok(m) => m,
            Err(error) => {
                tracing::warn!(%error, "renewing the admission certificate");
                continue;
            }
        };
        if renewed != material {
            match renewed.certified_key() {
                Ok(key) => current.replace(key),
                Err(error) => tracing::warn!(%error, "loading the renewed admission certificate"),
            }
            material = renewed;
        }
    }
}

/// The admission listener's limits. The API server is its one client, and every write in a
/// tenant namespace waits for an answer: 128 connections leave it room for many concurrent
/// reviews (one per connection on HTTP/1.1). No cap per address: the API server may reach the
/// webhook from a single one.
const SERVER_LIMITS: http_server::Limits = http_server::Limits {
    handshake_timeout: HANDSHAKE_TIMEOUT,
    ..http_server::Limits::new(128)
};

/// HTTPS within [`SERVER_LIMITS`]: each TLS handshake runs in its connection's own task with
/// a deadline, beside the accept loop, so a slow client holds up nobody; requests in flight
/// finish on `stop`.
async fn serve(
    addr: SocketAddr,
    cert: Arc<CurrentCert>,
    webhook: Arc<Webhook>,
    stop: CancellationToken,
) -> Result<(), AdmissionError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AdmissionError::Serve { addr, source })?;
    tracing::info!(%addr, "serving admission webhook");
    serve_on(listener, cert, webhook, SERVER_LIMITS, stop).await
}

/// [`serve`] on a bound listener, within `limits`.
async fn serve_on(
    listener: tokio::net::TcpListener,
    cert: Arc<CurrentCert>,
    webhook: Arc<Webhook>,
    limits: http_server::Limits,
    stop: CancellationToken,
) -> Result<(), AdmissionError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AdmissionError::Tls(tls::TlsError::Load(e.to_string())))?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls = Tls(tokio_rustls::TlsAcceptor::from(Arc::new(config)));
    let router = Router::new()
        .route(PATH, post(validate))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(refuse_announced_oversize))
        .with_state(webhook);
    http_server::serve(listener, tls, router, limits, stop.cancelled_owned()).await;
    Ok(())
}

/// 413 for a review whose announced length is over [`MAX_BODY`], before any of it is read
/// (a chunked one is refused by the body limit once it grows past it).
async fn refuse_announced_oversize(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if http_server::declares_more_than(request.headers(), MAX_BODY) {
        let close = [(axum::http::header::CONNECTION, "close")];
        return (
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            close,
            "admission review too large",
        )
            .into_response();
    }
    next.run(request).await
}

/// The TLS handshake of a connection to the webhook.
#[derive(Clone)]
struct Tls(tokio_rustls::TlsAcceptor);

impl http_server::Handshake for Tls {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

    fn handshake(
        &self,
        tcp: tokio::net::TcpStream,
    ) -> impl std::future::Future<Output = std::io::Result<Self::Io>> + Send {
        self.0.accept(tcp)
    }
}

#[cfg(test)]
mod serve_tests;
