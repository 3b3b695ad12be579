//! One admission decision (pure): the written object as policy sees it, and the answer from
//! the policy's findings. Denials name each rule as `berth-agent check` does; warnings go back
//! to the client as admission warnings.

use berth_engine::manifest::{Manifest, ObjectRef, Origin};
use berth_engine::policy::{Severity, Violation};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde_json::Value;

/// Most findings named in one answer; the rest are counted.
const MAX_NAMED: usize = 5;

/// The object of a create or update, as the agent would evaluate it, or `None` when there is
/// nothing to check: no object, or one on its way out (finalizers being removed).
pub fn written_object(request: &AdmissionRequest<DynamicObject>) -> Option<Manifest> {
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return None;
    }
    let object = request.object.as_ref()?;
    if object.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let mut value = serde_json::to_value(object).ok()?;
    let kind = &request.kind;
    let api_version = if kind.group.is_empty() {
        kind.version.clone()
    } else {
        format!("{}/{}", kind.group, kind.version)
    };
    let namespace = request.namespace.clone();
    let name = match &object.metadata.name {
        Some(name) if !name.is_empty() => name.clone(),
        _ => object.metadata.generate_name.clone().unwrap_or_default(),
    };
    // The API server leaves apiVersion, kind and, on create, the namespace to the request.
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), api_version.clone().into());
        map.insert("kind".into(), kind.kind.clone().into());
        if let (Some(ns), Some(Value::Object(meta))) = (&namespace, map.get_mut("metadata")) {
            meta.insert("namespace".into(), ns.clone().into());
        }
    }
    Some(Manifest {
        origin: Origin {
            file: format!(
                "{:?} by {}",
                request.operation,
                request.user_info.username.clone().unwrap_or_default()
            ),
            document: 1,
        },
        reference: ObjectRef {
            api_version,
            kind: kind.kind.clone(),
            namespace,
            name,
        },
        object: value,
        encrypted: None,
    })
}

/// `[policy/rule] message`.
fn named(v: &Violation) -> String {
    format!(
        "[{}/{}] {}",
        v.finding.policy, v.finding.rule, v.finding.message
    )
}

/// Allowed unless a finding denies; warnings are passed on either way.
pub fn answer(
    request: &AdmissionRequest<DynamicObject>,
    tenant: &str,
    violations: &[Violation],
) -> AdmissionResponse {
    let mut response = AdmissionResponse::from(request);
    let warnings: Vec<String> = violations
        .iter()
        .filter(|v| v.finding.severity == Severity::Warn)
        .map(named)
        .collect();
    if !warnings.is_empty() {
        response.warnings = Some(warnings);
    }
    let denies: Vec<&Violation> = violations
        .iter()
        .filter(|v| v.finding.severity == Severity::Deny)
        .collect();
    if denies.is_empty() {
        return response;
    }
    let mut reasons: Vec<String> = denies.iter().take(MAX_NAMED).map(|v| named(v)).collect();
    if denies.len() > MAX_NAMED {
        reasons.push(format!("and {} more", denies.len() - MAX_NAMED));
    }
    response.deny(format!(
        "denied by tenant {tenant}'s policy: {}",
        reasons.join("; ")
    ))
}

/// A refusal when the decision could not be made at all (fail closed).
pub fn cannot_decide(request: &AdmissionRequest<DynamicObject>, why: &str) -> AdmissionResponse {
    AdmissionResponse::from(request).deny(format!(
        "Berth cannot check this write against the tenant's policy, so it is refused: {why}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_engine::policy::Finding;
    use kube::core::admission::AdmissionReview;
    use serde_json::json;

    fn request(operation: &str, object: Value) -> AdmissionRequest<DynamicObject> {
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "name": "web", "namespace": "team-a", "operation": operation,
                "userInfo": {"username": "alice"},
                "object": object,
            }
        }))
        .unwrap();
        review.try_into().unwrap()
    }

    fn violation(severity: Severity, rule: &str) -> Violation {
        Violation {
            object: ObjectRef::default(),
            origin: Origin::default(),
            finding: Finding {
                policy: "pod-security".into(),
                rule: rule.into(),
                severity,
                message: format!("{rule} message"),
            },
        }
    }

    #[test]
    fn the_object_gets_its_kind_and_namespace_from_the_request() {
        let r = request("CREATE", json!({"metadata": {"name": "web"}, "spec": {}}));
        let m = written_object(&r).unwrap();
        assert_eq!(m.object["apiVersion"], "v1");
        assert_eq!(m.object["kind"], "Pod");
        assert_eq!(m.object["metadata"]["namespace"], "team-a");
        assert_eq!(m.reference.to_string(), "Pod team-a/web");
        assert_eq!(m.origin.file, "Create by alice");
        let leaving = request(
            "UPDATE",
            json!({"metadata": {"name": "web", "deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        );
        assert!(written_object(&leaving).is_none());
    }

    #[test]
    fn denials_name_every_rule_and_warnings_are_passed_on() {
        let r = request("CREATE", json!({"metadata": {"name": "web"}}));
        let allowed = answer(
            &r,
            "team-a",
            &[violation(Severity::Warn, "run-as-non-root")],
        );
        assert!(allowed.allowed);
        assert_eq!(
            allowed.warnings,
            Some(vec![
                "[pod-security/run-as-non-root] run-as-non-root message".into()
            ])
        );
        let denied = answer(
            &r,
            "team-a",
            &[
                violation(Severity::Deny, "no-privileged"),
                violation(Severity::Deny, "no-host-path"),
            ],
        );
        assert!(!denied.allowed);
        assert_eq!(
            denied.result.message,
            "denied by tenant team-a's policy: [pod-security/no-privileged] no-privileged message; [pod-security/no-host-path] no-host-path message"
        );
        assert_eq!(denied.uid, "u1");
    }
}
