//! The agent's identity is Berth's, not the tenant's: members bound `edit` and `admin` in the
//! tenant's namespaces (roles that allow impersonating ServiceAccounts, requesting their
//! tokens, running Pods as them and editing Deployments and Secrets there) reach nothing of the
//! agent, which lives in its own namespace, and cannot write any tenant's PolicyReports or
//! TenantSyncs; neither can a tenant's own ServiceAccount; a tenant Pod naming the agent's
//! ServiceAccount is refused.

use std::time::Duration;

use berth_e2e::{TestOperator, TestRepo, in_namespace, install_crds, tenant_document};
use berth_engine::api::{TENANT_LABEL, agent_namespace};
use k8s_openapi::ByteString;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{DynamicObject, ObjectMeta, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::support::{eventually, service_account_token, status_code};

/// A request as RBAC sees it: verb, API group, resource, subresource, object name.
type Access<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);

/// Whether RBAC lets `user` (in the authenticated group) make `access` in `namespace`.
async fn allowed(admin: &Client, user: &str, namespace: &str, access: Access<'_>) -> bool {
    let (verb, group, resource, subresource, name) = access;
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(vec!["system:authenticated".into()]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource: subresource.map(Into::into),
                namespace: Some(namespace.into()),
                name: name.map(Into::into),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    Api::<SubjectAccessReview>::all(admin.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SubjectAccessReview")
        .status
        .is_some_and(|s| s.allowed)
}

fn report(namespace: &str, tenant: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "wgpolicyk8s.io/v1alpha2", "kind": "PolicyReport",
        "metadata": {"name": "forged", "namespace": namespace, "labels": {TENANT_LABEL: tenant}},
        "summary": {"pass": 1}, "results": [],
    }))
    .expect("report")
}

#[tokio::test]
async fn members_and_tenant_pods_cannot_become_the_agent_or_write_its_evidence() {
    in_namespace("identity", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let tenant = format!("{}-t", platform.name);
        let home = agent_namespace(&tenant);
        let repo = TestRepo::new();
        repo.write("app.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n");
        repo.commit("app");
        // Credentials, so the agent's namespace holds a credentials copy as well.
        let secret = Secret {
            metadata: ObjectMeta { name: Some("t-git".into()), labels: Some([(TENANT_LABEL.to_owned(), tenant.clone())].into()), ..ObjectMeta::default() },
            data: Some([("identity", "key"), ("known_hosts", "hosts")].into_iter()
                .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec()))).collect()),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(admin.clone(), &platform.name).create(&PostParams::default(), &secret).await?;
        let platform_repo = TestRepo::new();
        let spec = format!(
            "  source: {{url: '{}', credentialsSecret: t-git}}\n  members:\n  - {{kind: User, name: alice, role: edit}}\n  - {{kind: User, name: bob, role: admin}}\n",
            repo.file_url()
        );
        platform_repo.write(&format!("tenants/{tenant}.yaml"), tenant_document(&platform.name, &tenant, &spec));
        platform_repo.commit("onboard");
        let cache = tempfile::tempdir()?;
        // Agents as Deployments: the agent's workload and credentials copy exist as objects.
        let _operator = TestOperator::start(cp, &platform.name, cache.path(), &[
            "--platform-repo", &platform_repo.file_url(), "--platform-interval", "1s",
            "--agent-mode", "deployment", "--agent-image", "registry.example/berth-agent:e2e",
        ]);
        eventually("the agent's Deployment", Duration::from_secs(90), || async {
            Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(admin.clone(), &home)
                .get_opt("berth-agent").await.ok().flatten()
        })
        .await?;

        for member in ["alice", "bob"] {
            // The roles do grant these powers, in the tenant's namespace: the checks below are
            // not vacuous.
            assert!(allowed(&admin, member, &tenant, ("impersonate", "", "serviceaccounts", None, Some("default"))).await, "{member}");
            assert!(allowed(&admin, member, &tenant, ("update", "apps", "deployments", None, None)).await, "{member}");
            // But nothing of the agent's.
            for (verb, group, resource, sub, name) in [
                ("impersonate", "", "serviceaccounts", None, Some("berth-agent")),
                ("create", "", "serviceaccounts", Some("token"), Some("berth-agent")),
                ("get", "", "secrets", None, Some("berth-agent-git")),
                ("get", "", "secrets", None, Some("berth-report-key")),
                ("update", "apps", "deployments", None, Some("berth-agent")),
                ("patch", "apps", "deployments", None, Some("berth-agent")),
                ("create", "", "pods", Some("exec"), None),
                ("create", "", "pods", None, None),
            ] {
                assert!(
                    !allowed(&admin, member, &home, (verb, group, resource, sub, name)).await,
                    "{member} may {verb} {resource}/{} {name:?} in the agent's namespace",
                    sub.unwrap_or_default()
                );
            }
            // The evidence, anywhere: the agent's namespace and the tenant's own.
            for ns in [&home, &tenant] {
                for verb in ["create", "update", "patch", "delete"] {
                    assert!(!allowed(&admin, member, ns, (verb, "wgpolicyk8s.io", "policyreports", None, None)).await, "{member} {verb} policyreports in {ns}");
                    assert!(!allowed(&admin, member, ns, (verb, "berth.dev", "tenantsyncs", None, None)).await, "{member} {verb} tenantsyncs in {ns}");
                    assert!(!allowed(&admin, member, ns, (verb, "berth.dev", "tenantsyncs", Some("status"), None)).await, "{member} {verb} tenantsyncs/status in {ns}");
                }
            }
            // And real requests as the member say the same: 403.
            let client = cp.user_client(member, &["system:authenticated"]).await?;
            let secrets = Api::<Secret>::namespaced(client.clone(), &home);
            assert_eq!(status_code(&secrets.get("berth-agent-git").await), Some(403), "{member}");
            let deployments = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &home);
            let patched = deployments.patch("berth-agent", &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "evil"}]}}}}))).await;
            assert_eq!(status_code(&patched), Some(403), "{member}");
            let token: Result<k8s_openapi::api::authentication::v1::TokenRequest, _> =
                Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), &home)
                    .create_subresource("token", "berth-agent", &PostParams::default(),
                        &k8s_openapi::api::authentication::v1::TokenRequest::default()).await;
            assert_eq!(status_code(&token), Some(403), "{member}");
            for ns in [&home, &tenant] {
                let reports = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &berth_engine::report::resource());
                assert_eq!(status_code(&reports.create(&PostParams::default(), &report(ns, &tenant)).await), Some(403), "{member} in {ns}");
            }
        }

        // A ServiceAccount of the tenant's own (what a tenant Pod runs as), even one bound
        // `admin` in the tenant's namespace, gets no further.
        let token = service_account_token(&admin, &tenant, "app").await?;
        let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "app-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": tenant}],
        }))?;
        Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin.clone(), &tenant).create(&PostParams::default(), &binding).await?;
        let as_pod = cp.token_client(&token).await?;
        for ns in [&home, &tenant] {
            let reports = Api::<DynamicObject>::namespaced_with(as_pod.clone(), ns, &berth_engine::report::resource());
            assert_eq!(status_code(&reports.create(&PostParams::default(), &report(ns, &tenant)).await), Some(403), "in {ns}");
            let syncs = Api::<berth_engine::api::TenantSync>::namespaced(as_pod.clone(), ns);
            let patched = syncs.patch_status("berth", &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"status": {"result": "Applied"}}))).await;
            assert_eq!(status_code(&patched), Some(403), "TenantSync status in {ns}");
        }

        // A tenant Pod naming the agent's ServiceAccount is refused (it has none of that name
        // to run as, and the policy names the attempt).
        let alice = cp.user_client("alice", &["system:authenticated"]).await?;
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "steal"},
            "spec": {"serviceAccountName": "berth-agent",
                "containers": [{"name": "c", "image": "registry.example/app:1"}]},
        }))?;
        let created = Api::<Pod>::namespaced(alice, &tenant).create(&PostParams::default(), &pod).await;
        match created {
            Err(kube::Error::Api(status)) => assert!(
                status.message.contains("tenancy/no-agent-service-account") || status.message.contains("berth-agent"),
                "{status:?}"
            ),
            other => panic!("a Pod running as the agent's ServiceAccount was admitted: {other:?}"),
        }
        Ok(())
    })
    .await;
}
