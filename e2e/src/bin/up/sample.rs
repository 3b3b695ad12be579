//! The sample platform `make up` serves: one Git repository per directory of `e2e/sample/`,
//! the Tenants they declare, and each Tenant's credentials Secret for this Git server.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use berth_e2e::LocalRepo;
use berth_engine::api::{TENANT_LABEL, Tenant};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};

use crate::{GIT_USER, OPERATOR_NAMESPACE, State};

pub(crate) fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("sample")
}

/// One repository per directory of `e2e/sample/` (`platform` and the tenants'), `{{GIT}}`
/// replaced by where the tenants' repositories are served. Returns their names.
pub(crate) fn create_sample_repos(state: &State, tenant_base: &str) -> Result<Vec<String>, String> {
    let sample = sample_dir();
    let mut names: Vec<String> = std::fs::read_dir(&sample)
        .map_err(|e| format!("{}: {e}", sample.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    names.sort();
    for name in &names {
        let repo = LocalRepo::create(
            &state.path(&format!("git/{name}.git")),
            &state.path(&format!("work/{name}")),
        )?;
        repo.copy_from(&sample.join(name), &[("{{GIT}}", tenant_base)])?;
        repo.commit(&format!("Sample content from e2e/sample/{name}"))?;
    }
    Ok(names)
}

/// The sample Tenants by name, with their credentials Secret's name.
pub(crate) fn read_sample_tenants(dir: &Path) -> Result<BTreeMap<String, Option<String>>, String> {
    let mut tenants = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let documents: Vec<Tenant> =
            serde_saphyr::from_multiple(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for tenant in documents {
            tenants.insert(tenant.name_any(), tenant.spec.source.credentials_secret);
        }
    }
    if tenants.is_empty() {
        return Err(format!("no Tenant under {}", dir.display()));
    }
    Ok(tenants)
}

/// The Secret a Tenant's `source.credentialsSecret` names: what its agent needs to fetch over
/// HTTPS from this server, labelled for that tenant (or the operator refuses to hand it over).
pub(crate) async fn apply_credentials(
    client: &Client,
    tenant: &str,
    name: &str,
    password: &str,
    ca_pem: &str,
) -> Result<(), String> {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(OPERATOR_NAMESPACE.to_owned()),
            labels: Some([(TENANT_LABEL.to_owned(), tenant.to_owned())].into()),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        string_data: Some(
            [
                ("username".to_owned(), GIT_USER.to_owned()),
                ("password".to_owned(), password.to_owned()),
                ("ca.crt".to_owned(), ca_pem.to_owned()),
            ]
            .into(),
        ),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), OPERATOR_NAMESPACE)
        .patch(
            name,
            &PatchParams::apply("berth-up").force(),
            &Patch::Apply(&secret),
        )
        .await
        .map(|_| ())
        .map_err(|e| format!("creating Secret {OPERATOR_NAMESPACE}/{name}: {e}"))
}

/// `bytes` random bytes as hex, from the kernel.
pub(crate) fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buffer))
        .map_err(|e| format!("reading /dev/urandom: {e}"))?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a file only its owner can read.
pub(crate) fn write_private(path: &Path, content: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(content.as_bytes()))
        .map_err(|e| format!("writing {}: {e}", path.display()))
}
