//! The admission webhook's cost per request: the same writes by a tenant member through the API
//! server, into a tenant namespace (checked by the webhook with the default library) and into a
//! namespace no webhook covers; p50 and p99 of each, and the webhook's own time per review.

use std::time::{Duration, Instant};

use berth_e2e::{ControlPlane, TestNamespace, TestOperator, TestRepo, tenant_document};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;

const WRITES: usize = 200;

pub struct Admission {
    with: Vec<f64>,
    without: Vec<f64>,
    /// Mean time the webhook took per review, from its own histogram.
    webhook_mean: f64,
    reviews: f64,
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "bench"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "bench"}},
            "template": {"metadata": {"labels": {"app": "bench"}}, "spec": {
                "securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{"name": "app", "image": "registry.example/app:1.2.3",
                    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}}}]}}}
    }))
    .expect("deployment")
}

async fn writes(client: &Client, namespace: &str, prefix: &str) -> Vec<f64> {
    let api = Api::<Deployment>::namespaced(client.clone(), namespace);
    let mut took = Vec::with_capacity(WRITES);
    for i in 0..WRITES {
        let t = Instant::now();
        api.create(
            &PostParams::default(),
            &deployment(&format!("{prefix}-{i}")),
        )
        .await
        .expect("create");
        took.push(t.elapsed().as_secs_f64());
    }
    took.sort_by(f64::total_cmp);
    took
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Onboards a tenant with a member (operator without agents, in its own namespace), then times
/// the member's writes there and in a plain namespace.
pub async fn measure(cp: &'static ControlPlane, admin: &Client) -> Admission {
    let operator_ns = TestNamespace::create(admin, "bench-adm")
        .await
        .expect("namespace");
    let plain = TestNamespace::create(admin, "bench-plain")
        .await
        .expect("namespace");
    let namespace = operator_ns.name.as_str();
    let tenant = format!("{namespace}-t");
    let platform = TestRepo::new();
    platform.write(
        &format!("tenants/{tenant}.yaml"),
        tenant_document(
            namespace,
            &tenant,
            "  source: {url: 'https://git.example.com/unused.git'}\n  members: [{kind: User, name: bench-member, role: edit}]\n",
        ),
    );
    platform.commit("onboard");
    let cache = tempfile::tempdir().expect("cache");
    let operator = TestOperator::start(
        cp,
        namespace,
        cache.path(),
        &[
            "--platform-repo",
            &platform.file_url(),
            "--platform-interval",
            "1s",
        ],
    );
    let member = cp
        .user_client("bench-member", &["system:authenticated"])
        .await
        .expect("member client");
    // The member may write in the plain namespace too, which no webhook covers.
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "bench-member"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "User", "name": "bench-member", "apiGroup": "rbac.authorization.k8s.io"}],
    }))
    .expect("binding");
    Api::<RoleBinding>::namespaced(admin.clone(), &plain.name)
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
    // Ready to admit once a first write goes through (tenant provisioned, policy compiled).
    let api = Api::<Deployment>::namespaced(member.clone(), &tenant);
    let deadline = Instant::now() + Duration::from_secs(120);
    while api
        .create(&PostParams::default(), &deployment("warm-up"))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "the tenant never admitted a write"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let with = writes(&member, &tenant, "with").await;
    let without = writes(&member, &plain.name, "without").await;
    let count = operator
        .metric("berth_operator_admission_duration_seconds_count")
        .await;
    let sum = operator
        .metric("berth_operator_admission_duration_seconds_sum")
        .await;
    drop(operator);
    for ns in [&operator_ns, &plain] {
        ns.delete(admin).await;
    }
    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone())
        .delete(&tenant, &Default::default())
        .await;
    Admission {
        with,
        without,
        webhook_mean: if count > 0.0 { sum / count } else { 0.0 },
        reviews: count,
    }
}

impl Admission {
    pub fn print(&self) {
        let ms = |v: f64| v * 1000.0;
        println!(
            "  admission, {WRITES} Deployment creates by a member: with the webhook p50 {:.1} ms, p99 {:.1} ms; without p50 {:.1} ms, p99 {:.1} ms",
            ms(quantile(&self.with, 0.5)),
            ms(quantile(&self.with, 0.99)),
            ms(quantile(&self.without, 0.5)),
            ms(quantile(&self.without, 0.99)),
        );
        println!(
            "  admission webhook's own time per review (mean of {:.0}): {:.2} ms",
            self.reviews,
            ms(self.webhook_mean)
        );
    }
}
