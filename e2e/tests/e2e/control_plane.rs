//! Smoke tests proving the local control plane is a real one: RBAC, quota, ServiceAccount
//! tokens, namespace deletion and the server's version all behave as in a production cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_e2e::{TestNamespace, in_namespace};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Pod, ResourceQuota, Secret, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::support::{TestResult, eventually, service_account_token, status_code};

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..ObjectMeta::default()
    }
}

fn config_map(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: meta(name),
        data: Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])),
        ..ConfigMap::default()
    }
}

/// Grants ServiceAccount `sa` full control of ConfigMaps in `ns`, and nothing else.
async fn bind_configmap_editor(client: &Client, ns: &str, sa: &str) -> TestResult {
    let role = Role {
        metadata: meta("configmap-editor"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            verbs: vec!["*".into()],
            ..PolicyRule::default()
        }]),
    };
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await?;
    let binding = RoleBinding {
        metadata: meta("configmap-editor"),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "configmap-editor".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: sa.into(),
            namespace: Some(ns.into()),
            ..Subject::default()
        }]),
    };
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(())
}

#[tokio::test]
async fn service_account_rbac_is_confined_to_its_namespace() {
    in_namespace("rbac", |cp, admin, ns_a| async move {
        let ns_b = TestNamespace::create(&admin, "rbac-other").await?;
        let token = service_account_token(&admin, &ns_a.name, "agent").await?;
        bind_configmap_editor(&admin, &ns_a.name, "agent").await?;
        let agent = cp.token_client(&token).await?;

        // RBAC evaluation is cached briefly after a binding is created: wait for the grant.
        let own = Api::<ConfigMap>::namespaced(agent.clone(), &ns_a.name);
        eventually(
            "the RoleBinding to take effect",
            Duration::from_secs(30),
            || async {
                own.create(&PostParams::default(), &config_map("allowed"))
                    .await
                    .ok()
            },
        )
        .await?;

        let other = Api::<ConfigMap>::namespaced(agent.clone(), &ns_b.name)
            .create(&PostParams::default(), &config_map("denied"))
            .await;
        assert_eq!(
            status_code(&other),
            Some(403),
            "creating in another namespace: {other:?}"
        );

        let cluster_role = ClusterRole {
            metadata: meta(&format!("{}-escalate", ns_a.name)),
            ..ClusterRole::default()
        };
        let escalate = Api::<ClusterRole>::all(agent)
            .create(&PostParams::default(), &cluster_role)
            .await;
        assert_eq!(
            status_code(&escalate),
            Some(403),
            "creating a ClusterRole: {escalate:?}"
        );

        // The same answers through kubectl, as an operator would check them.
        let user = format!("system:serviceaccount:{}:agent", ns_a.name);
        for (ns, expected) in [(&ns_a.name, "yes"), (&ns_b.name, "no")] {
            let out = cp
                .kubectl()
                .args([
                    "auth",
                    "can-i",
                    "create",
                    "configmaps",
                    "--namespace",
                    ns,
                    "--as",
                    &user,
                ])
                .output()?;
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                expected,
                "can-i in {ns}"
            );
        }
        ns_b.delete(&admin).await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn token_request_token_authenticates_as_the_service_account() {
    in_namespace("token", |cp, admin, ns| async move {
        let token = service_account_token(&admin, &ns.name, "reviewer").await?;
        let as_sa = cp.token_client(&token).await?;
        let review: SelfSubjectReview = Api::all(as_sa)
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await?;
        let user = review.status.and_then(|s| s.user_info).unwrap_or_default();
        assert_eq!(
            user.username.as_deref(),
            Some(format!("system:serviceaccount:{}:reviewer", ns.name).as_str())
        );
        let groups = user.groups.unwrap_or_default();
        assert!(
            groups.contains(&"system:serviceaccounts".to_owned()),
            "groups: {groups:?}"
        );
        assert!(
            groups.contains(&format!("system:serviceaccounts:{}", ns.name)),
            "groups: {groups:?}"
        );
        Ok(())
    })
    .await;
}

fn pod(name: &str) -> Result<Pod, serde_json::Error> {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}
    }))
}

#[tokio::test]
async fn resource_quota_rejects_the_pod_over_the_limit() {
    in_namespace("quota", |_, admin, ns| async move {
        // ServiceAccount admission refuses pods until the controller has made "default".
        let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), &ns.name);
        eventually(
            "the default ServiceAccount",
            Duration::from_secs(30),
            || async { accounts.get_opt("default").await.ok().flatten() },
        )
        .await?;
        let quotas = Api::<ResourceQuota>::namespaced(admin.clone(), &ns.name);
        let quota: ResourceQuota = serde_json::from_value(json!({
            "metadata": {"name": "pods"},
            "spec": {"hard": {"pods": "1"}}
        }))?;
        quotas.create(&PostParams::default(), &quota).await?;
        // Admission enforces a quota once the quota controller has filled in status.hard.
        eventually(
            "the quota controller to fill status.hard",
            Duration::from_secs(60),
            || async {
                let q = quotas.get("pods").await.ok()?;
                q.status
                    .and_then(|s| s.hard)
                    .filter(|h| h.contains_key("pods"))
            },
        )
        .await?;

        let pods = Api::<Pod>::namespaced(admin.clone(), &ns.name);
        pods.create(&PostParams::default(), &pod("first")?).await?;
        let second = pods.create(&PostParams::default(), &pod("second")?).await;
        assert_eq!(status_code(&second), Some(403), "second pod: {second:?}");
        let message = match &second {
            Err(kube::Error::Api(status)) => status.message.clone(),
            _ => String::new(),
        };
        assert!(message.contains("exceeded quota"), "message: {message}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn deleting_a_namespace_with_objects_completes() {
    in_namespace("delete", |_, admin, victim| async move {
        Api::<ConfigMap>::namespaced(admin.clone(), &victim.name)
            .create(&PostParams::default(), &config_map("cm"))
            .await?;
        let secret: Secret = serde_json::from_value(json!({
            "metadata": {"name": "s"}, "stringData": {"password": "hunter2"}
        }))?;
        Api::<Secret>::namespaced(admin.clone(), &victim.name)
            .create(&PostParams::default(), &secret)
            .await?;
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "registry.k8s.io/pause:3.10"}]}
                }
            }
        }))?;
        Api::<Deployment>::namespaced(admin.clone(), &victim.name)
            .create(&PostParams::default(), &deployment)
            .await?;
        // The deployment controller answering proves the controllers run, so the namespace
        // holds owned objects (ReplicaSet, Pods) that deletion must also clear.
        let replica_sets = Api::<ReplicaSet>::namespaced(admin.clone(), &victim.name);
        eventually(
            "the Deployment's ReplicaSet",
            Duration::from_secs(60),
            || async {
                let list = replica_sets.list(&ListParams::default()).await.ok()?;
                (!list.items.is_empty()).then_some(())
            },
        )
        .await?;

        victim.delete(&admin).await;
        let namespaces = Api::<Namespace>::all(admin.clone());
        eventually(
            "the namespace to be gone",
            Duration::from_secs(120),
            || async { matches!(namespaces.get_opt(&victim.name).await, Ok(None)).then_some(()) },
        )
        .await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn the_server_reports_the_real_kubernetes_version() {
    in_namespace("version", |cp, admin, _| async move {
        let expected = include_str!("../../kube-harness/KUBE_VERSION").trim();
        let info = admin.apiserver_version().await?;
        assert_eq!(info.git_version, expected);
        let out = cp
            .kubectl()
            .args(["version", "--output", "json"])
            .output()?;
        assert!(
            out.status.success(),
            "kubectl version: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let version: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        assert_eq!(version["serverVersion"]["gitVersion"], expected);
        Ok(())
    })
    .await;
}
