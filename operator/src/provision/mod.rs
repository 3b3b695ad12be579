//! Provisioning, the pure build step of the Tenant controller: a Tenant → every object its
//! berth needs (namespaces, the agent's ServiceAccount and confined Role, member bindings,
//! quota, limits, network isolation, read access to its policy). The controller applies them
//! with server-side apply.

pub mod agent;
mod policy;
mod rbac;

use std::collections::BTreeMap;

use berth_engine::api::Tenant;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde_json::json;

pub use policy::{policy_config_map_name, tenant_policy};
pub use rbac::{AGENT, agent_rules};

/// Label on everything provisioned for a tenant (the agent puts it on what it applies too).
pub const TENANT_LABEL: &str = "berth.dev/tenant";
/// Label on what the operator provisions, and only that: what a changed Tenant no longer
/// declares is found by it and pruned.
pub const PROVISIONED_LABEL: (&str, &str) = ("berth.dev/provisioned", "true");

/// Where the operator keeps platform objects (policy ConfigMaps).
#[derive(Clone, Debug)]
pub struct ProvisionContext {
    pub operator_namespace: String,
}

/// Why a Tenant cannot be provisioned as declared.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProvisionError {
    #[error("tenant has no name")]
    NoName,
    #[error(
        "allowed kind {0}: Berth does not know its API resource; use one of the built-in kinds"
    )]
    UnknownKind(String),
    #[error("building {object}: {reason}")]
    Build { object: String, reason: String },
    #[error("credentials Secret {secret}: {reason}")]
    Credentials { secret: String, reason: String },
}

/// Everything a tenant's berth consists of.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    pub namespaces: Vec<Namespace>,
    pub service_account: ServiceAccount,
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
    pub quotas: Vec<ResourceQuota>,
    pub limit_ranges: Vec<LimitRange>,
    pub network_policies: Vec<NetworkPolicy>,
}

fn typed<T: serde::de::DeserializeOwned>(
    object: &str,
    value: serde_json::Value,
) -> Result<T, ProvisionError> {
    serde_json::from_value(value).map_err(|e| ProvisionError::Build {
        object: object.to_owned(),
        reason: e.to_string(),
    })
}

/// Builds the tenant's objects. Pure: the same Tenant always gives the same objects.
pub fn build(tenant: &Tenant, context: &ProvisionContext) -> Result<Desired, ProvisionError> {
    let name = tenant.metadata.name.clone().ok_or(ProvisionError::NoName)?;
    let namespaces = tenant.namespaces();
    let primary = tenant.primary_namespace();
    let labels = json!({TENANT_LABEL: name, "app.kubernetes.io/managed-by": "berth",
        PROVISIONED_LABEL.0: PROVISIONED_LABEL.1});
    let mut desired = Desired {
        service_account: typed(
            "ServiceAccount",
            json!({"metadata": {"name": AGENT, "namespace": primary, "labels": labels}}),
        )?,
        ..Desired::default()
    };
    let rules = agent_rules(&tenant.spec.allowed_kinds)?;
    let agent_subject = json!([{"kind": "ServiceAccount", "name": AGENT, "namespace": primary}]);
    for ns in &namespaces {
        let meta = |object: &str| json!({"name": object, "namespace": ns, "labels": labels});
        desired.namespaces.push(typed(
            "Namespace",
            json!({"metadata": {"name": ns, "labels": {
                TENANT_LABEL: name,
                "app.kubernetes.io/managed-by": "berth",
                PROVISIONED_LABEL.0: PROVISIONED_LABEL.1,
                // Pods that do not meet the restricted profile are refused at admission too.
                "pod-security.kubernetes.io/enforce": "restricted",
            }}}),
        )?);
        desired.roles.push(typed(
            "Role",
            json!({"metadata": meta(AGENT), "rules": rules}),
        )?);
        desired.role_bindings.push(typed(
            "RoleBinding",
            json!({"metadata": meta(AGENT), "subjects": agent_subject,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": AGENT}}),
        )?);
        for member in &tenant.spec.members {
            let role = member.role.cluster_role();
            let kind = format!("{:?}", member.kind);
            let binding_name = format!(
                "berth-member-{role}-{}-{}",
                kind.to_lowercase(),
                sanitize(&member.name)
            );
            desired.role_bindings.push(typed(
                "RoleBinding",
                json!({"metadata": meta(&binding_name),
                    "subjects": [{"kind": kind, "name": member.name, "apiGroup": "rbac.authorization.k8s.io"}],
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}}),
            )?);
        }
        if !tenant.spec.quota.is_empty() {
            desired.quotas.push(typed(
                "ResourceQuota",
                json!({"metadata": meta("berth-quota"), "spec": {"hard": tenant.spec.quota}}),
            )?);
        }
        if let Some(limits) = &tenant.spec.limits {
            let mut item = BTreeMap::from([("type", json!("Container"))]);
            for (key, values) in [
                ("default", &limits.default),
                ("defaultRequest", &limits.default_request),
                ("max", &limits.max),
            ] {
                if !values.is_empty() {
                    item.insert(key, json!(values));
                }
            }
            desired.limit_ranges.push(typed(
                "LimitRange",
                json!({"metadata": meta("berth-limits"), "spec": {"limits": [item]}}),
            )?);
        }
        if !tenant.spec.network.disabled {
            let mut from =
                vec![json!({"namespaceSelector": {"matchLabels": {TENANT_LABEL: name}}})];
            for other in &tenant.spec.network.allow_from_namespaces {
                from.push(json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": other}}}));
            }
            desired.network_policies.push(typed(
                "NetworkPolicy",
                json!({"metadata": meta("berth-isolation"),
                    "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": from}]}}),
            )?);
        }
    }
    // Read access to exactly the tenant's policy ConfigMap, where the tenant cannot write.
    let policy_access = format!("berth-policy-{name}");
    let platform_meta =
        json!({"name": policy_access, "namespace": context.operator_namespace, "labels": labels});
    desired.roles.push(typed(
        "Role",
        json!({"metadata": platform_meta, "rules": [{"apiGroups": [""], "resources": ["configmaps"],
            "resourceNames": [policy_config_map_name(&name)], "verbs": ["get"]}]}),
    )?);
    desired.role_bindings.push(typed(
        "RoleBinding",
        json!({"metadata": platform_meta, "subjects": agent_subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": policy_access}}),
    )?);
    Ok(desired)
}

/// A member name as part of an object name: lowercase, `[a-z0-9-]`, at most 40 characters.
fn sanitize(name: &str) -> String {
    let mut out: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out.truncate(40);
    out.trim_matches('-').to_owned()
}

#[cfg(test)]
mod tests;
