//! Network isolation of a berth: a tenant namespace admits traffic only from the tenant's own
//! namespaces and those its Tenant lists; the agent's namespace admits traffic only from the
//! operator's namespace (tenants cannot reach their agent).

use std::collections::BTreeMap;

use berth_engine::api::{TENANT_LABEL, Tenant};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::meta;

/// Name of the isolation policy in each tenant namespace.
pub const TENANT_ISOLATION: &str = "berth-isolation";
/// Name of the isolation policy in the agent's namespace.
pub const AGENT_ISOLATION: &str = "berth-agent-isolation";

fn namespaces_labelled(key: &str, value: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(key.to_owned(), value.to_owned())])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    }
}

fn ingress_only_from(from: Vec<NetworkPolicyPeer>) -> NetworkPolicySpec {
    NetworkPolicySpec {
        pod_selector: Some(LabelSelector::default()),
        policy_types: Some(vec!["Ingress".into()]),
        ingress: Some(vec![NetworkPolicyIngressRule {
            from: Some(from),
            ..NetworkPolicyIngressRule::default()
        }]),
        ..NetworkPolicySpec::default()
    }
}

pub fn tenant_isolation(
    tenant: &Tenant,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> NetworkPolicy {
    let name = tenant.metadata.name.clone().unwrap_or_default();
    let mut from = vec![namespaces_labelled(TENANT_LABEL, &name)];
    from.extend(
        tenant
            .spec
            .network
            .allow_from_namespaces
            .iter()
            .map(|other| namespaces_labelled("kubernetes.io/metadata.name", other)),
    );
    NetworkPolicy {
        metadata: meta(TENANT_ISOLATION, namespace, labels),
        spec: Some(ingress_only_from(from)),
    }
}

pub fn agent_isolation(
    home: &str,
    operator_namespace: &str,
    labels: &BTreeMap<String, String>,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta(AGENT_ISOLATION, home, labels),
        spec: Some(ingress_only_from(vec![namespaces_labelled(
            "kubernetes.io/metadata.name",
            operator_namespace,
        )])),
    }
}
