//! A corpus of manifests for policy tests and benchmarks: realistic workloads and every
//! rule's failing cases.

use std::path::Path;

use berth_engine::manifest::Manifest;
use berth_engine::render::{SourceFile, parse_file};
use serde_json::{Value, json};

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

/// 268 manifests: every workload kind with one container and with a sidecar, each mutated to
/// break one rule at a time (or none), RBAC, Services and other kinds, and the real podinfo
/// manifests. Namespaced in `team-a`.
pub fn corpus() -> Vec<Manifest> {
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
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/fixtures/podinfo-kustomize");
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
