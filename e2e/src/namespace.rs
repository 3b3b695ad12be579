//! A fresh namespace per test: dumped to stderr when the test fails, deleted afterwards.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::ControlPlane;

/// A namespace owned by one test.
#[derive(Debug, Clone)]
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    /// Creates `e2e-PREFIX-<unique suffix>`.
    pub async fn create(client: &Client, prefix: &str) -> Result<Self, kube::Error> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!(
            "e2e-{prefix}-{:x}{}",
            nanos % 0xfffff,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("berth.dev/e2e".to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(Self { name })
    }

    /// Prints what the namespace holds and its events, for a failed test's log.
    pub fn dump(&self, cp: &ControlPlane) {
        let output = cp
            .kubectl()
            .args([
                "get",
                "all,events,serviceaccounts,roles,rolebindings,resourcequotas,limitranges,configmaps",
                "--namespace",
                &self.name,
                "--output",
                "yaml",
            ])
            .output();
        match output {
            Ok(out) => eprintln!(
                "---- state of namespace {} ----\n{}{}",
                self.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("---- could not dump namespace {}: {e}", self.name),
        }
    }

    /// Starts deleting the namespace (if a test has not already); the namespace controller
    /// finishes in the background.
    pub async fn delete(&self, client: &Client) {
        let result = Api::<Namespace>::all(client.clone())
            .delete(&self.name, &DeleteParams::default())
            .await;
        match result {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => eprintln!("cleaning up namespace {}: {e}", self.name),
        }
    }
}

/// Runs `test` with admin client and a fresh namespace; on failure (error or panic) dumps the
/// namespace, and always deletes it. Errors and panics propagate to fail the test.
pub async fn in_namespace<F, Fut>(prefix: &str, test: F)
where
    F: FnOnce(&'static ControlPlane, Client, TestNamespace) -> Fut,
    Fut: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
{
    let cp = match crate::control_plane() {
        Ok(cp) => cp,
        Err(e) => panic!("the local control plane is not available: {e}"),
    };
    let client = match cp.admin_client().await {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let ns = match TestNamespace::create(&client, prefix).await {
        Ok(ns) => ns,
        Err(e) => panic!("creating the test namespace: {e}"),
    };
    let outcome = AssertUnwindSafe(test(cp, client.clone(), ns.clone()))
        .catch_unwind()
        .await;
    let failed = !matches!(outcome, Ok(Ok(())));
    if failed {
        ns.dump(cp);
    }
    ns.delete(&client).await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("test in namespace {} failed: {e}", ns.name),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Creates namespace `name` if it does not exist (server-side apply; idempotent).
pub async fn ensure_namespace(client: &Client, name: &str) -> Result<(), kube::Error> {
    let namespace = k8s_openapi::api::core::v1::Namespace {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..kube::api::ObjectMeta::default()
        },
        ..Default::default()
    };
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
        .patch(
            name,
            &kube::api::PatchParams::apply("berth-e2e").force(),
            &kube::api::Patch::Apply(&namespace),
        )
        .await
        .map(|_| ())
}
