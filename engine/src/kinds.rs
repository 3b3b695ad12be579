//! The one table of the Kubernetes kinds Berth knows by name: their group, resource, scope,
//! whether tenants get them by default, and where they go in the apply order. The guard rails,
//! the apply order, the agent's Role and the defaults of `allowedKinds` all read it; any other
//! namespaced kind (a CustomResourceDefinition's) is resolved through the API server's
//! discovery.

use crate::guard::Scope;
use crate::manifest::ObjectRef;

/// A kind Berth knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownKind {
    /// API group ("" for the core group).
    pub group: &'static str,
    pub kind: &'static str,
    /// Its resource (plural), as RBAC names it.
    pub resource: &'static str,
    pub scope: Scope,
    /// Whether a tenant may deploy it unless the platform says otherwise: workloads and their
    /// configuration, nothing that changes the tenant's own quota or limits.
    pub default_allowed: bool,
    /// Apply order: lower tiers first (see `apply::order`), pruning the other way round.
    pub tier: usize,
}

const fn namespaced(
    group: &'static str,
    kind: &'static str,
    resource: &'static str,
    default_allowed: bool,
    tier: usize,
) -> KnownKind {
    KnownKind {
        group,
        kind,
        resource,
        scope: Scope::Namespaced,
        default_allowed,
        tier,
    }
}

const fn cluster(group: &'static str, kind: &'static str, resource: &'static str) -> KnownKind {
    KnownKind {
        group,
        kind,
        resource,
        scope: Scope::Cluster,
        default_allowed: false,
        tier: LAST_TIER,
    }
}

/// The tier of what points at workloads, and of every kind not in the table.
pub const LAST_TIER: usize = 4;

/// Every kind Berth knows by name.
pub const KNOWN_KINDS: [KnownKind; 38] = [
    // Accounts, RBAC and isolation first: what the rest runs as or is reached through.
    namespaced("", "ServiceAccount", "serviceaccounts", true, 0),
    namespaced("rbac.authorization.k8s.io", "Role", "roles", true, 0),
    namespaced(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        "rolebindings",
        true,
        0,
    ),
    namespaced(
        "networking.k8s.io",
        "NetworkPolicy",
        "networkpolicies",
        true,
        0,
    ),
    // Configuration, storage and services.
    namespaced("", "ConfigMap", "configmaps", true, 1),
    namespaced("", "Secret", "secrets", true, 1),
    namespaced(
        "",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        1,
    ),
    namespaced("", "Service", "services", true, 1),
    namespaced("coordination.k8s.io", "Lease", "leases", true, 1),
    // Workloads.
    namespaced("apps", "Deployment", "deployments", true, 2),
    namespaced("apps", "StatefulSet", "statefulsets", true, 2),
    namespaced("apps", "DaemonSet", "daemonsets", true, 2),
    namespaced("apps", "ReplicaSet", "replicasets", false, 2),
    namespaced("", "Pod", "pods", true, 2),
    namespaced("batch", "Job", "jobs", true, 2),
    namespaced("batch", "CronJob", "cronjobs", true, 2),
    // What points at workloads.
    namespaced(
        "autoscaling",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        3,
    ),
    namespaced(
        "policy",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        3,
    ),
    namespaced("networking.k8s.io", "Ingress", "ingresses", true, 3),
    // Namespaced, but the platform's: a tenant gets them only if the platform allows them.
    namespaced("", "ResourceQuota", "resourcequotas", false, 0),
    namespaced("", "LimitRange", "limitranges", false, 0),
    namespaced("", "Endpoints", "endpoints", false, 3),
    namespaced(
        "discovery.k8s.io",
        "EndpointSlice",
        "endpointslices",
        false,
        3,
    ),
    namespaced("events.k8s.io", "Event", "events", false, LAST_TIER),
    // Cluster-scoped: never a tenant's, whatever is declared.
    cluster("", "Namespace", "namespaces"),
    cluster("", "Node", "nodes"),
    cluster("", "PersistentVolume", "persistentvolumes"),
    cluster("rbac.authorization.k8s.io", "ClusterRole", "clusterroles"),
    cluster(
        "rbac.authorization.k8s.io",
        "ClusterRoleBinding",
        "clusterrolebindings",
    ),
    cluster(
        "apiextensions.k8s.io",
        "CustomResourceDefinition",
        "customresourcedefinitions",
    ),
    cluster(
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
    ),
    cluster(
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
    ),
    cluster(
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
    ),
    cluster(
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
    ),
    cluster("apiregistration.k8s.io", "APIService", "apiservices"),
    cluster("storage.k8s.io", "StorageClass", "storageclasses"),
    cluster("scheduling.k8s.io", "PriorityClass", "priorityclasses"),
    cluster("networking.k8s.io", "IngressClass", "ingressclasses"),
];

/// The known kind of this group and kind.
pub fn known(group: &str, kind: &str) -> Option<&'static KnownKind> {
    KNOWN_KINDS
        .iter()
        .find(|k| k.group == group && k.kind == kind)
}

/// The known kind of an object.
pub fn of(object: &ObjectRef) -> Option<&'static KnownKind> {
    known(object.group(), &object.kind)
}

/// `allowedKinds` when the platform sets none, as `Kind` or `group/Kind`.
pub fn default_allowed() -> Vec<String> {
    KNOWN_KINDS
        .iter()
        .filter(|k| k.default_allowed)
        .map(|k| entry(k.group, k.kind))
        .collect()
}

/// The `allowedKinds` spelling of a kind: `Kind` for the core group, `group/Kind` otherwise.
pub fn entry(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{group}/{kind}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_entry_per_kind_and_defaults_are_namespaced() {
        for (i, a) in KNOWN_KINDS.iter().enumerate() {
            for b in &KNOWN_KINDS[i + 1..] {
                assert!((a.group, a.kind) != (b.group, b.kind), "{} twice", a.kind);
            }
            if a.default_allowed {
                assert_eq!(a.scope, Scope::Namespaced, "{}", a.kind);
            }
            assert!(a.tier <= LAST_TIER);
        }
        let defaults = default_allowed();
        assert!(defaults.contains(&"ConfigMap".to_owned()));
        assert!(defaults.contains(&"apps/Deployment".to_owned()));
        assert!(!defaults.iter().any(|d| d.ends_with("ResourceQuota")));
    }
}
