//! Age keys and SOPS-encrypted files made with the real `age-keygen` and `sops` (the pinned
//! ones `make tools` installs; their paths come from `BERTH_AGE_KEYGEN` and `BERTH_SOPS`).

use std::path::PathBuf;
use std::process::Command;

/// The pinned program `variable` names.
pub fn tool(variable: &str) -> PathBuf {
    let program = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{variable} must name the program (run `make tools`)"));
    assert!(
        program.is_file(),
        "{} not found: run `make tools`",
        program.display()
    );
    program
}

/// A new age key: its identity file (as age-keygen writes it) and its public recipient.
pub fn age_key() -> (String, String) {
    let out = Command::new(tool("BERTH_AGE_KEYGEN"))
        .output()
        .expect("age-keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let identity = String::from_utf8(out.stdout).expect("UTF-8");
    let recipient = identity
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("age-keygen names the public key")
        .to_owned();
    (identity, recipient)
}

/// `yaml` with its `data` and `stringData` encrypted for `recipient`, as the tenant guide says.
pub fn encrypt(yaml: &str, recipient: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secret.yaml");
    std::fs::write(&path, yaml).expect("write");
    let out = Command::new(tool("BERTH_SOPS"))
        .args([
            "encrypt",
            "--age",
            recipient,
            "--encrypted-regex",
            "^(data|stringData)$",
        ])
        .arg(&path)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .output()
        .expect("sops");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}
