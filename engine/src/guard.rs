//! Guard rails, checked before policy: every object must land in one of the tenant's
//! namespaces, be namespaced, be of a kind the platform allows, and not take a name Berth
//! reserves for what it provisions. Pure; the API server's discovery is passed in as a scope
//! lookup.

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
    ReservedName,
}

/// Names Berth gives what it provisions in a tenant's namespaces (the agent's Role and
/// RoleBinding, the isolation policy, quota, limits, member bindings): `berth` and anything
/// starting with `berth-` are the operator's, so a repository can never declare (and so take
/// over or prune) one of them.
pub fn reserved_name(name: &str) -> bool {
    name == "berth" || name.starts_with("berth-")
}

impl RefusalReason {
    /// A stable label for metrics and reports.
    pub fn label(&self) -> &'static str {
        match self {
            Self::ClusterScoped => "ClusterScoped",
            Self::OutsideTenant { .. } => "OutsideTenant",
            Self::KindNotAllowed => "KindNotAllowed",
            Self::UnknownKind => "UnknownKind",
            Self::ReservedName => "ReservedName",
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
            Self::ReservedName => f.write_str(
                "names `berth` and `berth-…` are reserved for what Berth provisions; rename the object",
            ),
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
        match manifest.reference.namespace.clone() {
            Some(ns) if !tenant.namespaces.contains(&ns) => {
                refusals.push(refuse(RefusalReason::OutsideTenant { namespace: ns }));
                continue;
            }
            Some(_) => {}
            None => match tenant.namespaces.first() {
                Some(primary) => manifest.set_namespace(primary),
                None => {
                    refusals.push(refuse(RefusalReason::OutsideTenant {
                        namespace: String::new(),
                    }));
                    continue;
                }
            },
        }
        let reason = if !kind_allowed(&manifest.reference, &tenant.allowed_kinds) {
            RefusalReason::KindNotAllowed
        } else if reserved_name(&manifest.reference.name) {
            RefusalReason::ReservedName
        } else {
            continue;
        };
        refusals.push(Refusal {
            object: manifest.reference.clone(),
            origin: manifest.origin.clone(),
            reason,
        });
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
    crate::kinds::of(object).map(|k| k.scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Manifest {
        let mut metadata = json!({"name": name});
        if let Some(ns) = namespace {
            metadata["namespace"] = ns.into();
        }
        Manifest {
            origin: Origin {
                file: "app.yaml".into(),
                document: 1,
            },
            reference: ObjectRef {
                api_version: api_version.into(),
                kind: kind.into(),
                namespace: namespace.map(Into::into),
                name: name.into(),
            },
            object: json!({"apiVersion": api_version, "kind": kind, "metadata": metadata}),
            encrypted: Some(false),
        }
    }

    /// An object, the allowed kinds, and the refusal expected (label, message) if any.
    type Case = (
        Manifest,
        Vec<&'static str>,
        Option<(&'static str, &'static str)>,
    );

    fn tenant(allowed: &[&str]) -> TenantContext {
        TenantContext {
            name: "team-a".into(),
            namespaces: vec!["team-a".into(), "team-a-jobs".into()],
            allowed_kinds: allowed.iter().map(|k| (*k).to_owned()).collect(),
            ..TenantContext::default()
        }
    }

    /// The scopes of the table below, as the API server's discovery would give them.
    fn scope(object: &ObjectRef) -> Scope {
        match object.kind.as_str() {
            "Widget" => Scope::Unknown,
            _ => builtin_scope(object).unwrap_or(Scope::Namespaced),
        }
    }

    #[test]
    fn every_rule_refuses_with_its_reason_and_message() {
        let defaults: Vec<&'static str> = crate::kinds::KNOWN_KINDS
            .iter()
            .filter(|k| k.default_allowed)
            .map(|k| k.kind)
            .collect();
        // (object, allowed kinds, expected refusal label and message, or None when admitted)
        let cases: Vec<Case> = vec![
            (
                manifest("v1", "ConfigMap", Some("team-a"), "app"),
                defaults.clone(),
                None,
            ),
            (
                manifest("v1", "ConfigMap", Some("team-a-jobs"), "app"),
                defaults.clone(),
                None,
            ),
            (
                manifest("v1", "ConfigMap", None, "defaulted"),
                defaults.clone(),
                None,
            ),
            (
                manifest("v1", "ConfigMap", Some("team-b"), "theirs"),
                defaults.clone(),
                Some((
                    "OutsideTenant",
                    "namespace team-b does not belong to the tenant",
                )),
            ),
            (
                manifest("v1", "ConfigMap", Some("kube-system"), "theirs"),
                defaults.clone(),
                Some((
                    "OutsideTenant",
                    "namespace kube-system does not belong to the tenant",
                )),
            ),
            (
                manifest(
                    "rbac.authorization.k8s.io/v1",
                    "ClusterRoleBinding",
                    None,
                    "admin",
                ),
                defaults.clone(),
                Some((
                    "ClusterScoped",
                    "cluster-scoped kinds are not allowed for tenants",
                )),
            ),
            (
                manifest("v1", "Namespace", None, "team-a-extra"),
                vec!["*"],
                Some((
                    "ClusterScoped",
                    "cluster-scoped kinds are not allowed for tenants",
                )),
            ),
            (
                manifest("example.com/v1", "Widget", Some("team-a"), "w"),
                vec!["*"],
                Some(("UnknownKind", "this kind is not served by the cluster")),
            ),
            (
                manifest("v1", "ResourceQuota", Some("team-a"), "more"),
                defaults.clone(),
                Some(("KindNotAllowed", "this kind is not allowed by the platform")),
            ),
            (
                manifest("apps/v1", "Deployment", Some("team-a"), "web"),
                vec!["ConfigMap"],
                Some(("KindNotAllowed", "this kind is not allowed by the platform")),
            ),
            // A kind named without its group matches any group; with one, only that group.
            (
                manifest("apps/v1", "Deployment", Some("team-a"), "web"),
                vec!["Deployment"],
                None,
            ),
            (
                manifest("apps/v1", "Deployment", Some("team-a"), "web"),
                vec!["extensions/Deployment"],
                Some(("KindNotAllowed", "this kind is not allowed by the platform")),
            ),
            (
                manifest(
                    "networking.k8s.io/v1",
                    "NetworkPolicy",
                    Some("team-a"),
                    "berth-isolation",
                ),
                defaults.clone(),
                Some((
                    "ReservedName",
                    "names `berth` and `berth-…` are reserved for what Berth provisions; rename the object",
                )),
            ),
            (
                manifest(
                    "rbac.authorization.k8s.io/v1",
                    "RoleBinding",
                    Some("team-a"),
                    "berth-agent",
                ),
                defaults.clone(),
                Some((
                    "ReservedName",
                    "names `berth` and `berth-…` are reserved for what Berth provisions; rename the object",
                )),
            ),
            (
                manifest("v1", "ServiceAccount", None, "berth"),
                defaults.clone(),
                Some((
                    "ReservedName",
                    "names `berth` and `berth-…` are reserved for what Berth provisions; rename the object",
                )),
            ),
            (
                manifest("v1", "ServiceAccount", None, "berthold"),
                defaults.clone(),
                None,
            ),
        ];
        for (m, allowed, expected) in cases {
            let mut manifests = vec![m];
            let refusals = check(&mut manifests, &tenant(&allowed), scope);
            // Named after defaulting: a refused object always shows its namespace.
            let described = manifests[0].reference.to_string();
            let got = refusals
                .first()
                .map(|r| (r.reason.label(), r.reason.to_string()));
            assert_eq!(
                got.as_ref().map(|(l, m)| (*l, m.as_str())),
                expected,
                "{described} with {allowed:?}"
            );
            if let Some(r) = refusals.first() {
                assert_eq!(r.origin.to_string(), "app.yaml (document 1)");
                assert!(
                    r.to_string()
                        .starts_with(&format!("{described} (app.yaml (document 1)): ")),
                    "{r}"
                );
            }
        }
    }

    #[test]
    fn objects_without_a_namespace_go_to_the_primary_one() {
        let mut manifests = vec![manifest("v1", "ConfigMap", None, "app")];
        assert!(check(&mut manifests, &tenant(&["*"]), scope).is_empty());
        assert_eq!(manifests[0].reference.namespace.as_deref(), Some("team-a"));
        assert_eq!(manifests[0].object["metadata"]["namespace"], "team-a");
        // A tenant without namespaces has no primary one: refused, not defaulted.
        let mut manifests = vec![manifest("v1", "ConfigMap", None, "app")];
        let nowhere = TenantContext {
            namespaces: vec![],
            ..tenant(&["*"])
        };
        let refusals = check(&mut manifests, &nowhere, scope);
        assert_eq!(refusals[0].reason.label(), "OutsideTenant");
    }

    #[test]
    fn every_object_is_checked_and_each_refusal_reported() {
        let mut manifests = vec![
            manifest("v1", "ConfigMap", Some("team-b"), "a"),
            manifest("v1", "ConfigMap", Some("team-a"), "b"),
            manifest("v1", "Namespace", None, "c"),
        ];
        let labels: Vec<&str> = check(&mut manifests, &tenant(&["*"]), scope)
            .iter()
            .map(|r| r.reason.label())
            .collect();
        assert_eq!(labels, ["OutsideTenant", "ClusterScoped"]);
    }

    #[test]
    fn builtin_scopes_cover_the_default_kinds() {
        for kind in crate::kinds::default_allowed() {
            let (group, kind) = kind.split_once('/').unwrap_or(("", &kind));
            let api_version = if group.is_empty() {
                "v1".to_owned()
            } else {
                format!("{group}/v1")
            };
            let object = manifest(&api_version, kind, Some("team-a"), "x").reference;
            assert_eq!(builtin_scope(&object), Some(Scope::Namespaced), "{kind}");
        }
        let crd = manifest(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "x",
        )
        .reference;
        assert_eq!(builtin_scope(&crd), Some(Scope::Cluster));
        let widget = manifest("example.com/v1", "Widget", None, "x").reference;
        assert_eq!(builtin_scope(&widget), None);
    }
}
