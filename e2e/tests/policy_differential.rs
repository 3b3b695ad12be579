//! Differential test: on a corpus of realistic workloads and every rule's failing cases, the
//! decisions `opa-wasm` reaches in Rust equal `opa eval`'s on the same inputs, for several
//! parameter sets, both profiles among them. (No cluster needed; it lives here beside the
//! corpus it shares with the benchmark.)
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_e2e::policy_corpus::corpus;
use berth_engine::guard::TenantContext;
use berth_engine::policy::{PolicyBundle, input};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tenant() -> TenantContext {
    TenantContext {
        name: "team-a".into(),
        namespaces: vec!["team-a".into(), "team-a-jobs".into()],
        allowed_kinds: vec!["*".into()],
        hosts: vec!["shop.example.com".into(), "*.apps.example.com".into()],
        allow_from_namespaces: vec!["ingress-nginx".into()],
    }
}

/// The pinned opa CLI.
fn opa() -> PathBuf {
    let opa = std::env::var_os("BERTH_OPA")
        .map(PathBuf::from)
        .expect("BERTH_OPA must name the opa binary (cargo sets it from .cargo/config.toml)");
    assert!(
        opa.is_file(),
        "opa not found at {}: run `make tools`, which installs the pinned one there",
        opa.display()
    );
    opa
}

/// `opa eval` of the library on every input at once.
fn opa_eval(inputs: &[Value], data: &Value) -> Vec<Value> {
    let opa = opa();
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
    assert!(corpus.len() >= 600, "corpus of {} manifests", corpus.len());
    let mut references: Vec<String> = corpus.iter().map(|m| m.reference.to_string()).collect();
    references.sort();
    references.dedup();
    assert_eq!(
        references.len(),
        corpus.len(),
        "corpus references are unique"
    );
    let bundle_bytes = std::fs::read(root().join("policies/bundle.tar.gz")).unwrap();
    let data_sets = [
        json!({}),
        json!({"params": {"allowed_registries": ["ghcr.io/acme"], "required_labels": ["team"]}}),
        json!({"params": {"allowed_service_types": ["NodePort", "LoadBalancer"], "allow_powerful_rolebindings": true}}),
        json!({"params": {"disabled_rules": ["pod-security/*"], "warn_rules": ["images/pinned-image"]}}),
        json!({"params": {"profile": "baseline"}}),
        json!({"params": {"profile": "restricted"}}),
        json!({"params": {"profile": "restricted", "allowed_registries": ["ghcr.io/acme"], "required_labels": ["app.kubernetes.io/name"],
            "warn_rules": ["pod-security/require-seccomp"], "disabled_rules": ["resources/*"]}}),
        json!({"params": {"profile": "strict", "allowed_registry": ["ghcr.io/acme"]}}),
    ];
    // The inputs the engine builds (`PolicyBundle::evaluate`).
    let inputs: Vec<Value> = corpus
        .iter()
        .map(|m| input(m, &tenant(), "abc123"))
        .collect();
    let mut compared = 0;
    let mut denied_per_set = Vec::new();
    let mut fired = std::collections::BTreeSet::new();
    for data in &data_sets {
        let bundle = PolicyBundle::from_bytes("default", &bundle_bytes, data.clone())
            .await
            .unwrap();
        let reference = opa_eval(&inputs, data);
        assert_eq!(reference.len(), corpus.len());
        // The whole corpus as one revision, the way the agent evaluates it.
        let mut found: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for v in bundle.evaluate(&corpus, &tenant(), "abc123").await.unwrap() {
            found
                .entry(v.object.to_string())
                .or_default()
                .push(serde_json::to_value(&v.finding).unwrap());
        }
        let mut denied = 0;
        for (manifest, expected) in corpus.iter().zip(reference) {
            let found = found
                .remove(&manifest.reference.to_string())
                .unwrap_or_default();
            let expected: Vec<Value> = serde_json::from_value(expected).unwrap();
            assert_eq!(
                sorted(&found),
                sorted(&expected),
                "{} with data {data}",
                manifest.reference
            );
            compared += 1;
            denied += usize::from(found.iter().any(|f| f["severity"] == "deny"));
            fired.extend(found.iter().map(|f| {
                format!(
                    "{}/{}",
                    f["policy"].as_str().unwrap(),
                    f["rule"].as_str().unwrap()
                )
            }));
        }
        assert!(found.is_empty(), "findings for unknown objects: {found:?}");
        denied_per_set.push(denied);
    }
    eprintln!(
        "compared {compared} decisions ({} manifests × {} parameter sets); denied per set: {denied_per_set:?}",
        corpus.len(),
        data_sets.len()
    );
    let [default, _, _, _, baseline, restricted, _, invalid] = denied_per_set[..] else {
        unreachable!("one count per parameter set")
    };
    assert!(default > 0 && default < corpus.len());
    assert_eq!(baseline, default, "baseline is the default profile");
    assert!(
        restricted > baseline,
        "the restricted profile denies more than baseline"
    );
    assert_eq!(
        invalid,
        corpus.len(),
        "an unknown profile denies everything"
    );
    let never: Vec<String> = catalogued_rules()
        .into_iter()
        .filter(|id| !fired.contains(id))
        .collect();
    assert!(
        never.is_empty(),
        "rules the corpus never exercises: {never:?}"
    );
}

/// The rule ids of the library's catalogue (`data.berth.catalog`).
fn catalogued_rules() -> Vec<String> {
    let opa = opa();
    let out = Command::new(opa)
        .args(["eval", "--format", "json", "--data"])
        .arg(root().join("policies/berth"))
        .arg("object.keys(data.berth.catalog)")
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
