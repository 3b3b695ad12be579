//! The render step (no cluster) on Secrets committed encrypted with SOPS, decrypted by the real
//! `sops` CLI in the render sandbox with a key made by the real `age-keygen`: plain YAML and
//! kustomize (whose name prefix and namespace leave the encrypted values alone), and the errors
//! a tenant sees for a file encrypted for someone else, changed, or without a key.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use berth_e2e::binary;
use berth_e2e::sops::{age_key, encrypt, tool};
use berth_engine::manifest::Manifest;
use berth_engine::render::{
    AgeKey, Kustomize, Launcher, RenderError, RenderLimits, Renderers, Sops, SourceFile, render,
};
use serde_json::json;

fn launcher() -> Launcher {
    Launcher::Program(binary("berth-render-sandbox"))
}

const SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: correct horse battery staple
data:
  token: aHVudGVyMg==
";

fn file(path: &str, content: &str) -> SourceFile {
    SourceFile {
        path: path.into(),
        content: content.as_bytes().to_vec(),
    }
}

fn renderers(key: Option<&str>) -> Renderers {
    Renderers {
        kustomize: Kustomize {
            program: tool("BERTH_KUSTOMIZE"),
            launcher: launcher(),
            ..Kustomize::default()
        },
        sops: Some(Sops {
            program: tool("BERTH_SOPS"),
            launcher: launcher(),
            key: key.map(|k| AgeKey::parse(k).unwrap()),
            ..Sops::default()
        }),
        ..Renderers::default()
    }
}

fn render_with(files: &[SourceFile], key: Option<&str>) -> Result<Vec<Manifest>, RenderError> {
    render(files, "", &renderers(key), &RenderLimits::default())
}

fn secret(manifests: &[Manifest]) -> &Manifest {
    manifests
        .iter()
        .find(|m| m.reference.kind == "Secret")
        .unwrap()
}

#[test]
fn an_encrypted_secret_is_applied_decrypted_and_marked() {
    let (identity, recipient) = age_key();
    let encrypted = encrypt(SECRET, &recipient);
    assert!(!encrypted.contains("correct horse"), "{encrypted}");
    let config = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n";
    let files = [file("config.yaml", config), file("secret.yaml", &encrypted)];
    let manifests = render_with(&files, Some(&identity)).unwrap();
    let db = secret(&manifests);
    assert_eq!(db.encrypted, Some(true));
    assert_eq!(db.object.get("sops"), None);
    assert_eq!(
        db.object["stringData"],
        json!({"password": "correct horse battery staple"})
    );
    assert_eq!(db.object["data"], json!({"token": "aHVudGVyMg=="}));
    let config = manifests.iter().find(|m| m.reference.kind == "ConfigMap");
    assert_eq!(config.unwrap().encrypted, Some(false));
}

#[test]
fn kustomize_prefixes_and_places_an_encrypted_secret_without_touching_its_values() {
    let (identity, recipient) = age_key();
    let kustomization = "namePrefix: shop-\nnamespace: team-a\nresources:\n  - secret.enc.yaml\n";
    let files = [
        file("kustomization.yaml", kustomization),
        file("secret.enc.yaml", &encrypt(SECRET, &recipient)),
    ];
    let manifests = render_with(&files, Some(&identity)).unwrap();
    let db = secret(&manifests);
    assert_eq!(db.reference.name, "shop-db");
    assert_eq!(db.reference.namespace.as_deref(), Some("team-a"));
    assert_eq!(
        db.object["stringData"]["password"],
        "correct horse battery staple"
    );
}

#[test]
fn a_file_encrypted_for_another_key_or_a_tenant_without_one_is_refused_by_name() {
    let (_, someone_else) = age_key();
    let (identity, _) = age_key();
    let files = [file("secrets/db.yaml", &encrypt(SECRET, &someone_else))];
    let error = render_with(&files, Some(&identity))
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("secrets/db.yaml: "), "{error}");
    assert!(error.contains("SOPS decryption failed"), "{error}");
    assert!(!error.contains("AGE-SECRET-KEY"), "{error}");
    let error = render_with(&files, None).unwrap_err().to_string();
    assert!(error.starts_with("secrets/db.yaml"), "{error}");
    assert!(error.contains("no decryption key"), "{error}");
}

#[test]
fn a_tampered_file_is_refused_whole() {
    let (identity, recipient) = age_key();
    let encrypted = encrypt(SECRET, &recipient);
    // The name is covered by the file's MAC like everything else.
    let tampered = encrypted.replacen("name: db", "name: dc", 1);
    let error = render_with(&[file("secret.yaml", &tampered)], Some(&identity))
        .unwrap_err()
        .to_string();
    assert!(error.contains("SOPS decryption failed"), "{error}");
}
