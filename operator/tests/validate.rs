//! `berth-operator validate` on a platform repository working tree, as the platform's CI runs it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;

fn tenant(name: &str, namespaces: &str) -> String {
    format!(
        "apiVersion: berth.dev/v1alpha1\nkind: Tenant\nmetadata: {{name: {name}}}\nspec:\n  namespaces: [{namespaces}]\n  source: {{url: 'https://git.example.com/{name}.git'}}\n"
    )
}

fn validate(dir: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_berth-operator"))
        .arg("validate")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_valid_platform_repository_passes_and_a_conflict_is_named() {
    let repo = tempfile::tempdir().unwrap();
    let tenants = repo.path().join("tenants");
    std::fs::create_dir(&tenants).unwrap();
    std::fs::write(tenants.join("team-a.yaml"), tenant("team-a", "team-a")).unwrap();
    std::fs::write(repo.path().join("README.md"), "not a tenant").unwrap();
    assert_eq!(
        validate(repo.path()),
        (Some(0), "1 tenants, 0 problems\n".to_owned())
    );

    std::fs::write(
        tenants.join("team-b.yaml"),
        tenant("team-b", "team-b, team-a"),
    )
    .unwrap();
    let (code, out) = validate(repo.path());
    assert_eq!(code, Some(2));
    assert!(
        out.contains("tenants/team-b.yaml (document 1): tenant team-b: namespace team-a is already claimed by tenant team-a"),
        "{out}"
    );

    std::fs::write(
        tenants.join("broken.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
    )
    .unwrap();
    let (code, out) = validate(repo.path());
    assert_eq!(code, Some(1));
    assert!(
        out.contains("tenants/broken.yaml (document 1): not a Tenant"),
        "{out}"
    );
}

#[test]
fn the_platform_policy_is_checked_too() {
    let repo = tempfile::tempdir().unwrap();
    let tenants = repo.path().join("tenants");
    std::fs::create_dir(&tenants).unwrap();
    std::fs::write(tenants.join("team-a.yaml"), tenant("team-a", "team-a")).unwrap();
    let policies = repo.path().join("policies");
    std::fs::create_dir_all(policies.join("tenants")).unwrap();
    let bundle = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/bundle.tar.gz");
    std::fs::copy(bundle, policies.join("bundle.tar.gz")).unwrap();
    std::fs::write(policies.join("data.json"), r#"{"params": {}}"#).unwrap();
    assert_eq!(validate(repo.path()).0, Some(0));

    std::fs::write(policies.join("tenants/team-a.json"), "[]").unwrap();
    let (code, out) = validate(repo.path());
    assert_eq!(code, Some(2));
    assert!(
        out.contains("policies/tenants/team-a.json: must be a JSON object"),
        "{out}"
    );

    std::fs::remove_file(policies.join("tenants/team-a.json")).unwrap();
    std::fs::write(policies.join("bundle.tar.gz"), "not a bundle").unwrap();
    let (code, out) = validate(repo.path());
    assert_eq!(code, Some(2));
    assert!(out.contains("policies/bundle.tar.gz"), "{out}");
}
