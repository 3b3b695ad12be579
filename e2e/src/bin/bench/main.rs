//! `make bench`: the tenant agent's speed and memory on the local control plane, reported as
//! medians (the machines are shared and noisy; nothing here is asserted).
//!
//! Measures: idle RSS of a running agent; API requests and time of a no-op reconcile of 1,000
//! objects; trigger-to-applied latency; policy evaluation time per object (in process); the
//! admission webhook's latency per request (through the API server, with and without it).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod admission;

use std::time::{Duration, Instant};

use berth_e2e::{
    TestNamespace, TestRepo, TestTenant, control_plane, free_addr, http_get, metric, policy_corpus,
};
use berth_engine::api::TenantSync;
use berth_engine::guard::TenantContext;
use berth_engine::policy::PolicyBundle;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

const OBJECTS: usize = 1000;
const ROUNDS: usize = 7;

fn config_maps(version: &str) -> String {
    (0..OBJECTS)
        .map(|i| format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bench-{i}\ndata:\n  version: \"{version}\"\n"))
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn scrape(addr: &str) -> String {
    http_get(addr, "/metrics")
        .await
        .map(|(_, body)| body)
        .unwrap_or_default()
}

const APPLIED_COUNT: &str = "berth_reconcile_duration_seconds_count{result=\"Applied\"}";
const APPLIED_SUM: &str = "berth_reconcile_duration_seconds_sum{result=\"Applied\"}";

async fn wait_for_reconciles(addr: &str, count: f64) {
    for _ in 0..2400 {
        if metric(&scrape(addr).await, APPLIED_COUNT) >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the agent did not reach {count} reconciles");
}

async fn trigger(syncs: &Api<TenantSync>, round: usize) {
    let patch = json!({"spec": {"syncRequestedAt": format!("bench-{round}-{}", Instant::now().elapsed().as_nanos())}});
    syncs
        .patch("berth", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("trigger");
}

/// `opa eval` of the library over the corpus in one process, per object (median of runs, the
/// process start included once per run).
fn opa_eval_per_object(corpus: &[berth_engine::manifest::Manifest]) -> f64 {
    let Some(opa) = std::env::var_os("BERTH_OPA") else {
        return f64::NAN;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("input.json");
    let cases: Vec<_> = corpus.iter().map(|m| json!({"object": m.object, "tenant": {"name": "team-a", "namespaces": ["team-a"]}, "revision": "rev"})).collect();
    std::fs::write(&input, json!({"cases": cases}).to_string()).expect("input");
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/berth");
    let mut runs = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let out = std::process::Command::new(&opa)
            .args(["eval", "--format", "json", "--data"])
            .arg(&policies)
            .arg("--input")
            .arg(&input)
            .arg("[v | some c in input.cases; v := data.berth.violations with input as c]")
            .output()
            .expect("opa eval");
        assert!(out.status.success());
        runs.push(t.elapsed().as_secs_f64() / corpus.len() as f64);
    }
    median(runs)
}

/// `conftest test` of the library (through a `deny` wrapper, the way conftest reads policy)
/// over the corpus, one JSON file per object: per object in one process over all files
/// (median of runs), and p50/p99 of one process per object over the first 50.
fn conftest_per_object(corpus: &[berth_engine::manifest::Manifest]) -> Option<(f64, f64, f64)> {
    let conftest = std::env::var_os("BERTH_CONFTEST")?;
    let dir = tempfile::tempdir().expect("temp dir");
    let (policy, inputs) = (dir.path().join("policy"), dir.path().join("inputs"));
    std::fs::create_dir_all(&policy).expect("policy dir");
    std::fs::create_dir_all(&inputs).expect("input dir");
    let library = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/berth");
    for entry in std::fs::read_dir(&library).expect("policies/berth") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".rego") && !name.ends_with("_test.rego") {
            std::fs::copy(&path, policy.join(&name)).expect("copy policy");
        }
    }
    std::fs::write(
        policy.join("conftest_wrapper.rego"),
        "package main\n\nimport data.berth\n\ndeny contains v.message if {\n\tsome v in berth.violations\n}\n",
    )
    .expect("wrapper");
    let mut files = Vec::new();
    for (i, m) in corpus.iter().enumerate() {
        let file = inputs.join(format!("{i:04}.json"));
        let input = json!({"object": m.object, "tenant": {"name": "team-a", "namespaces": ["team-a"]}, "revision": "rev"});
        std::fs::write(&file, input.to_string()).expect("input");
        files.push(file);
    }
    let run = |files: &[std::path::PathBuf]| {
        let t = Instant::now();
        let out = std::process::Command::new(&conftest)
            .args(["test", "--no-color", "--policy"])
            .arg(&policy)
            .args(files)
            .output()
            .expect("conftest");
        // Exit 1 means denials were found, as expected for most of the corpus.
        assert!(
            out.status.code().is_some_and(|c| c <= 1),
            "conftest: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed().as_secs_f64()
    };
    let batch = median(
        (0..ROUNDS)
            .map(|_| run(&files) / files.len() as f64)
            .collect(),
    );
    let mut single: Vec<f64> = files
        .iter()
        .take(50)
        .map(|f| run(std::slice::from_ref(f)))
        .collect();
    single.sort_by(f64::total_cmp);
    Some((
        batch,
        single[single.len() / 2],
        single[single.len() * 99 / 100],
    ))
}

#[tokio::main]
async fn main() {
    let cp = control_plane().expect("local control plane");
    let admin = cp.admin_client().await.expect("admin client");
    let ns = TestNamespace::create(&admin, "bench")
        .await
        .expect("namespace");
    let tenant = TestTenant::provision(cp, &admin, "bench", &ns.name).await;
    let repo = TestRepo::new();
    repo.write("objects.yaml", config_maps("0"));
    repo.commit("1000 objects");
    let syncs = Api::<TenantSync>::namespaced(admin.clone(), &tenant.home);
    let config_maps_api = Api::<ConfigMap>::namespaced(admin.clone(), &ns.name);

    let addr = free_addr();
    let started = Instant::now();
    let mut agent = tenant.spawn(
        &repo.file_url(),
        &[
            "--interval",
            "2s",
            "--metrics-addr",
            &addr,
            "--log-format",
            "json",
        ],
    );
    wait_for_reconciles(&addr, 1.0).await;
    let first_apply = started.elapsed();

    // No-op reconciles, as the interval runs them: nothing changed in Git or in the cluster.
    let before = scrape(&addr).await;
    let done = metric(&before, APPLIED_COUNT);
    wait_for_reconciles(&addr, done + ROUNDS as f64).await;
    let after = scrape(&addr).await;
    let rounds = metric(&after, APPLIED_COUNT) - done;
    let per_round = |sample: &str| (metric(&after, sample) - metric(&before, sample)) / rounds;
    let requests: Vec<(&str, f64)> = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        .iter()
        .map(|m| {
            (
                *m,
                per_round(&format!("berth_api_requests_total{{method=\"{m}\"}}")),
            )
        })
        .collect();
    let noop_reconcile = per_round(APPLIED_SUM);

    // Trigger to applied: one object changes per commit.
    let mut applied_latency = Vec::new();
    for round in 0..ROUNDS {
        let version = format!("v{round}");
        repo.write(
            "objects.yaml",
            config_maps("0").replace(
                "bench-0\ndata:\n  version: \"0\"",
                &format!("bench-0\ndata:\n  version: \"{version}\""),
            ),
        );
        repo.commit(&version);
        let t = Instant::now();
        trigger(&syncs, 100 + round).await;
        loop {
            let cm = config_maps_api.get("bench-0").await.expect("bench-0");
            if cm.data.and_then(|d| d.get("version").cloned()).as_deref() == Some(version.as_str())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        applied_latency.push(t.elapsed().as_secs_f64());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_rss = rss_kib(agent.0.id());
    let code = agent.terminate();

    // Policy evaluation over the corpus, in process, with the built-in bundle, beside opa eval.
    let bundle_bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/bundle.tar.gz"),
    )
    .expect("bundle");
    let bundle = PolicyBundle::from_bytes("default", &bundle_bytes, json!({}))
        .await
        .expect("bundle");
    let context = TenantContext {
        name: "team-a".into(),
        namespaces: vec!["team-a".into()],
        allowed_kinds: vec!["*".into()],
        ..TenantContext::default()
    };
    let corpus = policy_corpus::corpus();
    let mut single = Vec::new();
    for _ in 0..5 {
        for object in &corpus {
            let t = Instant::now();
            bundle
                .evaluate(std::slice::from_ref(object), &context, "rev")
                .await
                .expect("evaluate");
            single.push(t.elapsed().as_secs_f64());
        }
    }
    let mut batch = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        bundle
            .evaluate(&corpus, &context, "rev")
            .await
            .expect("evaluate");
        batch.push(t.elapsed().as_secs_f64() / corpus.len() as f64);
    }
    let opa_batch = opa_eval_per_object(&corpus);
    let conftest = conftest_per_object(&corpus);
    let admission = admission::measure(cp, &admin).await;

    ns.delete(&admin).await;
    println!("Berth tenant agent benchmark ({OBJECTS} objects, {ROUNDS} rounds, release build)");
    println!(
        "  first apply of {OBJECTS} objects (start to applied): {:.2} s",
        first_apply.as_secs_f64()
    );
    println!(
        "  no-op reconcile of {OBJECTS} objects (mean of {rounds} interval runs): {:.0} ms",
        noop_reconcile * 1000.0
    );
    let writes: f64 = requests
        .iter()
        .filter(|(m, _)| *m != "GET")
        .map(|(_, n)| n)
        .sum();
    println!(
        "  API requests per no-op reconcile:              {} (writes: {writes})",
        requests
            .iter()
            .map(|(m, n)| format!("{m} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  trigger to applied, one object changed (median): {:.0} ms",
        median(applied_latency) * 1000.0
    );
    println!(
        "  idle RSS of the agent after the runs:          {:.1} MiB",
        idle_rss as f64 / 1024.0
    );
    single.sort_by(f64::total_cmp);
    let p99 = single[single.len() * 99 / 100];
    println!(
        "  policy, {} corpus manifests: per object in a revision (median of {ROUNDS}): opa-wasm {:.1} µs, opa eval {:.1} µs",
        corpus.len(),
        median(batch) * 1e6,
        opa_batch * 1e6
    );
    println!(
        "  policy, one object alone incl. instantiation: p50 {:.0} µs, p99 {:.0} µs",
        single[single.len() / 2] * 1e6,
        p99 * 1e6
    );
    match conftest {
        Some((batch, p50, p99)) => println!(
            "  conftest (BERTH_CONFTEST): per object over the corpus in one process {:.1} µs; one object per process p50 {:.0} ms, p99 {:.0} ms",
            batch * 1e6,
            p50 * 1e3,
            p99 * 1e3
        ),
        None => println!("  conftest: not measured (BERTH_CONFTEST unset)"),
    }
    admission.print();
    println!("  agent exit code after SIGTERM: {code:?}");
}
