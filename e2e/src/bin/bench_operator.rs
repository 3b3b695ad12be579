//! `make bench-operator`: how the operator copes with many tenants, each phase on a fresh local
//! control plane, reported as a table (the machines are shared and noisy; nothing is asserted).
//!
//! 1. 100 Tenants, committed to the platform repository in one commit, each with its own
//!    namespace and a tiny repository of one ConfigMap: the operator in process mode, so one
//!    `berth-agent` per tenant. Time from the operator's start to all Tenants Ready=True, and
//!    the memory of the operator and of its 100 agents.
//! 2. 1,000 Tenants with agents off (a thousand agent processes would not fit on a small
//!    machine): time to all Provisioned=True, and the operator's memory.

use std::collections::BTreeMap;
use std::error::Error;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_e2e::procfs::{self, ProcessInfo};
use berth_e2e::{BackgroundProcess, Harness, LocalRepo, binary, install_crds};
use berth_engine::api::Tenant;

use kube::api::ListParams;
use kube::{Api, ResourceExt};

type BenchResult<T> = Result<T, Box<dyn Error>>;

const OPERATOR_NAMESPACE: &str = "berth-system";

#[derive(Clone, Copy, PartialEq, Eq)]
enum AgentMode {
    Process,
    Off,
}

impl AgentMode {
    fn flag(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Off => "off",
        }
    }
}

/// What one phase measured. Durations are from the operator's start; `None`: not reached
/// before the phase's time limit.
struct Phase {
    tenants: usize,
    mode: AgentMode,
    limit: Duration,
    all_created: Option<Duration>,
    all_provisioned: Option<Duration>,
    all_ready: Option<Duration>,
    provisioned: usize,
    ready: usize,
    /// Per tenant, seconds from the operator's start to its first Ready=True (or Provisioned,
    /// with agents off).
    per_tenant: Vec<f64>,
    operator_rss_kib: u64,
    operator_peak_kib: u64,
    operator_cpu: f64,
    agents_rss_kib: Vec<u64>,
    agents_pss_kib: Vec<u64>,
    agents_cpu: f64,
    operator_exit: Option<i32>,
    left_running: usize,
    load: String,
}

fn tenant_name(i: usize) -> String {
    format!("bench-{i:04}")
}

fn tenant_document(name: &str, url: &str) -> String {
    format!(
        "apiVersion: berth.dev/v1alpha1\nkind: Tenant\nmetadata:\n  name: {name}\nspec:\n  source:\n    url: '{url}'\n    interval: 60s\n"
    )
}

fn has_condition(tenant: &Tenant, type_: &str) -> bool {
    tenant.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == type_ && c.status == "True")
    })
}

/// Runs one phase on its own control plane and stops everything it started.
async fn phase(tenants: usize, mode: AgentMode, limit: Duration) -> BenchResult<Phase> {
    eprintln!(
        "bench-operator: {tenants} tenants, agents {}: starting a control plane",
        mode.flag()
    );
    let harness = Harness::start()?;
    let cp = harness.control_plane.clone();
    let client = cp.admin_client().await?;
    install_crds(&client).await;
    berth_e2e::ensure_namespace(&client, OPERATOR_NAMESPACE).await?;

    let dir = tempfile::Builder::new()
        .prefix("berth-bench-operator-")
        .tempdir()?;
    let git = dir.path().join("git");
    let work = dir.path().join("work");
    let config_map = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  tenant: {name}\n"
        )
    };
    // With agents off no repository is fetched: one serves as every tenant's source.
    let shared = LocalRepo::create(&git.join("shared.git"), &work.join("shared"))?;
    shared.write("settings.yaml", config_map("shared"))?;
    shared.commit("one ConfigMap")?;
    let platform = LocalRepo::create(&git.join("platform.git"), &work.join("platform"))?;
    eprintln!("bench-operator: creating {tenants} tenants' repositories");
    for i in 0..tenants {
        let name = tenant_name(i);
        let url = match mode {
            AgentMode::Process => {
                let repo = LocalRepo::create(&git.join(format!("{name}.git")), &work.join(&name))?;
                repo.write("settings.yaml", config_map(&name))?;
                repo.commit("one ConfigMap")?;
                format!("file://{}", repo.bare.display())
            }
            AgentMode::Off => format!("file://{}", shared.bare.display()),
        };
        platform.write(
            &format!("tenants/{name}.yaml"),
            tenant_document(&name, &url),
        )?;
    }
    platform.commit(&format!("Onboard {tenants} tenants"))?;

    let log_path = dir.path().join("operator.log");
    let log = std::fs::File::create(&log_path)?;
    let kustomize = std::env::var_os("BERTH_KUSTOMIZE").unwrap_or_else(|| "kustomize".into());
    let started = Instant::now();
    // setpriv's parent-death signal: an interrupted benchmark leaves no operator behind.
    // The API server calls the admission webhook on loopback.
    let admission_addr = berth_e2e::free_addr();
    let mut operator = BackgroundProcess(
        Command::new("setpriv")
            .args(["--pdeathsig", "TERM", "--"])
            .arg(binary("berth-operator"))
            .args(["run", "--namespace", OPERATOR_NAMESPACE, "--platform-repo"])
            .arg(format!("file://{}", platform.bare.display()))
            .args(["--platform-interval", "5s", "--agent-mode", mode.flag()])
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .arg("--kustomize")
            .arg(kustomize)
            .args(["--admission-addr", &admission_addr])
            .args(["--admission-url", &format!("https://{admission_addr}")])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", &cp.kubeconfig)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?,
    );
    let pid = operator.0.id();

    let api = Api::<Tenant>::all(client.clone());
    let mut result = Phase {
        tenants,
        mode,
        limit,
        all_created: None,
        all_provisioned: None,
        all_ready: None,
        provisioned: 0,
        ready: 0,
        per_tenant: Vec::new(),
        operator_rss_kib: 0,
        operator_peak_kib: 0,
        operator_cpu: 0.0,
        agents_rss_kib: Vec::new(),
        agents_pss_kib: Vec::new(),
        agents_cpu: 0.0,
        operator_exit: None,
        left_running: 0,
        load: String::new(),
    };
    let done_condition = match mode {
        AgentMode::Process => "Ready",
        AgentMode::Off => "Provisioned",
    };
    let mut first_done: BTreeMap<String, f64> = BTreeMap::new();
    let mut last_report = Instant::now();
    let poll = poll_interval(tenants);
    loop {
        if let Ok(Some(status)) = operator.0.try_wait() {
            return Err(
                format!("the operator exited ({status}); see {}", log_path.display()).into(),
            );
        }
        if let Ok(list) = api.list(&ListParams::default()).await {
            let elapsed = started.elapsed();
            let provisioned = list
                .items
                .iter()
                .filter(|t| has_condition(t, "Provisioned"))
                .count();
            let ready = list
                .items
                .iter()
                .filter(|t| has_condition(t, "Ready"))
                .count();
            for tenant in &list.items {
                if has_condition(tenant, done_condition) {
                    first_done
                        .entry(tenant.name_any())
                        .or_insert(elapsed.as_secs_f64());
                }
            }
            if list.items.len() >= tenants && result.all_created.is_none() {
                result.all_created = Some(elapsed);
            }
            if provisioned >= tenants && result.all_provisioned.is_none() {
                result.all_provisioned = Some(elapsed);
            }
            if ready >= tenants && result.all_ready.is_none() {
                result.all_ready = Some(elapsed);
            }
            result.provisioned = provisioned;
            result.ready = ready;
            if last_report.elapsed() > Duration::from_secs(15) {
                last_report = Instant::now();
                eprintln!(
                    "bench-operator:   {:>4.0} s: {} Tenants, {provisioned} Provisioned, {ready} Ready; operator {:.0} MiB, {} agents",
                    elapsed.as_secs_f64(),
                    list.items.len(),
                    procfs::rss_kib(pid).unwrap_or(0) as f64 / 1024.0,
                    agents(pid).len()
                );
            }
            let done = match mode {
                AgentMode::Process => result.all_ready.is_some(),
                AgentMode::Off => result.all_provisioned.is_some(),
            };
            if done || elapsed > limit {
                break;
            }
        }
        tokio::time::sleep(poll).await;
    }
    result.per_tenant = first_done.into_values().collect();

    // The figures at N tenants, after a short settle (agents finish their first reconcile's
    // allocations; the operator its bursts of status updates).
    tokio::time::sleep(Duration::from_secs(10)).await;
    result.operator_rss_kib = procfs::rss_kib(pid).unwrap_or(0);
    result.operator_peak_kib = procfs::status_kib(pid, "VmHWM").unwrap_or(0);
    result.operator_cpu = procfs::cpu_seconds(pid).unwrap_or(0.0);
    let agent_processes = agents(pid);
    result.agents_rss_kib = agent_processes
        .iter()
        .filter_map(|a| procfs::rss_kib(a.pid))
        .collect();
    result.agents_pss_kib = agent_processes
        .iter()
        .filter_map(|a| procfs::pss_kib(a.pid))
        .collect();
    result.agents_cpu = agent_processes
        .iter()
        .filter_map(|a| procfs::cpu_seconds(a.pid))
        .sum();
    result.load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();

    let started_processes = procfs::descendants(std::process::id());
    result.operator_exit = operator.terminate();
    drop(operator);
    harness.stop(Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(10);
    while started_processes.iter().any(ProcessInfo::is_running) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    result.left_running = started_processes.iter().filter(|p| p.is_running()).count();
    Ok(result)
}

/// Listing a thousand Tenants is itself load; fewer can be polled more often.
fn poll_interval(tenants: usize) -> Duration {
    Duration::from_millis(if tenants > 200 { 2000 } else { 500 })
}

fn agents(operator: u32) -> Vec<ProcessInfo> {
    procfs::children(operator)
        .into_iter()
        .filter(|p| p.name == "berth-agent")
        .collect()
}

fn percentile(values: &[f64], p: usize) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = (sorted.len() * p / 100).min(sorted.len().checked_sub(1)?);
    sorted.get(index).copied()
}

fn seconds(d: Option<Duration>, limit: Duration) -> String {
    d.map_or_else(
        || format!("not within {} s", limit.as_secs()),
        |d| format!("{:.1} s", d.as_secs_f64()),
    )
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or_else(String::new, |kib| {
            format!(", {:.1} GiB RAM", kib as f64 / 1024.0 / 1024.0)
        });
    format!("{cores} cores{memory}")
}

fn print_table(phases: &[Phase]) {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |label: &str, cell: &dyn Fn(&Phase) -> String| {
        rows.push((label.to_owned(), phases.iter().map(cell).collect()));
    };
    row("tenants, agent mode", &|p| {
        format!("{}, {}", p.tenants, p.mode.flag())
    });
    row("Tenants' status polled every", &|p| {
        format!("{:.1} s", poll_interval(p.tenants).as_secs_f64())
    });
    row("start → all Tenants created", &|p| {
        seconds(p.all_created, p.limit)
    });
    row("start → all Provisioned=True", &|p| {
        seconds(p.all_provisioned, p.limit)
    });
    row("start → all Ready=True", &|p| match p.mode {
        AgentMode::Process => seconds(p.all_ready, p.limit),
        AgentMode::Off => "– (no agents)".into(),
    });
    row("per tenant to Ready/Provisioned, p50 / p90", &|p| match (
        percentile(&p.per_tenant, 50),
        percentile(&p.per_tenant, 90),
    ) {
        (Some(a), Some(b)) => format!("{a:.1} s / {b:.1} s"),
        _ => "–".into(),
    });
    row("Provisioned / Ready at the end", &|p| {
        format!("{} / {}", p.provisioned, p.ready)
    });
    row("operator RSS at N tenants (peak)", &|p| {
        format!("{} ({})", mib(p.operator_rss_kib), mib(p.operator_peak_kib))
    });
    row("operator CPU time", &|p| format!("{:.1} s", p.operator_cpu));
    row("agents running", &|p| match p.mode {
        AgentMode::Process => p.agents_rss_kib.len().to_string(),
        AgentMode::Off => "–".into(),
    });
    row("agent RSS, median / max", &|p| {
        let rss: Vec<f64> = p.agents_rss_kib.iter().map(|&k| k as f64).collect();
        match (percentile(&rss, 50), percentile(&rss, 100)) {
            (Some(a), Some(b)) => format!("{} / {}", mib(a as u64), mib(b as u64)),
            _ => "–".into(),
        }
    });
    row("agents' RSS, total", &|p| {
        if p.agents_rss_kib.is_empty() {
            "–".into()
        } else {
            mib(p.agents_rss_kib.iter().sum())
        }
    });
    row("agents' PSS, total (shared code counted once)", &|p| {
        if p.agents_pss_kib.is_empty() {
            "–".into()
        } else {
            mib(p.agents_pss_kib.iter().sum())
        }
    });
    row("agents' CPU time, total", &|p| match p.mode {
        AgentMode::Process => format!("{:.1} s", p.agents_cpu),
        AgentMode::Off => "–".into(),
    });
    row("load average 1/5/15 min at the end", &|p| p.load.clone());
    row("operator exit code on SIGTERM", &|p| {
        p.operator_exit
            .map_or_else(|| "did not exit in 15 s".into(), |c| c.to_string())
    });
    row("processes left after the phase", &|p| {
        p.left_running.to_string()
    });
    let label_width = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    let cell_width = rows
        .iter()
        .flat_map(|(_, cells)| cells.iter().map(|c| c.chars().count()))
        .max()
        .unwrap_or(0);
    println!();
    println!(
        "Berth operator benchmark (release build, {}; durations from the operator's start, the platform commit made just before)",
        machine()
    );
    for (label, cells) in rows {
        let cells: Vec<String> = cells.iter().map(|c| format!("{c:<cell_width$}")).collect();
        println!("  {label:<label_width$}  {}", cells.join("  "));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> BenchResult<()> {
    // Children are started from the main thread, to which setpriv's parent-death signal is tied.
    let which = std::env::args().nth(1).unwrap_or_default();
    let mut phases = Vec::new();
    if which != "1000" {
        phases.push(phase(100, AgentMode::Process, Duration::from_secs(900)).await?);
    }
    if which != "100" {
        phases.push(phase(1000, AgentMode::Off, Duration::from_secs(1200)).await?);
    }
    print_table(&phases);
    if phases.iter().any(|p| p.left_running > 0) {
        return Err("some processes outlived their phase (see the table)".into());
    }
    Ok(())
}
