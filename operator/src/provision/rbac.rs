//! RBAC of a berth. The agent's Role in each tenant namespace: full control of the kinds the
//! tenant may deploy and nothing that lets it grant itself more (no `escalate`, `bind` or
//! `impersonate`, no quota or limit objects). Its Role in its own namespace: its TenantSync,
//! Events and PolicyReports, nowhere else. Members get the built-in view/edit/admin roles in
//! the tenant's namespaces only, so nothing they hold reaches the agent's namespace.

use std::collections::BTreeMap;

use berth_engine::api::Tenant;
use berth_engine::guard::Scope;
use berth_engine::kinds::{self, KNOWN_KINDS, KnownKind};
use k8s_openapi::api::rbac::v1::{PolicyRule, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{ProvisionError, meta};

/// Name of the agent's ServiceAccount, Role and RoleBindings.
pub const AGENT: &str = "berth-agent";

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Everything except what would let a holder raise its own privileges.
const VERBS: [&str; 7] = [
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// A kind the platform allows that Berth does not know by name, as the API server's discovery
/// describes it: its resource (plural) and whether it is namespaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredKind {
    pub resource: String,
    pub namespaced: bool,
}

/// Discovered kinds by their `allowedKinds` entry (`group/Kind`).
pub type DiscoveredKinds = BTreeMap<String, DiscoveredKind>;

/// The group and resource of each allowed kind. A kind named without its group must be one
/// Berth knows; `group/Kind` entries Berth does not know come from `discovered` (and if they
/// are not there, the cluster does not serve them yet). `*` is every kind a tenant gets by
/// default. Cluster-scoped kinds are refused whatever is declared.
pub fn allowed_resources(
    allowed_kinds: &[String],
    discovered: &DiscoveredKinds,
) -> Result<Vec<(String, String)>, ProvisionError> {
    let defaults = kinds::default_allowed();
    let entries = if allowed_kinds.is_empty() {
        &defaults
    } else {
        allowed_kinds
    };
    let mut resources = Vec::new();
    for entry in entries {
        if entry == "*" {
            resources.extend(
                KNOWN_KINDS
                    .iter()
                    .filter(|k| k.default_allowed)
                    .map(|k| (k.group.to_owned(), k.resource.to_owned())),
            );
            continue;
        }
        let (group, kind) = match entry.split_once('/') {
            Some((group, kind)) => (Some(group), kind),
            None => (None, entry.as_str()),
        };
        let known: Vec<&KnownKind> = KNOWN_KINDS
            .iter()
            .filter(|k| k.kind == kind && group.is_none_or(|g| g == k.group))
            .collect();
        if known.iter().any(|k| k.scope == Scope::Cluster) {
            return Err(ProvisionError::ClusterScopedKind(entry.clone()));
        }
        if !known.is_empty() {
            resources.extend(
                known
                    .iter()
                    .map(|k| (k.group.to_owned(), k.resource.to_owned())),
            );
            continue;
        }
        let Some(group) = group else {
            return Err(ProvisionError::UnknownKind(entry.clone()));
        };
        match discovered.get(entry) {
            Some(d) if !d.namespaced => {
                return Err(ProvisionError::ClusterScopedKind(entry.clone()));
            }
            Some(d) => resources.push((group.to_owned(), d.resource.clone())),
            None => return Err(ProvisionError::KindNotServed(entry.clone())),
        }
    }
    Ok(resources)
}

/// The unknown `group/Kind` entries taken as served and namespaced, their resource guessed as
/// the lowercase plural: for checks and renderings without a cluster.
pub fn assume_served(allowed_kinds: &[String]) -> DiscoveredKinds {
    undiscovered(allowed_kinds)
        .into_iter()
        .map(|(group, kind)| {
            (
                format!("{group}/{kind}"),
                DiscoveredKind {
                    resource: format!("{}s", kind.to_lowercase()),
                    namespaced: true,
                },
            )
        })
        .collect()
}

/// The `group/Kind` entries of `allowed_kinds` Berth does not know by name (for discovery).
pub fn undiscovered(allowed_kinds: &[String]) -> Vec<(String, String)> {
    allowed_kinds
        .iter()
        .filter_map(|entry| {
            let (group, kind) = entry.split_once('/')?;
            kinds::known(group, kind)
                .is_none()
                .then(|| (group.to_owned(), kind.to_owned()))
        })
        .collect()
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

/// The rules of the agent's Role in the tenant's namespaces for these allowed kinds (default:
/// Berth's default set).
pub fn agent_rules(
    allowed_kinds: &[String],
    discovered: &DiscoveredKinds,
) -> Result<Vec<PolicyRule>, ProvisionError> {
    let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (group, resource) in allowed_resources(allowed_kinds, discovered)? {
        by_group.entry(group).or_default().push(resource);
    }
    Ok(by_group
        .into_iter()
        .map(|(group, mut resources)| {
            resources.sort_unstable();
            resources.dedup();
            let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
            rule(&group, &resources, &VERBS)
        })
        .collect())
}

/// The agent's rules in its own namespace: its status, Events about it, and its reports —
/// created, never changed or deleted, so together they are an append-only record.
pub fn home_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            "berth.dev",
            &["tenantsyncs", "tenantsyncs/status"],
            &["get", "list", "watch", "create", "patch", "update"],
        ),
        rule("events.k8s.io", &["events"], &["create", "patch"]),
        rule(
            "wgpolicyk8s.io",
            &["policyreports"],
            &["get", "list", "create"],
        ),
    ]
}

/// `get` on exactly one ConfigMap.
pub fn read_config_map(name: &str) -> PolicyRule {
    PolicyRule {
        resource_names: Some(vec![name.to_owned()]),
        ..rule("", &["configmaps"], &["get"])
    }
}

/// The agent's ServiceAccount, which lives in its own namespace `home`.
pub fn agent_subject(home: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: AGENT.into(),
        namespace: Some(home.to_owned()),
        ..Subject::default()
    }
}

pub fn binding(metadata: ObjectMeta, role_kind: &str, role: &str, subject: Subject) -> RoleBinding {
    RoleBinding {
        metadata,
        role_ref: RoleRef {
            api_group: Some(RBAC_GROUP.into()),
            kind: role_kind.into(),
            name: role.into(),
        },
        subjects: Some(vec![subject]),
    }
}

/// Binds Role `role` in `namespace` to the agent of `home`.
pub fn agent_binding(
    role: &str,
    namespace: &str,
    home: &str,
    labels: &BTreeMap<String, String>,
) -> RoleBinding {
    binding(
        meta(role, namespace, labels),
        "Role",
        role,
        agent_subject(home),
    )
}

/// The members' bindings to the built-in roles in `namespace`.
pub fn member_bindings(
    tenant: &Tenant,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<RoleBinding> {
    tenant
        .spec
        .members
        .iter()
        .map(|member| {
            let role = member.role.cluster_role();
            let kind = format!("{:?}", member.kind);
            let name = format!(
                "berth-member-{role}-{}-{}",
                kind.to_lowercase(),
                sanitize(&member.name)
            );
            binding(
                meta(&name, namespace, labels),
                "ClusterRole",
                role,
                Subject {
                    kind,
                    name: member.name.clone(),
                    api_group: Some(RBAC_GROUP.into()),
                    ..Subject::default()
                },
            )
        })
        .collect()
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
