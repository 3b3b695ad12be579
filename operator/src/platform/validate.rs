//! Validating the platform's tenants together: names, namespaces (valid, not reserved, not
//! claimed twice), repository URLs, intervals, quotas, members and allowed kinds. Pure.

use std::collections::BTreeMap;
use std::fmt;

use berth_engine::api::{AGENT_NAMESPACE_PREFIX, Tenant, duration};
use berth_engine::source::validate_url;

/// Namespaces no tenant may claim.
const RESERVED: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// One problem with one tenant, named by where it was declared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantProblem {
    pub origin: String,
    pub tenant: String,
    pub problem: String,
}

impl fmt::Display for TenantProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: tenant {}: {}",
            self.origin, self.tenant, self.problem
        )
    }
}

/// A DNS-1123 label, as tenant and namespace names must be.
pub(crate) fn dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A Kubernetes quantity such as `500m`, `2`, `1.5Gi`, `1e3`.
fn quantity(text: &str) -> bool {
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    !number.is_empty()
        && number.parse::<f64>().is_ok()
        && [
            "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
        ]
        .contains(&suffix)
        || (suffix.starts_with(['e', 'E'])
            && suffix[1..].parse::<i32>().is_ok()
            && !number.is_empty())
}

/// Longest tenant name: its agent's namespace (`berth-agent-<name>`) must be a DNS label too.
const MAX_NAME: usize = 63 - AGENT_NAMESPACE_PREFIX.len();

/// A host name an Ingress may claim: DNS labels joined by dots, optionally behind one `*.`.
fn ingress_host(host: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    name.len() <= 253 && name.contains('.') && name.split('.').all(dns_label)
}

/// Helm's longest release name.
const MAX_RELEASE_NAME: usize = 53;

/// A file of the repository: relative, plain components only (no `.`, `..` or empty parts),
/// not starting with `-`.
fn repository_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('-')
        && !path.contains("//")
        && !path.ends_with('/')
        && std::path::Path::new(path)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Every problem of every tenant; empty when the set can be applied. `operator_namespace` is
/// reserved too, and so are the agents' namespaces.
pub fn validate(tenants: &[(String, Tenant)], operator_namespace: &str) -> Vec<TenantProblem> {
    let mut problems = Vec::new();
    let mut claimed: BTreeMap<String, String> = BTreeMap::new();
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    // Host → (tenant, origin) of its first claim.
    let mut hosts: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (origin, tenant) in tenants {
        let name = tenant.metadata.name.clone().unwrap_or_default();
        let mut problem = |text: String| {
            problems.push(TenantProblem {
                origin: origin.clone(),
                tenant: name.clone(),
                problem: text,
            })
        };
        if !dns_label(&name) {
            problem(
                "the name must be a DNS label (lowercase letters, digits, '-', at most 63)".into(),
            );
        }
        if name.len() > MAX_NAME {
            problem(format!(
                "the name is longer than {MAX_NAME} characters (its agent's namespace is {AGENT_NAMESPACE_PREFIX}<name>)"
            ));
        }
        if let Some(first) = names.insert(name.clone(), origin.clone()) {
            problem(format!("declared twice (also in {first})"));
        }
        for ns in tenant.namespaces() {
            if !dns_label(&ns) {
                problem(format!("namespace {ns:?} is not a DNS label"));
            } else if RESERVED.contains(&ns.as_str())
                || ns == operator_namespace
                || ns.starts_with(AGENT_NAMESPACE_PREFIX)
            {
                problem(format!("namespace {ns} is reserved"));
            } else if let Some(owner) = claimed.insert(ns.clone(), name.clone())
                && owner != name
            {
                problem(format!(
                    "namespace {ns} is already claimed by tenant {owner}"
                ));
            }
        }
        if let Err(e) = validate_url(&tenant.spec.source.url) {
            problem(format!("source.url: {e}"));
        }
        // The reference of every cluster named, and the default one.
        let clusters = tenant.spec.source.clusters.keys().map(String::as_str);
        for cluster in clusters.chain([""]) {
            match tenant.source_for(cluster) {
                Ok((git_ref, _)) => {
                    if let Err(e) = git_ref.validate() {
                        problem(format!("source: {e}"));
                    }
                }
                Err(e) => problem(format!("source.{e}")),
            }
        }
        for (cluster, o) in &tenant.spec.source.clusters {
            if o.branch.is_some() && o.pin.is_some() {
                problem(format!(
                    "source.clusters.{cluster}: branch and ref both set; use one"
                ));
            }
        }
        if let Err(e) = duration::parse(&tenant.spec.source.interval) {
            problem(format!("source.interval: {e}"));
        }
        let source = &tenant.spec.source;
        let values_lists = std::iter::once(("source.valuesFiles".to_owned(), &source.values_files))
            .chain(source.clusters.iter().filter_map(|(cluster, o)| {
                o.values_files
                    .as_ref()
                    .map(|v| (format!("source.clusters.{cluster}.valuesFiles"), v))
            }));
        for (field, list) in values_lists {
            for file in list {
                if !repository_path(file) {
                    problem(format!(
                        "{field}: {file:?} is not a path relative to the repository root (no `..`, no leading `/` or `-`)"
                    ));
                }
            }
        }
        if let Some(release) = &source.release_name
            && !(dns_label(release) && release.len() <= MAX_RELEASE_NAME)
        {
            problem(format!(
                "source.releaseName {release:?} is not a DNS label of at most {MAX_RELEASE_NAME} characters"
            ));
        }
        for (resource, value) in &tenant.spec.quota {
            if !quantity(value) {
                problem(format!("quota {resource}: {value:?} is not a quantity"));
            }
        }
        for host in &tenant.spec.ingress_hosts {
            if !ingress_host(host) {
                problem(format!(
                    "ingress host {host:?} is not a host name (or `*.` and a host name)"
                ));
            } else if let Some((owner, _)) =
                hosts.insert(host.clone(), (name.clone(), origin.clone()))
                && owner != name
            {
                problem(format!(
                    "ingress host {host} is already claimed by tenant {owner}"
                ));
            }
        }
        for member in &tenant.spec.members {
            if member.name.trim().is_empty() {
                problem("a member has an empty name".into());
            }
        }
        // Kinds Berth does not know by name are looked up when provisioned (the cluster may
        // not serve them yet); here only their spelling and scope are checked.
        let kinds = &tenant.spec.allowed_kinds;
        if let Err(e) =
            crate::provision::agent_rules(kinds, &crate::provision::assume_served(kinds))
        {
            problem(e.to_string());
        }
    }
    // A wildcard grant covers the hosts one label below it: no other tenant may claim one.
    for (host, (tenant, origin)) in &hosts {
        let Some((_, parent)) = host.split_once('.').filter(|_| !host.starts_with("*.")) else {
            continue;
        };
        if let Some((owner, _)) = hosts.get(&format!("*.{parent}"))
            && owner != tenant
        {
            problems.push(TenantProblem {
                origin: origin.clone(),
                tenant: tenant.clone(),
                problem: format!("ingress host {host} is covered by tenant {owner}'s *.{parent}"),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant(value: serde_json::Value) -> (String, Tenant) {
        let mut object = json!({"apiVersion": "berth.dev/v1alpha1", "kind": "Tenant", "spec": {"source": {"url": "https://git.example.com/x.git"}}});
        for (k, v) in value.as_object().unwrap() {
            if k == "spec" {
                for (sk, sv) in v.as_object().unwrap() {
                    object["spec"][sk] = sv.clone();
                }
            } else {
                object[k] = v.clone();
            }
        }
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or("x")
            .to_owned();
        (
            format!("tenants/{name}.yaml (document 1)"),
            serde_json::from_value(object).unwrap(),
        )
    }

    #[test]
    fn a_good_set_has_no_problems() {
        let set = [
            tenant(
                json!({"metadata": {"name": "team-a"}, "spec": {"quota": {"requests.cpu": "500m", "pods": "10", "requests.memory": "1.5Gi"}}}),
            ),
            tenant(
                json!({"metadata": {"name": "team-b"}, "spec": {"namespaces": ["team-b", "team-b-jobs"], "source": {"url": "ssh://git@git.example.com/b.git", "interval": "1m30s"}}}),
            ),
        ];
        assert_eq!(validate(&set, "berth-system"), []);
    }

    #[test]
    fn every_problem_is_named_with_its_file() {
        let set = [
            tenant(json!({"metadata": {"name": "team-a"}, "spec": {"namespaces": ["shared"]}})),
            tenant(
                json!({"metadata": {"name": "team-b"}, "spec": {"namespaces": ["shared", "kube-system", "Bad_NS"]}}),
            ),
            tenant(
                json!({"metadata": {"name": "Team-C"}, "spec": {"source": {"url": "http://insecure/x.git", "interval": "soon"}, "quota": {"cpu": "lots"}, "allowedKinds": ["Widget", "example.com/Gadget"]}}),
            ),
            tenant(
                json!({"metadata": {"name": "team-d"}, "spec": {"namespaces": ["berth-agent-team-a"], "ingressHosts": ["shop.example.com", "*.d.example.com", "bad host"]}}),
            ),
            tenant(
                json!({"metadata": {"name": "team-e-with-a-name-much-too-long-for-an-agent-namespace"}, "spec": {"namespaces": ["team-e"], "ingressHosts": ["shop.example.com", "x.d.example.com"]}}),
            ),
            tenant(
                json!({"metadata": {"name": "team-f"}, "spec": {"source": {"url": "https://git.example.com/f.git", "ref": {"semver": "nope"},
                    "clusters": {"prod": {"ref": {"tag": "v1", "commit": "0123456789abcdef0123456789abcdef01234567"}}, "dev": {"branch": "dev", "ref": {"tag": "v2"}}}}}}),
            ),
        ];
        let problems: Vec<String> = validate(&set, "berth-system")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            problems,
            [
                "tenants/team-b.yaml (document 1): tenant team-b: namespace shared is already claimed by tenant team-a",
                "tenants/team-b.yaml (document 1): tenant team-b: namespace kube-system is reserved",
                "tenants/team-b.yaml (document 1): tenant team-b: namespace \"Bad_NS\" is not a DNS label",
                "tenants/Team-C.yaml (document 1): tenant Team-C: the name must be a DNS label (lowercase letters, digits, '-', at most 63)",
                "tenants/Team-C.yaml (document 1): tenant Team-C: namespace \"Team-C\" is not a DNS label",
                "tenants/Team-C.yaml (document 1): tenant Team-C: source.url: scheme `http` is not allowed (use https, ssh or file)",
                "tenants/Team-C.yaml (document 1): tenant Team-C: source.interval: \"soon\" is not a duration like 90s, 1m30s or 1h: a number is missing or malformed",
                "tenants/Team-C.yaml (document 1): tenant Team-C: quota cpu: \"lots\" is not a quantity",
                "tenants/Team-C.yaml (document 1): tenant Team-C: allowed kind Widget: Berth does not know this kind by name; write it as group/Kind",
                "tenants/team-d.yaml (document 1): tenant team-d: namespace berth-agent-team-a is reserved",
                "tenants/team-d.yaml (document 1): tenant team-d: ingress host \"bad host\" is not a host name (or `*.` and a host name)",
                "tenants/team-e-with-a-name-much-too-long-for-an-agent-namespace.yaml (document 1): tenant team-e-with-a-name-much-too-long-for-an-agent-namespace: the name is longer than 51 characters (its agent's namespace is berth-agent-<name>)",
                "tenants/team-e-with-a-name-much-too-long-for-an-agent-namespace.yaml (document 1): tenant team-e-with-a-name-much-too-long-for-an-agent-namespace: ingress host shop.example.com is already claimed by tenant team-d",
                "tenants/team-f.yaml (document 1): tenant team-f: source.clusters.prod.ref names more than one of branch, tag, semver and commit",
                "tenants/team-f.yaml (document 1): tenant team-f: source: invalid semver range \"nope\": unexpected character 'n' while parsing major version number",
                "tenants/team-f.yaml (document 1): tenant team-f: source.clusters.dev: branch and ref both set; use one",
                "tenants/team-e-with-a-name-much-too-long-for-an-agent-namespace.yaml (document 1): tenant team-e-with-a-name-much-too-long-for-an-agent-namespace: ingress host x.d.example.com is covered by tenant team-d's *.d.example.com",
            ]
        );
    }

    #[test]
    fn helm_values_files_and_release_names_are_validated() {
        let set = [
            tenant(
                json!({"metadata": {"name": "team-a"}, "spec": {"source": {"url": "https://git.example.com/a.git", "valuesFiles": ["values/base.yaml"], "releaseName": "shop", "clusters": {"prod": {"valuesFiles": ["values/base.yaml", "values/prod.yaml"]}}}}}),
            ),
            tenant(
                json!({"metadata": {"name": "team-b"}, "spec": {"source": {"url": "https://git.example.com/b.git", "valuesFiles": ["../secrets.yaml", "/etc/passwd", "--post-renderer=x"], "releaseName": "--post-renderer", "clusters": {"prod": {"valuesFiles": ["a/../../b.yaml"]}}}}}),
            ),
        ];
        let problems: Vec<String> = validate(&set, "berth-system")
            .iter()
            .map(|p| p.problem.clone())
            .collect();
        let bad = "is not a path relative to the repository root (no `..`, no leading `/` or `-`)";
        assert_eq!(
            problems,
            [
                format!("source.valuesFiles: \"../secrets.yaml\" {bad}"),
                format!("source.valuesFiles: \"/etc/passwd\" {bad}"),
                format!("source.valuesFiles: \"--post-renderer=x\" {bad}"),
                format!("source.clusters.prod.valuesFiles: \"a/../../b.yaml\" {bad}"),
                "source.releaseName \"--post-renderer\" is not a DNS label of at most 53 characters".into(),
            ]
        );
    }

    #[test]
    fn an_interval_must_be_a_positive_go_duration() {
        let with_interval = |interval: &str| {
            let set = [tenant(
                json!({"metadata": {"name": "team-a"}, "spec": {"source": {"url": "https://git.example.com/a.git", "interval": interval}}}),
            )];
            validate(&set, "berth-system")
                .iter()
                .map(|p| p.problem.clone())
                .collect::<Vec<_>>()
        };
        for ok in ["1m30s", "300ms", "1h", "60s"] {
            assert_eq!(with_interval(ok), Vec::<String>::new(), "{ok}");
        }
        assert_eq!(
            with_interval("0s"),
            ["source.interval: \"0s\" is not a positive duration"]
        );
        assert_eq!(
            with_interval("9999999999999999999h"),
            [
                "source.interval: \"9999999999999999999h\" is longer than the longest duration (about 292 years)"
            ]
        );
        assert_eq!(
            with_interval("5x"),
            [
                "source.interval: \"5x\" is not a duration like 90s, 1m30s or 1h: unknown unit (use ns, us, ms, s, m or h)"
            ]
        );
    }

    #[test]
    fn quantities() {
        for ok in ["1", "500m", "1.5Gi", "2Ti", "1e3"] {
            assert!(quantity(ok), "{ok}");
        }
        for bad in ["", "lots", "1.5Gb", "-1", "m"] {
            assert!(!quantity(bad), "{bad}");
        }
    }
}
