//! `--agent-mode deployment`: each tenant's agent is a locked-down Deployment in its own
//! namespace, running as its ServiceAccount with its credentials mounted from a copy; the
//! ReplicaSet's Pod passes the namespace's restricted Pod Security admission and its quota;
//! suspending the tenant scales the agent to zero. (This control plane has no nodes, so the Pod
//! is admitted but never scheduled.)

use std::time::Duration;

use berth_e2e::{E2E_LABEL, TestOperator, in_namespace, install_crds};
use berth_engine::api::{TENANT_LABEL, Tenant};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::eventually;

#[tokio::test]
async fn agents_run_as_locked_down_deployments_and_suspend_scales_them_to_zero() {
    in_namespace("agent-deployment", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let name = format!("{}-t", platform.name);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("t-git".into()),
                labels: Some([(TENANT_LABEL.to_owned(), name.clone())].into()),
                ..ObjectMeta::default()
            },
            data: Some(
                [("identity", "key"), ("known_hosts", "hosts")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(admin.clone(), &platform.name)
            .create(&PostParams::default(), &secret)
            .await?;
        let tenants = Api::<Tenant>::all(admin.clone());
        let tenant: Tenant = serde_json::from_value(json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": name, "labels": {E2E_LABEL: platform.name}},
            "spec": {"source": {"url": "ssh://git@git.example/t.git", "credentialsSecret": "t-git"},
                "quota": {"pods": "2", "limits.memory": "1Gi", "requests.cpu": "1"}},
        }))?;
        tenants.create(&PostParams::default(), &tenant).await?;
        let cache = tempfile::tempdir()?;
        let _operator = TestOperator::start(
            cp,
            &platform.name,
            cache.path(),
            &[
                "--agent-mode",
                "deployment",
                "--agent-image",
                "registry.example/berth-agent:e2e",
            ],
        );

        let home = berth_engine::api::agent_namespace(&name);
        let deployments = Api::<Deployment>::namespaced(admin.clone(), &home);
        let deployment = eventually(
            "the agent's Deployment",
            Duration::from_secs(60),
            || async { deployments.get_opt("berth-agent").await.ok().flatten() },
        )
        .await?;
        let spec = deployment.spec;
        assert_eq!(spec.replicas, Some(1));
        let pod = spec.template.spec.expect("pod spec");
        assert_eq!(pod.service_account_name.as_deref(), Some("berth-agent"));
        let container = &pod.containers[0];
        assert_eq!(
            container.image.as_deref(),
            Some("registry.example/berth-agent:e2e")
        );
        let security = container
            .security_context
            .clone()
            .expect("security context");
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.allow_privilege_escalation, Some(false));
        assert_eq!(
            security.capabilities.and_then(|c| c.drop),
            Some(vec!["ALL".to_owned()])
        );
        let resources = container.resources.clone().expect("resources");
        assert!(resources.limits.is_some() && resources.requests.is_some());
        let args = container.args.clone().unwrap_or_default().join(" ");
        assert!(
            args.contains(
                "--ssh-key /etc/berth/git/identity --known-hosts /etc/berth/git/known_hosts"
            ),
            "{args}"
        );
        assert!(
            args.contains(&format!(
                "--policy-configmap {}/berth-policy-{name}",
                platform.name
            )),
            "{args}"
        );
        // The credentials, copied next to the agent (the platform's Secret stays out of the
        // agent's reach, the copy out of the tenant's).
        let copy = Api::<Secret>::namespaced(admin.clone(), &home)
            .get("berth-agent-git")
            .await?;
        assert_eq!(
            copy.data
                .unwrap_or_default()
                .get("identity")
                .map(|v| v.0.clone()),
            Some(b"key".to_vec())
        );

        // The ReplicaSet's Pod got through restricted Pod Security admission and the quota.
        let pods = Api::<Pod>::namespaced(admin.clone(), &home);
        let selector = ListParams::default().labels("app.kubernetes.io/name=berth-agent");
        eventually(
            "the agent's Pod to be admitted",
            Duration::from_secs(60),
            || async {
                let list = pods.list(&selector).await.ok()?;
                (list.items.len() == 1).then_some(())
            },
        )
        .await?;

        // An age key for SOPS: copied beside the agent, given to it through its environment
        // only, with its digest on the Pod template; dropped from the spec, the copy goes.
        let key = Secret {
            metadata: ObjectMeta {
                name: Some("t-sops".into()),
                labels: Some([(TENANT_LABEL.to_owned(), name.clone())].into()),
                ..ObjectMeta::default()
            },
            data: Some(
                [(
                    "t.agekey".to_owned(),
                    ByteString(b"AGE-SECRET-KEY-1E2E".to_vec()),
                )]
                .into(),
            ),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(admin.clone(), &platform.name)
            .create(&PostParams::default(), &key)
            .await?;
        let decryption = |secret: Option<&str>| {
            let patch = json!({"spec": {"source": {"decryptionSecret": secret}}});
            let (tenants, name) = (tenants.clone(), name.clone());
            async move {
                tenants
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
            }
        };
        let age_env = |d: &Deployment| {
            let pod = d.spec.template.clone();
            let env = pod.spec?.containers[0].env.clone()?;
            let annotated = pod
                .metadata?
                .annotations
                .unwrap_or_default()
                .contains_key("berth.dev/age-key-sha256");
            env.into_iter()
                .find(|e| e.name == "BERTH_SOPS_AGE_KEY")
                .map(|e| (e, annotated))
        };
        decryption(Some("t-sops")).await?;
        let (env, annotated) = eventually(
            "the age key in the agent's environment",
            Duration::from_secs(60),
            || async { age_env(&deployments.get("berth-agent").await.ok()?) },
        )
        .await?;
        assert!(annotated && env.value.is_none(), "{env:?}");
        let home_secrets = Api::<Secret>::namespaced(admin.clone(), &home);
        let copy = home_secrets.get("berth-agent-sops").await?;
        assert_eq!(
            copy.data.unwrap_or_default()["age.agekey"].0,
            b"AGE-SECRET-KEY-1E2E"
        );
        decryption(None).await?;
        eventually(
            "the age key and its copy gone",
            Duration::from_secs(60),
            || async {
                let deployment = deployments.get("berth-agent").await.ok()?;
                let copy = home_secrets.get_opt("berth-agent-sops").await.ok()?;
                (age_env(&deployment).is_none() && copy.is_none()).then_some(())
            },
        )
        .await?;

        // Suspended: no agent runs.
        tenants
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"suspend": true}})),
            )
            .await?;
        eventually(
            "the agent to scale to zero",
            Duration::from_secs(60),
            || async {
                let replicas = deployments.get("berth-agent").await.ok()?.spec.replicas;
                let pods = pods.list(&selector).await.ok()?;
                (replicas == Some(0) && pods.items.is_empty()).then_some(())
            },
        )
        .await?;
        Ok(())
    })
    .await;
}
