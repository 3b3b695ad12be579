//! What `make up` prints: each tenant's progress and conditions, and, once they are Ready,
//! how to look around and push a change.

use std::path::Path;

use berth_e2e::{ControlPlane, binary};
use berth_engine::api::Tenant;
use kube::ResourceExt;

use crate::{GIT_USER, PLATFORM_INTERVAL, State};

pub(crate) fn condition<'a>(
    tenant: &'a Tenant,
    type_: &str,
) -> Option<&'a berth_engine::api::Condition> {
    tenant
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

pub(crate) fn is_ready(tenant: &Tenant) -> bool {
    condition(tenant, "Ready").is_some_and(|c| c.status == "True")
}

/// One line of progress for a tenant.
pub(crate) fn summary(tenant: &Tenant) -> String {
    let Some(ready) = condition(tenant, "Ready") else {
        return "created, not reconciled yet".into();
    };
    if ready.status == "True" {
        let status = tenant.status.as_ref();
        let revision = status
            .and_then(|s| s.last_applied_revision.as_deref())
            .unwrap_or("");
        return format!(
            "Ready: revision {} applied ({} objects)",
            revision.get(..12).unwrap_or(revision),
            status.map_or(0, |s| s.objects)
        );
    }
    let mut message = ready.message.replace('\n', " ");
    if message.chars().count() > 160 {
        message = message.chars().take(160).collect::<String>() + "…";
    }
    format!("not Ready ({}): {message}", ready.reason)
}

pub(crate) fn print_conditions(tenant: &Tenant) {
    println!("  {}:", tenant.name_any());
    for c in tenant.status.iter().flat_map(|s| &s.conditions) {
        println!(
            "    {}={} {}: {}",
            c.type_,
            c.status,
            c.reason,
            c.message.replace('\n', " ")
        );
    }
}

/// What to look at, printed once the tenants are Ready (or, failing that, after a while).
pub(crate) struct Guide<'a> {
    pub(crate) cp: &'a ControlPlane,
    pub(crate) state: &'a State,
    pub(crate) https_base: &'a str,
    pub(crate) password: &'a str,
    pub(crate) repos: &'a [String],
}

impl Guide<'_> {
    pub(crate) fn print(&self) {
        let berth_bin = binary("berth-operator");
        let berth_bin = berth_bin.parent().unwrap_or(Path::new("."));
        let state = &self.state.dir;
        let tenant = self
            .repos
            .iter()
            .find(|r| *r != "platform")
            .map_or("team-a", String::as_str);
        println!();
        println!("Berth is running. In another shell:");
        println!();
        println!("  export KUBECONFIG={}", state.join("kubeconfig").display());
        println!(
            "  export PATH={}:{}:$PATH",
            self.cp.bin_dir.display(),
            berth_bin.display()
        );
        let report = format!(
            "berth-operator report --output-dir {}",
            state.join("report").display()
        );
        let deployed = format!("kubectl get deploy,svc,cm -n {tenant}");
        for (command, why) in [
            (
                "kubectl get tenants",
                "Ready, Synced, PolicyCompliant, revision",
            ),
            ("kubectl get tsync -A", "what each tenant's agent last did"),
            (&deployed, "what its agent applied"),
            (
                "kubectl get policyreports -A",
                "the policy decisions, per revision",
            ),
            (&report, "the auditor's report (audit.html)"),
        ] {
            println!("  {command:<36} # {why}");
        }
        println!();
        println!("Change a repository: commit and push in its work tree, e.g.");
        println!(
            "  cd {} && $EDITOR configmap.yaml && git commit -am 'Say hello' && git push",
            state.join("work").join(tenant).display()
        );
        println!(
            "  (its agent applies it within the Tenant's interval; `platform` is synced every {PLATFORM_INTERVAL})"
        );
        println!("or clone one over HTTPS, as the operator and agents fetch it:");
        // The environment variable, as it overrides any GIT_SSL_CAINFO already set (git's
        // `http.sslCAInfo` setting does not).
        println!(
            "  GIT_SSL_CAINFO={} git clone https://{GIT_USER}:{}@{}/{tenant}.git",
            state.join("git-ca.pem").display(),
            self.password,
            self.https_base.trim_start_matches("https://")
        );
        println!();
        println!(
            "Logs of the operator and its agents: {}. Ctrl-C stops everything.",
            state.join("operator.log").display()
        );
        println!();
    }
}
