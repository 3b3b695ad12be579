//! RBAC of a berth. The agent's Role in each tenant namespace: full control of the kinds the
//! tenant may deploy and nothing that lets it grant itself more (no `escalate`, `bind` or
//! `impersonate`, no quota or limit objects). Its Role in its own namespace: its TenantSync,
//! Events and PolicyReports, nowhere else. Members get the built-in view/edit/admin roles in
//! the tenant's namespaces only, so nothing they hold reaches the agent's namespace.

use std::collections::BTreeMap;

use berth_engine::api::Tenant;
use berth_engine::guard::DEFAULT_ALLOWED_KINDS;
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

/// API group and resource of each kind Berth can grant.
const RESOURCES: [(&str, &str, &str); 18] = [
    ("", "ConfigMap", "configmaps"),
    ("", "Secret", "secrets"),
    ("", "Service", "services"),
    ("", "ServiceAccount", "serviceaccounts"),
    ("", "PersistentVolumeClaim", "persistentvolumeclaims"),
    ("", "Pod", "pods"),
    ("apps", "Deployment", "deployments"),
    ("apps", "StatefulSet", "statefulsets"),
    ("apps", "DaemonSet", "daemonsets"),
    ("batch", "Job", "jobs"),
    ("batch", "CronJob", "cronjobs"),
    ("networking.k8s.io", "Ingress", "ingresses"),
    ("networking.k8s.io", "NetworkPolicy", "networkpolicies"),
    (
        "autoscaling",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
    ("policy", "PodDisruptionBudget", "poddisruptionbudgets"),
    ("rbac.authorization.k8s.io", "Role", "roles"),
    ("rbac.authorization.k8s.io", "RoleBinding", "rolebindings"),
    ("coordination.k8s.io", "Lease", "leases"),
];

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
pub fn agent_rules(allowed_kinds: &[String]) -> Result<Vec<PolicyRule>, ProvisionError> {
    let defaults: Vec<String> = DEFAULT_ALLOWED_KINDS
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    let kinds = if allowed_kinds.is_empty() {
        &defaults
    } else {
        allowed_kinds
    };
    let mut by_group: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for kind in kinds {
        let matches: Vec<&(&str, &str, &str)> = RESOURCES
            .iter()
            .filter(|(group, k, _)| match kind.split_once('/') {
                _ if kind == "*" => true,
                Some((g, k2)) => g == *group && k2 == *k,
                None => kind == k,
            })
            .collect();
        if matches.is_empty() {
            return Err(ProvisionError::UnknownKind(kind.clone()));
        }
        for (group, _, resource) in matches {
            by_group.entry(group).or_default().push(resource);
        }
    }
    Ok(by_group
        .into_iter()
        .map(|(group, mut resources)| {
            resources.sort_unstable();
            resources.dedup();
            rule(group, &resources, &VERBS)
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
