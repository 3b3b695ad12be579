//! The `ValidatingWebhookConfiguration` the operator owns (pure): every create and update of a
//! namespaced object in the namespaces this operator provisions for tenants, failing closed;
//! never the system's namespaces, the operator's or the agents' (they carry no tenant label),
//! and never the writes of the tenants' agents (which checked the whole revision already), of
//! the operator itself or of the control plane's own components.

use std::collections::BTreeMap;

use berth_engine::api::{AGENT_NAMESPACE_PREFIX, MANAGED_BY, TENANT_LABEL};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, RuleWithOperations, ServiceReference, ValidatingWebhook,
    ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};

use crate::provision::{AGENT, OPERATOR_LABEL};

/// Path of the webhook on the operator's HTTPS listener.
pub const PATH: &str = "/validate";
/// Seconds the API server waits for a decision before failing the request.
const TIMEOUT_SECONDS: i32 = 10;

/// How the API server reaches the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// The operator's Service (in a cluster): `namespace/name`, port.
    Service {
        namespace: String,
        name: String,
        port: i32,
    },
    /// A URL (an operator outside the cluster, e.g. the local control plane).
    Url(String),
}

impl Endpoint {
    /// The names the serving certificate must cover.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::Service {
                namespace, name, ..
            } => vec![
                format!("{name}.{namespace}.svc"),
                format!("{name}.{namespace}.svc.cluster.local"),
            ],
            Self::Url(url) => {
                let host = url
                    .split_once("://")
                    .map_or(url.as_str(), |(_, rest)| rest)
                    .split(['/', '?'])
                    .next()
                    .unwrap_or_default();
                // Without the port; an IPv6 literal keeps its address between the brackets.
                let host = match host.strip_prefix('[') {
                    Some(v6) => v6.split(']').next().unwrap_or_default(),
                    None => host.rsplit_once(':').map_or(host, |(h, _)| h),
                };
                vec![host.to_owned()]
            }
        }
    }
}

/// The configuration's name for the operator in `operator_namespace` (one per operator, so
/// operators sharded over tenants each cover their own).
pub fn name(operator_namespace: &str) -> String {
    format!("berth-tenant-policy-{operator_namespace}")
}

/// Whose writes are never checked: CEL over the request's user.
fn exemptions(operator_user: &str) -> Vec<MatchCondition> {
    let quoted = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
    [
        (
            "not-a-tenant-agent",
            // An agent can only write in its own tenant's namespaces (RBAC), after its checks.
            format!(
                "!(request.userInfo.username.startsWith({}) && request.userInfo.username.endsWith({}))",
                quoted(&format!("system:serviceaccount:{AGENT_NAMESPACE_PREFIX}")),
                quoted(&format!(":{AGENT}"))
            ),
        ),
        (
            "not-the-operator",
            format!("request.userInfo.username != {}", quoted(operator_user)),
        ),
        (
            "not-the-control-plane",
            // Controllers and nodes (kube-controller-manager, scheduler, kubelets, the
            // controllers' own ServiceAccounts): they act for objects already admitted.
            "!request.userInfo.username.startsWith('system:serviceaccount:kube-system:') && \
             !(request.userInfo.username.startsWith('system:') && \
               !request.userInfo.username.startsWith('system:serviceaccount:'))"
                .to_owned(),
        ),
    ]
    .into_iter()
    .map(|(name, expression)| MatchCondition {
        name: name.into(),
        expression,
    })
    .collect()
}

pub fn configuration(
    operator_namespace: &str,
    operator_user: &str,
    endpoint: &Endpoint,
    ca_pem: &str,
) -> ValidatingWebhookConfiguration {
    let client_config = WebhookClientConfig {
        ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
        service: match endpoint {
            Endpoint::Service {
                namespace,
                name,
                port,
            } => Some(ServiceReference {
                namespace: namespace.clone(),
                name: name.clone(),
                path: Some(PATH.into()),
                port: Some(*port),
            }),
            Endpoint::Url(_) => None,
        },
        url: match endpoint {
            Endpoint::Url(url) => Some(format!("{}{PATH}", url.trim_end_matches('/'))),
            Endpoint::Service { .. } => None,
        },
    };
    let requirement =
        |key: &str, operator: &str, values: Option<Vec<String>>| LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values,
        };
    ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name(operator_namespace)),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_owned(),
                MANAGED_BY.1.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: "tenant-policy.berth.dev".into(),
            admission_review_versions: vec!["v1".into()],
            client_config,
            failure_policy: Some("Fail".into()),
            match_policy: Some("Equivalent".into()),
            namespace_selector: Some(LabelSelector {
                match_expressions: Some(vec![
                    requirement(TENANT_LABEL, "Exists", None),
                    requirement(
                        OPERATOR_LABEL,
                        "In",
                        Some(vec![operator_namespace.to_owned()]),
                    ),
                ]),
                ..LabelSelector::default()
            }),
            match_conditions: Some(exemptions(operator_user)),
            rules: Some(vec![RuleWithOperations {
                api_groups: Some(vec!["*".into()]),
                api_versions: Some(vec!["*".into()]),
                operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
                resources: Some(vec!["*".into()]),
                scope: Some("Namespaced".into()),
            }]),
            // Denials are recorded in the tenant's PolicyReport, but never for a dry run.
            side_effects: "NoneOnDryRun".into(),
            timeout_seconds: Some(TIMEOUT_SECONDS),
            ..ValidatingWebhook::default()
        }]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_covers_the_operators_tenant_namespaces_and_fails_closed() {
        let c = configuration(
            "berth-system",
            "system:serviceaccount:berth-system:berth-operator",
            &Endpoint::Service {
                namespace: "berth-system".into(),
                name: "berth-admission".into(),
                port: 443,
            },
            "PEM",
        );
        let value = serde_json::to_value(&c).unwrap();
        let hook = &value["webhooks"][0];
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["sideEffects"], "NoneOnDryRun");
        assert_eq!(hook["clientConfig"]["service"]["path"], "/validate");
        assert_eq!(
            hook["namespaceSelector"]["matchExpressions"][1],
            serde_json::json!({"key": "berth.dev/operator", "operator": "In", "values": ["berth-system"]})
        );
        assert_eq!(
            hook["rules"][0]["operations"],
            serde_json::json!(["CREATE", "UPDATE"])
        );
        let conditions: Vec<&str> = hook["matchConditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["expression"].as_str().unwrap())
            .collect();
        assert!(
            conditions[0].contains("'system:serviceaccount:berth-agent-'"),
            "{conditions:?}"
        );
        assert!(conditions[1].contains("'system:serviceaccount:berth-system:berth-operator'"));
    }

    #[test]
    fn the_certificate_names_follow_the_endpoint() {
        assert_eq!(
            Endpoint::Url("https://127.0.0.1:9443".into()).names(),
            ["127.0.0.1"]
        );
        assert_eq!(
            Endpoint::Url("https://[::1]:9443/x".into()).names(),
            ["::1"]
        );
        assert_eq!(
            Endpoint::Service {
                namespace: "ns".into(),
                name: "svc".into(),
                port: 443
            }
            .names(),
            ["svc.ns.svc", "svc.ns.svc.cluster.local"]
        );
    }
}
