//! The committed CRDs match the Rust types they are generated from.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[test]
fn committed_crds_are_up_to_date() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds/berth.dev.yaml");
    let committed = std::fs::read_to_string(&path).unwrap();
    let generated = berth_engine::api::crds_yaml().unwrap();
    assert!(
        committed == generated,
        "{} is stale: run `make crds` and commit it",
        path.display()
    );
}
