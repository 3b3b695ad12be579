//! The agent's Role: full control of the kinds the tenant may deploy, in its namespaces only,
//! and nothing that lets it grant itself more (no `escalate`, `bind` or `impersonate`, no
//! quota or limit objects).

use serde_json::{Value, json};

use super::ProvisionError;
use berth_engine::guard::DEFAULT_ALLOWED_KINDS;

/// Name of the agent's ServiceAccount, Role and RoleBinding.
pub const AGENT: &str = "berth-agent";

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

/// The rules of the agent's Role for these allowed kinds (default: Berth's default set).
pub fn agent_rules(allowed_kinds: &[String]) -> Result<Value, ProvisionError> {
    let defaults: Vec<String> = DEFAULT_ALLOWED_KINDS
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
    let kinds = if allowed_kinds.is_empty() {
        &defaults
    } else {
        allowed_kinds
    };
    let mut by_group: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
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
    let mut rules: Vec<Value> = by_group
        .into_iter()
        .map(|(group, mut resources)| {
            resources.sort();
            resources.dedup();
            json!({"apiGroups": [group], "resources": resources, "verbs": VERBS})
        })
        .collect();
    rules.extend([
        json!({"apiGroups": ["berth.dev"], "resources": ["tenantsyncs", "tenantsyncs/status"],
            "verbs": ["get", "list", "watch", "create", "patch", "update"]}),
        json!({"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]}),
        // Create only: decisions are an append-only record.
        json!({"apiGroups": ["wgpolicyk8s.io"], "resources": ["policyreports"], "verbs": ["get", "list", "create"]}),
    ]);
    Ok(Value::Array(rules))
}
