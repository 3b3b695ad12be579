//! A corpus of manifests for policy tests and benchmarks: realistic workloads and every
//! rule's failing cases, under either profile.

use std::path::Path;

use berth_engine::api::TENANT_LABEL;
use berth_engine::manifest::Manifest;
use berth_engine::render::{SourceFile, parse_file};
use serde_json::{Value, json};

/// A hardened pod spec, compliant with every rule under either profile; mutations break one
/// rule at a time.
fn pod_spec() -> Value {
    json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
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

/// One mutation per rule of pod security, images, resources and the pod-level tenancy rules,
/// plus compliant variants (some compliant only under the baseline profile).
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
        ("host-port", |s| {
            s["containers"][0]["ports"] = json!([{"containerPort": 8080, "hostPort": 80}])
        }),
        ("host-port-zero", |s| {
            s["containers"][0]["ports"] = json!([{"containerPort": 8080, "hostPort": 0}])
        }),
        ("cap-chown", |s| {
            s["containers"][0]["securityContext"]["capabilities"]["add"] = json!(["CHOWN"])
        }),
        ("cap-net-raw", |s| {
            s["containers"][0]["securityContext"]["capabilities"]["add"] = json!(["NET_RAW"])
        }),
        ("no-drop-all", |s| {
            s["containers"][0]["securityContext"]["capabilities"] = json!({"drop": ["NET_RAW"]})
        }),
        ("seccomp-unset", |s| {
            s["securityContext"] = json!({"runAsNonRoot": true})
        }),
        ("seccomp-unconfined-pod", |s| {
            s["securityContext"]["seccompProfile"] = json!({"type": "Unconfined"})
        }),
        ("seccomp-unconfined-container", |s| {
            s["containers"][0]["securityContext"]["seccompProfile"] = json!({"type": "Unconfined"})
        }),
        ("apparmor-unconfined", |s| {
            s["containers"][0]["securityContext"]["appArmorProfile"] = json!({"type": "Unconfined"})
        }),
        ("selinux-spc", |s| {
            s["securityContext"]["seLinuxOptions"] = json!({"type": "spc_t"})
        }),
        ("selinux-user", |s| {
            s["containers"][0]["securityContext"]["seLinuxOptions"] = json!({"user": "system_u"})
        }),
        ("proc-unmasked", |s| {
            s["containers"][0]["securityContext"]["procMount"] = json!("Unmasked")
        }),
        ("user-namespace", |s| {
            s["hostUsers"] = json!(false);
            s["securityContext"]["runAsUser"] = json!(0);
            s["securityContext"]["runAsNonRoot"] = json!(false);
            s["containers"][0]["securityContext"]["procMount"] = json!("Unmasked");
        }),
        (
            "sysctl-safe",
            |s| {
                s["securityContext"]["sysctls"] =
                    json!([{"name": "net.ipv4.tcp_keepalive_time", "value": "60"}])
            },
        ),
        ("sysctl-unsafe", |s| {
            s["securityContext"]["sysctls"] = json!([{"name": "kernel.msgmax", "value": "65536"}])
        }),
        ("host-process", |s| {
            s["securityContext"]["windowsOptions"] = json!({"hostProcess": true})
        }),
        (
            "probe-host",
            |s| {
                s["containers"][0]["livenessProbe"] =
                    json!({"httpGet": {"port": 80, "host": "169.254.169.254"}})
            },
        ),
        ("run-as-non-root-pod-false", |s| {
            s["securityContext"]["runAsNonRoot"] = json!(false);
            s["containers"][0]["securityContext"]["runAsNonRoot"] = json!(true);
        }),
        (
            "nfs-volume",
            |s| {
                s["volumes"] =
                    json!([{"name": "share", "nfs": {"server": "nfs.example", "path": "/"}}])
            },
        ),
        (
            "image-volume",
            |s| {
                s["volumes"] =
                    json!([{"name": "models", "image": {"reference": "ghcr.io/acme/models:3.1"}}])
            },
        ),
        (
            "image-volume-latest",
            |s| s["volumes"] = json!([{"name": "models", "image": {"reference": "docker.io/other/models:latest"}}]),
        ),
        (
            "ephemeral-volume-pv",
            |s| s["volumes"] = json!([{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {"volumeName": "pv-foreign"}}}}]),
        ),
        ("agent-service-account", |s| {
            s["serviceAccountName"] = json!("berth-agent")
        }),
        ("windows", |s| {
            s["os"] = json!({"name": "windows"});
            s["securityContext"] = json!({"runAsNonRoot": true});
            s["containers"][0]["securityContext"] = json!({});
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
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "plaintext", "namespace": "team-a"}, "stringData": {"k": "v"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": ENCRYPTED_SECRET, "namespace": "team-a"}, "data": {"k": "dg=="}}),
    ]
}

/// The corpus Secret marked as committed encrypted with SOPS.
const ENCRYPTED_SECRET: &str = "sops-encrypted";

/// Objects for the rules that keep a tenant inside its boundary: Services, Ingresses,
/// NetworkPolicies, RBAC subjects, volumes and tokens; compliant and violating.
fn escape_objects() -> Vec<Value> {
    let meta = |name: &str| json!({"name": name, "namespace": "team-a"});
    let svc = |name: &str, spec: Value| json!({"apiVersion": "v1", "kind": "Service", "metadata": meta(name), "spec": spec});
    let external_name = |name: &str, target: &str| {
        svc(
            name,
            json!({"type": "ExternalName", "externalName": target}),
        )
    };
    let backend = json!({"service": {"name": "web", "port": {"number": 80}}});
    let rule = |host: &str| json!({"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}});
    let ingress = |name: &str, spec: Value| json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta(name), "spec": spec});
    let netpol = |name: &str, ingress: Value| {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(name),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": ingress}})
    };
    let from_namespaces = |name: &str, selector: Value| {
        netpol(
            name,
            json!([{"from": [{"namespaceSelector": selector, "podSelector": {}}]}]),
        )
    };
    let subject_binding = |name: &str, kind: &str, subject: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta(name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}]})
    };
    let claim = |name: &str, extra: Value| {
        let mut spec = json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta(name), "spec": spec})
    };
    let secret = |name: &str, kind: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "type": kind,
            "metadata": {"name": name, "namespace": "team-a",
                "annotations": {"kubernetes.io/service-account.name": "berth-agent"}}})
    };
    let mut annotated = workload("Pod", "apparmor-annotation", pod_spec());
    annotated["metadata"]["annotations"] =
        json!({"container.apparmor.security.beta.kubernetes.io/app": "unconfined"});
    let mut profiled = workload("Pod", "apparmor-localhost", pod_spec());
    profiled["metadata"]["annotations"] =
        json!({"container.apparmor.security.beta.kubernetes.io/app": "localhost/k8s-app"});
    let mut claim_templates = workload("StatefulSet", "claim-templates", pod_spec());
    claim_templates["spec"]["volumeClaimTemplates"] = json!([
        {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
        {"metadata": {"name": "stolen"}, "spec": {"volumeName": "pv-foreign"}},
    ]);
    vec![
        svc(
            "external-ips",
            json!({"ports": [{"port": 80}], "externalIPs": ["8.8.8.8"]}),
        ),
        external_name("alias-public", "api.example.com"),
        external_name("alias-own", "web.team-a.svc.cluster.local"),
        external_name("alias-api-server", "kubernetes.default.svc.cluster.local"),
        external_name("alias-short", "kubernetes"),
        external_name("alias-metadata", "169.254.169.254"),
        external_name("alias-foreign", "db.team-b.svc"),
        ingress("routed", json!({"rules": [rule("shop.example.com")]})),
        ingress(
            "granted-wildcard",
            json!({"rules": [rule("api.apps.example.com")]}),
        ),
        ingress(
            "too-deep",
            json!({"rules": [rule("a.api.apps.example.com")]}),
        ),
        ingress("wildcard", json!({"rules": [rule("*.example.com")]})),
        ingress(
            "hostless",
            json!({"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]}),
        ),
        ingress("default-backend", json!({"defaultBackend": backend})),
        ingress(
            "tls-default",
            json!({"tls": [{"secretName": "cert"}], "rules": [rule("shop.example.com")]}),
        ),
        netpol("same-namespace", json!([{"from": [{"podSelector": {}}]}])),
        from_namespaces(
            "from-allowed-namespace",
            json!({"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}),
        ),
        netpol("open", json!([{}])),
        netpol("empty-from", json!([{"from": [], "ports": [{"port": 80}]}])),
        netpol(
            "ip-block",
            json!([{"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]),
        ),
        from_namespaces("all-namespaces", json!({})),
        from_namespaces(
            "tenant-label",
            json!({"matchLabels": {TENANT_LABEL: "team-a"}}),
        ),
        from_namespaces(
            "own-namespace",
            json!({"matchLabels": {"kubernetes.io/metadata.name": "team-a-jobs"}}),
        ),
        from_namespaces(
            "foreign-namespace",
            json!({"matchLabels": {"kubernetes.io/metadata.name": "team-b"}}),
        ),
        from_namespaces(
            "own-expression",
            json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-a-jobs"]}]}),
        ),
        from_namespaces(
            "any-tenant",
            json!({"matchExpressions": [{"key": TENANT_LABEL, "operator": "Exists"}]}),
        ),
        subject_binding("anonymous", "User", "system:anonymous"),
        subject_binding("authenticated", "Group", "system:authenticated"),
        subject_binding("masters", "Group", "system:masters"),
        subject_binding("own-sa-user", "User", "system:serviceaccount:team-a:app"),
        subject_binding("person", "User", "alice@example.com"),
        claim("dynamic", json!({"storageClassName": "standard"})),
        claim("bound", json!({"volumeName": "pv-foreign"})),
        claim_templates,
        secret("token", "kubernetes.io/service-account-token"),
        secret("opaque", "Opaque"),
        annotated,
        profiled,
    ]
}

/// 638 manifests: every workload kind with one container and with a sidecar, each mutated to
/// break one rule at a time (or none), RBAC, Services, Ingresses, NetworkPolicies, claims,
/// Secrets and other kinds, and the real podinfo manifests. Namespaced in `team-a`.
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
    objects.extend(escape_objects());
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
    for m in &mut manifests {
        if m.reference.name == ENCRYPTED_SECRET {
            m.encrypted = Some(true);
        }
    }
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
