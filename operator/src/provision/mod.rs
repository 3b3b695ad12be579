//! Provisioning, the pure build step of the Tenant controller: a Tenant → every object its
//! berth needs. In the tenant's namespaces: the namespaces themselves, quota, limits, network
//! isolation, member bindings and the agent's confined Role. In the agent's own namespace (one
//! per tenant, owned by Berth, where no tenant member or tenant Pod has any right): the agent's
//! ServiceAccount, its Role for status and reports, and its isolation. In the operator's
//! namespace: read access to the tenant's policy. The controller applies them with
//! server-side apply.

pub mod agent;
pub mod agent_args;
mod isolation;
mod policy;
mod rbac;

use std::collections::BTreeMap;

use berth_engine::api::{AGENT_OF_LABEL, MANAGED_BY, TENANT_LABEL, Tenant};
use berth_engine::policy::Profile;
use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
    ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Serialize;

pub use policy::{policy_config_map_name, tenant_policy};
pub use rbac::{AGENT, DiscoveredKind, DiscoveredKinds, agent_rules, assume_served, undiscovered};

/// Label on what the operator provisions, and only that: what a changed Tenant no longer
/// declares is found by it and pruned.
pub const PROVISIONED_LABEL: (&str, &str) = ("berth.dev/provisioned", "true");
/// Label on a tenant's namespaces naming the operator (by its namespace) that provisions them:
/// its admission webhook covers exactly those.
pub const OPERATOR_LABEL: &str = "berth.dev/operator";

/// What provisioning needs besides the Tenant.
#[derive(Clone, Debug)]
pub struct ProvisionContext {
    /// Where the operator keeps platform objects (policy ConfigMaps).
    pub operator_namespace: String,
}

/// Why a Tenant cannot be provisioned as declared.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProvisionError {
    #[error("tenant has no name")]
    NoName,
    #[error("allowed kind {0}: Berth does not know this kind by name; write it as group/Kind")]
    UnknownKind(String),
    #[error("allowed kind {0}: cluster-scoped kinds are never a tenant's")]
    ClusterScopedKind(String),
    #[error(
        "allowed kind {0}: the cluster does not serve it (is its CustomResourceDefinition installed?); waiting for it"
    )]
    KindNotServed(String),
    /// A Secret the Tenant names (`role`: credentials or decryption) is missing or unusable.
    #[error("{role} Secret {secret}: {reason}")]
    Secret {
        role: &'static str,
        secret: String,
        reason: String,
    },
    #[error(
        "not declared in the platform repository: only the Tenants the platform repository declares are provisioned"
    )]
    NotDeclared,
    #[error("{0}")]
    Invalid(String),
}

/// Everything a tenant's berth consists of.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Desired {
    /// The tenant's namespaces, then the agent's namespace.
    pub namespaces: Vec<Namespace>,
    /// The agent's identity, in its own namespace.
    pub service_account: ServiceAccount,
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
    pub quotas: Vec<ResourceQuota>,
    pub limit_ranges: Vec<LimitRange>,
    pub network_policies: Vec<NetworkPolicy>,
}

impl Desired {
    /// Every object as it would be applied, with its apiVersion and kind: what `render` prints.
    pub fn objects(&self) -> Result<Vec<serde_json::Value>, serde_json::Error> {
        let mut objects = Vec::new();
        push_all(&mut objects, &self.namespaces)?;
        push_all(&mut objects, std::slice::from_ref(&self.service_account))?;
        push_all(&mut objects, &self.roles)?;
        push_all(&mut objects, &self.role_bindings)?;
        push_all(&mut objects, &self.quotas)?;
        push_all(&mut objects, &self.limit_ranges)?;
        push_all(&mut objects, &self.network_policies)?;
        Ok(objects)
    }
}

fn push_all<K>(out: &mut Vec<serde_json::Value>, objects: &[K]) -> Result<(), serde_json::Error>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    for object in objects {
        let mut value = serde_json::to_value(object)?;
        value["apiVersion"] = K::api_version(&()).into();
        value["kind"] = K::kind(&()).into();
        out.push(value);
    }
    Ok(())
}

/// Labels of everything provisioned for `tenant` (but the agent's namespace itself).
fn labels(tenant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (TENANT_LABEL.to_owned(), tenant.to_owned()),
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (
            PROVISIONED_LABEL.0.to_owned(),
            PROVISIONED_LABEL.1.to_owned(),
        ),
    ])
}

fn meta(name: &str, namespace: &str, labels: &BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels.clone()),
        ..ObjectMeta::default()
    }
}

/// Pod Security admission labels: Kubernetes enforces the same profile as Berth's policy, and
/// warns and audits against `restricted` whatever is enforced.
fn pod_security_labels(enforce: Profile) -> [(String, String); 3] {
    [
        ("enforce", enforce.name()),
        ("warn", Profile::Restricted.name()),
        ("audit", Profile::Restricted.name()),
    ]
    .map(|(mode, level)| {
        (
            format!("pod-security.kubernetes.io/{mode}"),
            level.to_owned(),
        )
    })
}

/// What provisioning needs to know from outside the Tenant.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// The tenant's policy profile (its namespaces' Pod Security level).
    pub profile: Profile,
    /// Allowed kinds Berth does not know by name, as the cluster's discovery describes them.
    pub discovered: DiscoveredKinds,
}

/// Builds the tenant's objects. Pure: the same Tenant, context and inputs always give the same
/// objects.
pub fn build(
    tenant: &Tenant,
    context: &ProvisionContext,
    inputs: &Inputs,
) -> Result<Desired, ProvisionError> {
    let name = tenant.metadata.name.clone().ok_or(ProvisionError::NoName)?;
    let home = tenant.agent_namespace();
    let labels = labels(&name);
    let rules = agent_rules(&tenant.spec.allowed_kinds, &inputs.discovered)?;
    let profile = inputs.profile;
    let mut desired = Desired {
        service_account: ServiceAccount {
            metadata: meta(AGENT, &home, &labels),
            ..ServiceAccount::default()
        },
        ..Desired::default()
    };
    for ns in tenant.namespaces() {
        let mut ns_labels = labels.clone();
        ns_labels.insert(OPERATOR_LABEL.into(), context.operator_namespace.clone());
        ns_labels.extend(pod_security_labels(profile));
        desired.namespaces.push(Namespace {
            metadata: ObjectMeta {
                name: Some(ns.clone()),
                labels: Some(ns_labels),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        });
        desired.roles.push(Role {
            metadata: meta(AGENT, &ns, &labels),
            rules: Some(rules.clone()),
        });
        desired
            .role_bindings
            .push(rbac::agent_binding(AGENT, &ns, &home, &labels));
        desired
            .role_bindings
            .extend(rbac::member_bindings(tenant, &ns, &labels));
        if !tenant.spec.quota.is_empty() {
            desired.quotas.push(ResourceQuota {
                metadata: meta("berth-quota", &ns, &labels),
                spec: Some(ResourceQuotaSpec {
                    hard: Some(quantities(&tenant.spec.quota)),
                    ..ResourceQuotaSpec::default()
                }),
                ..ResourceQuota::default()
            });
        }
        if let Some(limits) = &tenant.spec.limits {
            let some = |values: &BTreeMap<String, String>| {
                (!values.is_empty()).then(|| quantities(values))
            };
            desired.limit_ranges.push(LimitRange {
                metadata: meta("berth-limits", &ns, &labels),
                spec: Some(LimitRangeSpec {
                    limits: vec![LimitRangeItem {
                        type_: "Container".into(),
                        default: some(&limits.default),
                        default_request: some(&limits.default_request),
                        max: some(&limits.max),
                        ..LimitRangeItem::default()
                    }],
                }),
            });
        }
        if !tenant.spec.network.disabled {
            desired
                .network_policies
                .push(isolation::tenant_isolation(tenant, &ns, &labels));
        }
    }
    // The agent's home: the namespace, its status and report rights, no way in for tenants.
    let mut home_labels = BTreeMap::from([
        (AGENT_OF_LABEL.to_owned(), name.clone()),
        (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
        (
            PROVISIONED_LABEL.0.to_owned(),
            PROVISIONED_LABEL.1.to_owned(),
        ),
    ]);
    home_labels.extend(pod_security_labels(Profile::Restricted));
    desired.namespaces.push(Namespace {
        metadata: ObjectMeta {
            name: Some(home.clone()),
            labels: Some(home_labels),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    });
    desired.roles.push(Role {
        metadata: meta(AGENT, &home, &labels),
        rules: Some(rbac::home_rules()),
    });
    desired
        .role_bindings
        .push(rbac::agent_binding(AGENT, &home, &home, &labels));
    desired.network_policies.push(isolation::agent_isolation(
        &home,
        &context.operator_namespace,
        &labels,
    ));
    // Read access to exactly the tenant's policy ConfigMap, where the tenant cannot write.
    let policy_access = policy_config_map_name(&name);
    desired.roles.push(Role {
        metadata: meta(&policy_access, &context.operator_namespace, &labels),
        rules: Some(vec![rbac::read_config_map(&policy_access)]),
    });
    desired.role_bindings.push(rbac::binding(
        meta(&policy_access, &context.operator_namespace, &labels),
        "Role",
        &policy_access,
        rbac::agent_subject(&home),
    ));
    Ok(desired)
}

fn quantities(values: &BTreeMap<String, String>) -> BTreeMap<String, Quantity> {
    values
        .iter()
        .map(|(k, v)| (k.clone(), Quantity(v.clone())))
        .collect()
}

#[cfg(test)]
mod tests;
