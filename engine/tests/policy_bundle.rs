//! The committed bundle is the build of the committed Rego, and the check that says so fails
//! when a `.rego` changes without a rebuild.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

fn check(policies: &Path) -> std::process::Output {
    let opa = std::env::var_os("BERTH_OPA")
        .expect("BERTH_OPA must name the opa binary (cargo sets it from .cargo/config.toml)");
    assert!(
        Path::new(&opa).is_file(),
        "opa not found at {}: run `make tools`, which installs the pinned one there",
        opa.display()
    );
    Command::new(policies.join("build.sh"))
        .arg("--check")
        .env("OPA", opa)
        .output()
        .unwrap()
}

#[test]
fn the_committed_bundle_is_fresh_and_a_stale_one_is_caught() {
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let fresh = check(&policies);
    assert!(
        fresh.status.success(),
        "{}",
        String::from_utf8_lossy(&fresh.stderr)
    );

    // A copy whose Rego changed but whose bundle did not.
    let copy = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(&policies)
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(status.success());
    let copied = copy.path().join("policies");
    let rego = copied.join("berth/images.rego");
    let mut text = std::fs::read_to_string(&rego).unwrap();
    // Comments do not change the bundle; a rule does.
    text.push_str("\nedited_without_a_rebuild := true\n");
    std::fs::write(&rego, text).unwrap();
    let stale = check(&copied);
    assert_eq!(stale.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&stale.stderr).contains("policies/bundle.tar.gz is stale"));
}
