//! Guard rails, checked before policy: every object must land in one of the tenant's
//! namespaces, be namespaced, and be of a kind the platform allows. Pure; the API server's
//! discovery is passed in as a scope lookup.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::manifest::{Manifest, ObjectRef, Origin};

/// What Berth knows about the tenant an agent works for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantContext {
    pub name: String,
    /// The tenant's namespaces; the first is its primary namespace, the default for objects
    /// that name none.
    pub namespaces: Vec<String>,
    /// Kinds the platform allows, as `Kind` (any group) or `group/Kind`; `*` allows every
    /// namespaced kind.
    pub allowed_kinds: Vec<String>,
    /// Ingress hosts the platform assigned to the tenant (policy input).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Other namespaces the platform lets send traffic in (policy input).
    #[serde(default)]
    pub allow_from_namespaces: Vec<String>,
}

impl TenantContext {
    /// The tenant as policy sees it (`input.tenant`).
    pub fn policy_input(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "namespaces": self.namespaces,
            "hosts": self.hosts,
            "allowFromNamespaces": self.allow_from_namespaces,
        })
    }
}

/// Kinds a tenant may deploy unless the platform says otherwise: workloads and their
/// configuration, but nothing that changes the tenant's own quota or limits.
pub const DEFAULT_ALLOWED_KINDS: [&str; 18] = [
    "ConfigMap",
    "Secret",
    "Service",
    "ServiceAccount",
    "PersistentVolumeClaim",
    "Pod",
    "apps/Deployment",
    "apps/StatefulSet",
    "apps/DaemonSet",
    "batch/Job",
    "batch/CronJob",
    "networking.k8s.io/Ingress",
    "networking.k8s.io/NetworkPolicy",
    "autoscaling/HorizontalPodAutoscaler",
    "policy/PodDisruptionBudget",
    "rbac.authorization.k8s.io/Role",
    "rbac.authorization.k8s.io/RoleBinding",
    "coordination.k8s.io/Lease",
];

/// Whether a kind lives in a namespace, as the API server (or a built-in table) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
    /// Not served by the API server (e.g. a CRD that is not installed).
    Unknown,
}

/// Why the guard rails refused an object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum RefusalReason {
    ClusterScoped,
    OutsideTenant { namespace: String },
    KindNotAllowed,
    UnknownKind,
}

impl RefusalReason {
    /// A stable label for metrics and reports.
    pub fn label(&self) -> &'static str {
        match self {
            Self::ClusterScoped => "ClusterScoped",
            Self::OutsideTenant { .. } => "OutsideTenant",
            Self::KindNotAllowed => "KindNotAllowed",
            Self::UnknownKind => "UnknownKind",
        }
    }
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClusterScoped => f.write_str("cluster-scoped kinds are not allowed for tenants"),
            Self::OutsideTenant { namespace } => {
                write!(f, "namespace {namespace} does not belong to the tenant")
            }
            Self::KindNotAllowed => f.write_str("this kind is not allowed by the platform"),
            Self::UnknownKind => f.write_str("this kind is not served by the cluster"),
        }
    }
}

/// An object the guard rails refused, with where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub object: ObjectRef,
    pub origin: Origin,
    #[serde(flatten)]
    pub reason: RefusalReason,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.object, self.origin, self.reason)
    }
}

/// Defaults missing namespaces to the tenant's primary namespace, then returns every refusal.
/// An empty result means every object may go on to policy.
pub fn check(
    manifests: &mut [Manifest],
    tenant: &TenantContext,
    scope_of: impl Fn(&ObjectRef) -> Scope,
) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    for manifest in manifests.iter_mut() {
        let refuse = |reason| Refusal {
            object: manifest.reference.clone(),
            origin: manifest.origin.clone(),
            reason,
        };
        let reason = match scope_of(&manifest.reference) {
            Scope::Cluster => Some(RefusalReason::ClusterScoped),
            Scope::Unknown => Some(RefusalReason::UnknownKind),
            Scope::Namespaced => None,
        };
        if let Some(reason) = reason {
            refusals.push(refuse(reason));
            continue;
        }
        if !kind_allowed(&manifest.reference, &tenant.allowed_kinds) {
            refusals.push(refuse(RefusalReason::KindNotAllowed));
            continue;
        }
        match manifest.reference.namespace.clone() {
            Some(ns) if !tenant.namespaces.contains(&ns) => {
                refusals.push(refuse(RefusalReason::OutsideTenant { namespace: ns }));
            }
            Some(_) => {}
            None => match tenant.namespaces.first() {
                Some(primary) => manifest.set_namespace(primary),
                None => refusals.push(refuse(RefusalReason::OutsideTenant {
                    namespace: String::new(),
                })),
            },
        }
    }
    refusals
}

fn kind_allowed(object: &ObjectRef, allowed: &[String]) -> bool {
    allowed.iter().any(|entry| match entry.split_once('/') {
        _ if entry == "*" => true,
        Some((group, kind)) => group == object.group() && kind == object.kind,
        None => entry == &object.kind,
    })
}

/// Scopes of well-known kinds, so `berth-agent check` works without a cluster; the agent asks
/// the API server's discovery for anything else.
pub fn builtin_scope(object: &ObjectRef) -> Option<Scope> {
    const CLUSTER: [(&str, &str); 16] = [
        ("", "Namespace"),
        ("", "Node"),
        ("", "PersistentVolume"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration",
        ),
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
        ),
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
        (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicyBinding",
        ),
        ("apiregistration.k8s.io", "APIService"),
        ("storage.k8s.io", "StorageClass"),
        ("storage.k8s.io", "CSIDriver"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("networking.k8s.io", "IngressClass"),
        ("node.k8s.io", "RuntimeClass"),
    ];
    let key = (object.group(), object.kind.as_str());
    if CLUSTER.contains(&key) {
        return Some(Scope::Cluster);
    }
    let namespaced = DEFAULT_ALLOWED_KINDS.iter().any(|entry| {
        let (group, kind) = entry.split_once('/').unwrap_or(("", entry));
        (group, kind) == key
    }) || matches!(key, ("", "ResourceQuota") | ("", "LimitRange"));
    namespaced.then_some(Scope::Namespaced)
}
