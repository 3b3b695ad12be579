//! What an agent is started with in either mode (as a Deployment or as a child process): its
//! `run` arguments, the flags passing the credential files its tenant's Secret holds, and its
//! allocator settings. Pure functions.

use berth_engine::api::Tenant;
use berth_engine::source::{GitFlags, GitRef};
use kube::ResourceExt;

use super::{ProvisionError, policy_config_map_name};

/// glibc allocator settings for agents: at most two arenas, and freed memory handed back to
/// the system sooner. An idle agent then keeps about 16 MiB of its own memory instead of 20
/// (measured on the release build); with one agent per tenant that adds up.
pub const AGENT_MALLOC_ENV: [(&str, &str); 2] = [
    ("MALLOC_ARENA_MAX", "2"),
    ("MALLOC_TRIM_THRESHOLD_", "131072"),
];
/// Secret keys (Flux's names) holding files, and the agent flag that takes each file.
const CREDENTIAL_FILES: [(&str, &str); 4] = [
    ("password", GitFlags::PASSWORD_FILE),
    ("identity", GitFlags::SSH_KEY),
    ("known_hosts", GitFlags::KNOWN_HOSTS),
    ("ca.crt", GitFlags::CA_FILE),
];
/// Secret key holding the HTTPS user name (a value, passed as `BERTH_GIT_USERNAME`, or in
/// process mode as `--username`).
pub const USERNAME_KEY: &str = "username";

/// The flags giving an agent the credential files in `dir`, for the keys the tenant's Secret
/// has; refuses combinations the agent would refuse, naming the Secret.
pub fn credential_flags<'a>(
    secret: &str,
    keys: impl IntoIterator<Item = &'a String>,
    dir: &str,
) -> Result<Vec<String>, ProvisionError> {
    let keys: Vec<&String> = keys.into_iter().collect();
    let has = |key: &str| keys.iter().any(|k| k.as_str() == key);
    let invalid = |reason: &str| ProvisionError::Secret {
        role: "credentials",
        secret: secret.to_owned(),
        reason: reason.to_owned(),
    };
    if has("password") != has(USERNAME_KEY) {
        return Err(invalid("`username` and `password` go together"));
    }
    if has("identity") != has("known_hosts") {
        return Err(invalid("`identity` and `known_hosts` go together"));
    }
    Ok(CREDENTIAL_FILES
        .iter()
        .filter(|(key, _)| has(key))
        .flat_map(|(key, flag)| [(*flag).to_owned(), format!("{dir}/{key}")])
        .collect())
}

/// Where an agent keeps its cache and serves its metrics, and where its report key is.
pub struct AgentPaths<'a> {
    pub cache_dir: &'a str,
    pub metrics_addr: &'a str,
    pub report_key: &'a str,
}

/// The agent's `run` arguments for the tenant, in either mode: its repository, branch, path and
/// Helm values files for `cluster`, its release name, its namespaces, kinds and hosts, its
/// home, its policy copy and report key.
pub fn agent_args(
    tenant: &Tenant,
    cluster: &str,
    operator_namespace: &str,
    paths: &AgentPaths<'_>,
) -> Result<Vec<String>, ProvisionError> {
    let name = tenant.name_any();
    let (git_ref, path) = tenant
        .source_for(cluster)
        .map_err(|e| ProvisionError::Invalid(format!("source.{e}")))?;
    let (ref_flag, ref_value) = match git_ref {
        GitRef::Branch(b) => ("--branch", b),
        GitRef::Tag(t) => ("--tag", t),
        GitRef::Semver(r) => ("--semver", r),
        GitRef::Commit(c) => ("--commit", c),
    };
    let mut args = vec![
        "run".to_owned(),
        "--tenant".into(),
        name.clone(),
        "--namespace".into(),
        tenant.namespaces().join(","),
        "--home-namespace".into(),
        tenant.agent_namespace(),
        "--repo".into(),
        tenant.spec.source.url.clone(),
        ref_flag.into(),
        ref_value,
        "--path".into(),
        path,
        "--interval".into(),
        tenant.spec.source.interval.clone(),
        "--cache-dir".into(),
        paths.cache_dir.to_owned(),
        "--metrics-addr".into(),
        paths.metrics_addr.to_owned(),
        "--policy-configmap".into(),
        format!("{operator_namespace}/{}", policy_config_map_name(&name)),
        "--report-key".into(),
        paths.report_key.to_owned(),
    ];
    let lists = [
        ("--allowed-kind", &tenant.spec.allowed_kinds),
        ("--ingress-host", &tenant.spec.ingress_hosts),
        (
            "--allow-from-namespace",
            &tenant.spec.network.allow_from_namespaces,
        ),
    ];
    for (flag, values) in lists {
        if !values.is_empty() {
            args.push(flag.into());
            args.push(values.join(","));
        }
    }
    // One flag per file: a path may hold a comma.
    for values in tenant.values_files_for(cluster) {
        args.push("--values".into());
        args.push(values);
    }
    if let Some(release) = &tenant.spec.source.release_name {
        args.push("--release-name".into());
        args.push(release.clone());
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEAM_A: &str = "apiVersion: berth.dev/v1alpha1\nkind: Tenant\nmetadata: {name: team-a}\nspec:\n  namespaces: [team-a, team-a-jobs]\n  source: {url: 'https://git.example/a.git', clusters: {prod: {branch: prod}}}\n";

    fn tenant(yaml: &str) -> Tenant {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn helm_values_files_follow_the_cluster_and_the_release_name_is_passed() {
        let mut t = tenant(TEAM_A);
        t.spec.source.values_files = vec!["values.yaml".into()];
        t.spec.source.release_name = Some("shop".into());
        let paths = AgentPaths {
            cache_dir: "/c",
            metrics_addr: "off",
            report_key: "/k",
        };
        let args = agent_args(&t, "staging", "berth-system", &paths).unwrap();
        let tail: Vec<&str> = args[args.len() - 4..].iter().map(String::as_str).collect();
        assert_eq!(tail, ["--values", "values.yaml", "--release-name", "shop"]);
        t.spec.source.clusters.get_mut("prod").unwrap().values_files =
            Some(vec!["values.yaml".into(), "clusters/prod,eu.yaml".into()]);
        let args = agent_args(&t, "prod", "berth-system", &paths).unwrap();
        let tail: Vec<&str> = args[args.len() - 6..].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "--values",
                "values.yaml",
                "--values",
                "clusters/prod,eu.yaml",
                "--release-name",
                "shop"
            ]
        );
        // Without either, no flag: the agent renders as the tenant, with the chart's values.
        let args = agent_args(&tenant(TEAM_A), "prod", "berth-system", &paths).unwrap();
        assert!(
            !args
                .iter()
                .any(|a| a == "--values" || a == "--release-name")
        );
    }

    #[test]
    fn incomplete_credentials_are_refused_with_the_secret_named() {
        let keys = ["password".to_owned()];
        let error = credential_flags("team-a-git", &keys, "/d").unwrap_err();
        assert_eq!(
            error.to_string(),
            "credentials Secret team-a-git: `username` and `password` go together"
        );
        let keys = ["identity".to_owned(), "known_hosts".to_owned()];
        assert_eq!(
            credential_flags("s", &keys, "/d").unwrap(),
            [
                "--ssh-key",
                "/d/identity",
                "--known-hosts",
                "/d/known_hosts"
            ]
        );
    }
}
