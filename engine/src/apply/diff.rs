//! Deciding, without a request, whether applying an object would change anything: every field
//! Berth declares must already hold the declared value in the live object. Fields the server
//! or others added are ignored. This is what keeps a no-op reconcile free of writes, and what
//! spots drift on managed fields.

use serde_json::Value;

/// Whether `live` already holds every field of `desired` with the same value.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    first_difference(desired, live).is_none()
}

/// The path of the first declared field whose live value differs, e.g. `.data.key`.
pub fn first_difference(desired: &Value, live: &Value) -> Option<String> {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().find_map(|(k, dv)| match l.get(k) {
            Some(lv) => first_difference(dv, lv).map(|p| format!(".{k}{p}")),
            None if is_empty(dv) => None,
            None => Some(format!(".{k}")),
        }),
        (Value::Array(d), Value::Array(l)) if d.len() == l.len() => d
            .iter()
            .zip(l)
            .enumerate()
            .find_map(|(i, (dv, lv))| first_difference(dv, lv).map(|p| format!("[{i}]{p}"))),
        // The server stores some declared numbers as strings (quantities, int-or-string).
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n))
            if n.to_string() == *s =>
        {
            None
        }
        (d, l) if d == l => None,
        _ => Some(String::new()),
    }
}

// An empty map or list, or null, is dropped by the server rather than stored.
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_added_fields_do_not_count_as_changes() {
        let desired = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}});
        let live = json!({"spec": {"replicas": 2, "revisionHistoryLimit": 10, "template": {"spec": {"containers": [{"name": "a", "image": "x:1", "imagePullPolicy": "IfNotPresent"}]}}}, "status": {}});
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn a_changed_managed_field_is_a_change() {
        let desired = json!({"data": {"k": "v"}});
        assert!(!is_subset(&desired, &json!({"data": {"k": "edited"}})));
        assert!(!is_subset(&desired, &json!({"data": {}})));
        let containers = json!({"c": [{"name": "a"}, {"name": "b"}]});
        assert!(!is_subset(&containers, &json!({"c": [{"name": "a"}]})));
    }

    #[test]
    fn numbers_stored_as_strings_and_dropped_empties_are_equal() {
        assert!(is_subset(&json!({"cpu": 1}), &json!({"cpu": "1"})));
        assert!(is_subset(&json!({"labels": {}, "x": null}), &json!({})));
    }
}
