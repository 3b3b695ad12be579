//! Differential test: on a corpus of realistic workloads and every rule's failing cases, the
//! decisions `opa-wasm` reaches in Rust equal `opa eval`'s on the same inputs, for several
//! parameter sets. (No cluster needed; it lives here beside the corpus it shares with the
//! benchmark.)
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_e2e::policy_corpus::corpus;
use berth_engine::guard::TenantContext;
use berth_engine::policy::PolicyBundle;
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tenant() -> TenantContext {
    TenantContext {
        name: "team-a".into(),
        namespaces: vec!["team-a".into(), "team-a-jobs".into()],
        allowed_kinds: vec!["*".into()],
        ..TenantContext::default()
    }
}

/// `opa eval` of the library on every input at once.
fn opa_eval(inputs: &[Value], data: &Value) -> Vec<Value> {
    let opa = std::env::var_os("BERTH_OPA")
        .expect("BERTH_OPA must name the opa binary (run through `make`)");
    let dir = tempfile::tempdir().unwrap();
    let input_path = dir.path().join("input.json");
    let data_path = dir.path().join("data.json");
    std::fs::write(&input_path, json!({"cases": inputs}).to_string()).unwrap();
    std::fs::write(&data_path, data.to_string()).unwrap();
    let out = Command::new(opa)
        .args(["eval", "--format", "json", "--data"])
        .arg(root().join("policies/berth"))
        .arg("--data")
        .arg(&data_path)
        .arg("--input")
        .arg(&input_path)
        .arg("[v | some c in input.cases; v := data.berth.violations with input as c]")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    serde_json::from_value(result["result"][0]["expressions"][0]["value"].clone()).unwrap()
}

fn sorted(values: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = values.iter().map(Value::to_string).collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn opa_wasm_decides_exactly_as_opa_eval() {
    let corpus = corpus();
    assert!(corpus.len() >= 200, "corpus of {} manifests", corpus.len());
    let bundle_bytes = std::fs::read(root().join("policies/bundle.tar.gz")).unwrap();
    let data_sets = [
        json!({}),
        json!({"params": {"allowed_registries": ["ghcr.io/acme"], "required_labels": ["team"]}}),
        json!({"params": {"allowed_service_types": ["NodePort", "LoadBalancer"], "allow_powerful_rolebindings": true}}),
        json!({"params": {"disabled_rules": ["pod-security/*"], "warn_rules": ["images/pinned-image"]}}),
    ];
    let mut compared = 0;
    let mut denied = 0;
    for data in &data_sets {
        let bundle = PolicyBundle::from_bytes("default", &bundle_bytes, data.clone())
            .await
            .unwrap();
        let inputs: Vec<Value> = corpus
            .iter()
            .map(|m| json!({"object": m.object, "tenant": {"name": "team-a", "namespaces": ["team-a", "team-a-jobs"]}, "revision": "abc123"}))
            .collect();
        let reference = opa_eval(&inputs, data);
        assert_eq!(reference.len(), corpus.len());
        for (manifest, expected) in corpus.iter().zip(reference) {
            let found = bundle
                .evaluate(std::slice::from_ref(manifest), &tenant(), "abc123")
                .await
                .unwrap();
            let found: Vec<Value> = found
                .iter()
                .map(|v| serde_json::to_value(&v.finding).unwrap())
                .collect();
            let expected: Vec<Value> = serde_json::from_value(expected).unwrap();
            assert_eq!(
                sorted(&found),
                sorted(&expected),
                "{} with data {data}",
                manifest.reference
            );
            compared += 1;
            denied += usize::from(found.iter().any(|f| f["severity"] == "deny"));
        }
    }
    eprintln!(
        "compared {compared} decisions ({} manifests × {} parameter sets), {denied} with denials",
        corpus.len(),
        data_sets.len()
    );
    assert!(denied > 0 && denied < compared);
}
