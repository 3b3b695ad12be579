//! Differential test: on a corpus of realistic workloads and every rule's failing cases, the
//! decisions `opa-wasm` reaches in Rust equal `opa eval`'s on the same inputs, for several
//! parameter sets.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_engine::guard::TenantContext;
use berth_engine::manifest::Manifest;
use berth_engine::policy::PolicyBundle;
use berth_engine::render::{SourceFile, parse_file};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tenant() -> TenantContext {
    TenantContext {
        name: "team-a".into(),
        namespaces: vec!["team-a".into(), "team-a-jobs".into()],
        allowed_kinds: vec!["*".into()],
    }
}

/// A hardened pod spec, compliant with every rule; mutations break one rule at a time.
fn pod_spec() -> Value {
    json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 10001},
        "containers": [{
            "name": "app",
            "image": "ghcr.io/acme/app:1.4.2",
            "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        }],
    })
}

fn workload(kind: &str, name: &str, spec: Value) -> Value {
    let meta =
        json!({"name": name, "namespace": "team-a", "labels": {"app.kubernetes.io/name": name}});
    let template = json!({"metadata": {"labels": {"app": name}}, "spec": spec});
    let selector = json!({"matchLabels": {"app": name}});
    match kind {
        "Pod" => json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}),
        "CronJob" => json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
            "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}}}),
        "Job" => {
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {"template": template}})
        }
        other => json!({"apiVersion": "apps/v1", "kind": other, "metadata": meta,
            "spec": {"selector": selector, "template": template}}),
    }
}

/// One mutation per rule of pod security, images and resources, plus compliant variants.
type Mutation = (&'static str, fn(&mut Value));

fn mutations() -> Vec<Mutation> {
    vec![
        ("compliant", |_| {}),
        ("privileged", |s| {
            s["containers"][0]["securityContext"]["privileged"] = json!(true)
        }),
        ("host-path", |s| {
            s["volumes"] = json!([{"name": "root", "hostPath": {"path": "/"}}])
        }),
        ("host-network", |s| s["hostNetwork"] = json!(true)),
        ("host-pid", |s| s["hostPID"] = json!(true)),
        ("escalation-allowed", |s| {
            s["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true)
        }),
        ("escalation-unset", |s| {
            s["containers"][0]["securityContext"] = json!({})
        }),
        ("root-user", |s| {
            s["containers"][0]["securityContext"]["runAsUser"] = json!(0)
        }),
        ("non-root-unset", |s| s["securityContext"] = json!({})),
        ("cap-sys-admin", |s| {
            s["containers"][0]["securityContext"]["capabilities"]["add"] = json!(["SYS_ADMIN"])
        }),
        ("cap-bind", |s| {
            s["containers"][0]["securityContext"]["capabilities"]["add"] =
                json!(["NET_BIND_SERVICE"])
        }),
        ("latest", |s| {
            s["containers"][0]["image"] = json!("ghcr.io/acme/app:latest")
        }),
        ("untagged", |s| {
            s["containers"][0]["image"] = json!("registry.local:5000/app")
        }),
        ("digest", |s| {
            s["containers"][0]["image"] = json!("ghcr.io/acme/app@sha256:0f1e2d")
        }),
        ("docker-hub", |s| {
            s["containers"][0]["image"] = json!("nginx:1.27")
        }),
        ("no-limits", |s| {
            s["containers"][0]["resources"] = json!({"requests": {"cpu": "10m"}})
        }),
        ("init-container", |s| {
            s["initContainers"] = json!([{"name": "init", "image": "busybox"}])
        }),
        ("two-problems", |s| {
            s["containers"][0]["image"] = json!("app");
            s["hostIPC"] = json!(true);
        }),
    ]
}

fn other_objects() -> Vec<Value> {
    let rb = |name: &str, role_kind: &str, role: &str, subject_ns: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": "team-a"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": subject_ns}]})
    };
    let svc = |name: &str, kind: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "team-a"},
            "spec": {"type": kind, "ports": [{"port": 80}], "selector": {"app": "web"}}})
    };
    vec![
        rb("view", "ClusterRole", "view", "team-a"),
        rb("edit", "ClusterRole", "edit", "team-a"),
        rb("admin", "ClusterRole", "cluster-admin", "team-a"),
        rb("own-role", "Role", "deployer", "team-a-jobs"),
        rb("foreign-subject", "Role", "deployer", "team-b"),
        svc("cluster-ip", "ClusterIP"),
        svc("node-port", "NodePort"),
        svc("load-balancer", "LoadBalancer"),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "team-a"}, "data": {"k": "v"}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "elsewhere", "namespace": "team-b"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-z"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "x"}, "rules": []}),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "team-a"}, "spec": {}}),
    ]
}

fn corpus() -> Vec<Manifest> {
    let mut objects = Vec::new();
    // Each workload kind, with one container and with a compliant sidecar beside it.
    let with_sidecar = |mut spec: Value| {
        let mut sidecar = spec["containers"][0].clone();
        sidecar["name"] = json!("sidecar");
        sidecar["image"] = json!("ghcr.io/acme/proxy:2.0.1");
        spec["containers"].as_array_mut().unwrap().push(sidecar);
        spec
    };
    for kind in [
        "Pod",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "CronJob",
    ] {
        for (variant, base) in [
            ("single", pod_spec()),
            ("sidecar", with_sidecar(pod_spec())),
        ] {
            for (name, mutate) in mutations() {
                let mut spec = base.clone();
                mutate(&mut spec);
                let object_name = format!("{}-{variant}-{name}", kind.to_lowercase());
                objects.push(workload(kind, &object_name, spec));
            }
        }
    }
    objects.extend(other_objects());
    let mut manifests: Vec<Manifest> = objects
        .into_iter()
        .enumerate()
        .flat_map(|(i, o)| {
            let text = serde_json::to_string(&o).unwrap();
            parse_file(&SourceFile {
                path: format!("corpus/{i}.json"),
                content: text.into_bytes(),
            })
            .unwrap()
        })
        .collect();
    // The real podinfo manifests, as published.
    let fixture = root().join("engine/tests/fixtures/podinfo-kustomize");
    for file in ["deployment.yaml", "service.yaml", "hpa.yaml"] {
        let content = std::fs::read(fixture.join(file)).unwrap();
        let mut parsed = parse_file(&SourceFile {
            path: file.into(),
            content,
        })
        .unwrap();
        for m in &mut parsed {
            m.set_namespace("team-a");
        }
        manifests.extend(parsed);
    }
    manifests
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
