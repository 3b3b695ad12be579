//! Secrets committed encrypted with SOPS, through the whole path: the platform hands a tenant
//! an age key (a labelled Secret named by `source.decryptionSecret`), the operator gives it to
//! the tenant's agent only, the agent applies the Secret decrypted; the plaintext shows up
//! nowhere but in that Secret (Tenant, TenantSync, Events, PolicyReports, logs, caches). A
//! plaintext Secret is applied with a warning; a file encrypted for another key is refused by
//! name and the last good Secret stays, until the platform rotates the tenant's key to it.

use std::time::Duration;

use berth_e2e::sops::{age_key, encrypt};
use berth_e2e::{E2E_LABEL, TestOperator, TestRepo, in_namespace, install_crds};
use berth_engine::api::{TENANT_LABEL, Tenant, TenantSync, agent_namespace};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{
    DeleteParams, DynamicObject, ListParams, ObjectMeta, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use serde_json::json;

use crate::support::{eventually, tenant_ready};

const PASSWORD: &str = "e2e-sops-Pa55-7f3a";
const NEXT_PASSWORD: &str = "e2e-sops-next-Pa55-0b9e";

fn secret_yaml(password: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: {password}\n"
    )
}

const PLAIN_SECRET: &str =
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: plain\nstringData:\n  note: not-secret\n";

async fn password(client: &Client, ns: &str) -> Option<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt("db")
        .await
        .ok()??;
    let value = secret.data?.remove("password")?;
    String::from_utf8(value.0).ok()
}

/// Every list of `kind` in `ns`, as JSON.
async fn list(client: &Client, ns: &str, resource: &kube::api::ApiResource) -> serde_json::Value {
    let items = Api::<DynamicObject>::namespaced_with(client.clone(), ns, resource)
        .list(&ListParams::default())
        .await
        .expect("list")
        .items;
    serde_json::to_value(items).expect("json")
}

/// Every file below `dir` that holds `needle`.
fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            {
                found.push(path);
            }
        }
    }
    found
}

#[tokio::test]
async fn an_encrypted_secret_is_applied_and_its_plaintext_stays_in_it() {
    in_namespace("sops", |cp, admin, platform| async move {
        install_crds(&admin).await;
        let tenant = format!("{}-t", platform.name);
        let (identity, recipient) = age_key();
        let key = Secret {
            metadata: ObjectMeta {
                name: Some("sops-key".into()),
                labels: Some([(TENANT_LABEL.to_owned(), tenant.clone())].into()),
                ..ObjectMeta::default()
            },
            data: Some([("age.agekey".to_owned(), ByteString(identity.into_bytes()))].into()),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(admin.clone(), &platform.name).create(&PostParams::default(), &key).await?;
        let repo = TestRepo::new();
        repo.write("db.enc.yaml", encrypt(&secret_yaml(PASSWORD), &recipient));
        repo.write("plain.yaml", PLAIN_SECRET);
        let good = repo.commit("an encrypted Secret");

        let cache = tempfile::tempdir()?;
        let log = cache.path().join("operator.log");
        let _operator = TestOperator::start_logged(cp, &platform.name, cache.path(), &["--agent-mode", "process"], &log);
        let tenants = Api::<Tenant>::all(admin.clone());
        let object: Tenant = serde_json::from_value(json!({
            "apiVersion": "berth.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": tenant, "labels": {E2E_LABEL: platform.name}},
            "spec": {"source": {"url": repo.file_url(), "interval": "2s", "decryptionSecret": "sops-key"}},
        }))?;
        tenants.create(&PostParams::default(), &object).await?;
        let status = tenant_ready(&admin, &tenant, Duration::from_secs(120)).await?;
        assert_eq!(status.last_applied_revision.as_deref(), Some(good.as_str()));
        assert_eq!(password(&admin, &tenant).await.as_deref(), Some(PASSWORD));

        // The plaintext Secret is applied, with the advisory warning; the encrypted one is not
        // warned about.
        let home = agent_namespace(&tenant);
        let reports = list(&admin, &home, &berth_engine::report::resource()).await;
        let warned: Vec<&serde_json::Value> = reports.as_array().unwrap().iter()
            .filter_map(|r| r["results"].as_array())
            .flatten()
            .filter(|r| r["rule"] == "encrypted-in-git")
            .collect();
        assert_eq!(warned.len(), 1, "{reports}");
        assert_eq!(warned[0]["resources"][0]["name"], "plain", "{reports}");

        // A revision encrypted for someone else's key: refused, naming the file; the last good
        // Secret stays.
        let (rotated, someone_else) = age_key();
        repo.write("db.enc.yaml", encrypt(&secret_yaml(NEXT_PASSWORD), &someone_else));
        let bad = repo.commit("encrypted for another key");
        let message = eventually("the revision refused", Duration::from_secs(90), || async {
            let sync = Api::<TenantSync>::namespaced(admin.clone(), &home).get_opt("berth").await.ok()??;
            let status = sync.status?;
            (status.last_attempted_revision.as_deref() == Some(bad.as_str())).then_some(status.message)
        })
        .await?;
        assert!(message.contains("db.enc.yaml") && message.contains("SOPS decryption failed"), "{message}");
        assert_eq!(password(&admin, &tenant).await.as_deref(), Some(PASSWORD));

        // The platform rotates the tenant's key to that one: the agent is restarted with it
        // (at its next token refresh, every few seconds here) and the revision applies.
        let patch = json!({"data": {"age.agekey": ByteString(rotated.into_bytes())}});
        Api::<Secret>::namespaced(admin.clone(), &platform.name)
            .patch("sops-key", &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        eventually("the rotated key used", Duration::from_secs(90), || async {
            (password(&admin, &tenant).await.as_deref() == Some(NEXT_PASSWORD)).then_some(())
        })
        .await?;

        // Nowhere else: the Tenant, its TenantSync, Events and PolicyReports, the logs of the
        // operator and its agent, and every cache and state file.
        let events = kube::api::ApiResource::erase::<k8s_openapi::api::events::v1::Event>(&());
        let sync = kube::api::ApiResource::erase::<TenantSync>(&());
        let records = json!({
            "tenant": tenants.get(&tenant).await?,
            "sync": list(&admin, &home, &sync).await,
            "events": [list(&admin, &home, &events).await, list(&admin, &tenant, &events).await],
            "reports": list(&admin, &home, &berth_engine::report::resource()).await,
        })
        .to_string();
        for plaintext in [PASSWORD, NEXT_PASSWORD] {
            assert!(!records.contains(plaintext), "{plaintext} in {records}");
            assert_eq!(files_holding(cache.path(), plaintext.as_bytes()), Vec::<std::path::PathBuf>::new());
        }
        let log = std::fs::read_to_string(&log)?;
        assert!(log.contains("age key changed; agent restarted"), "the log holds the operator's and agents' output");

        tenants.delete(&tenant, &DeleteParams::default()).await?;
        let namespaces = Api::<Namespace>::all(admin.clone());
        eventually("the tenant gone", Duration::from_secs(120), || async {
            matches!(tenants.get_opt(&tenant).await, Ok(None)).then_some(())
        })
        .await?;
        let _ = namespaces.delete(&home, &DeleteParams::default()).await;
        Ok(())
    })
    .await;
}
