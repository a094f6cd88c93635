//! Operator benchmark through the local API server: 1,000 HealthChecks at a 10 s interval
//! applied with kubectl; time until every one shows Ready in status, status writes per second
//! seen at the API server, operator CPU and RSS. Run: `cargo bench --bench operator`
//! (release; needs the tools of `scripts/test` for kubectl). `CHECKS` and `QPS` override.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use canary_test_harness::{
    cluster::{Cluster, http_check},
    env_or,
    operator::{Launch, Operator},
    targets::{Reply, TestServer, Transport},
    tools::documents,
};
use serde_json::{Value, json};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");

/// What one run measured.
struct Figures {
    checks: usize,
    qps: u32,
    applied: Duration,
    all_ready: Duration,
    total: Duration,
    writes: Vec<Instant>,
    cpu: Duration,
    rss: f64,
    peak_rss: f64,
}

/// `checks` HealthChecks at a 10s interval probing `target`.
fn checks(checks: usize, target: &TestServer) -> Vec<Value> {
    let spec = json!({"interval": "10s", "timeout": "2s"});
    (0..checks)
        .map(|i| http_check("default", &format!("c{i}"), &target.url("/"), spec.clone()))
        .collect()
}

/// Polls until every check is Ready=True (10 minutes at most): when, since `started`, and
/// the largest RSS seen meanwhile.
async fn wait_all_ready(
    cluster: &Cluster,
    operator: &Operator,
    checks: usize,
    started: Instant,
) -> (Duration, f64) {
    let ready_column =
        r#"jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#;
    let mut peak_rss: f64 = 0.0;
    loop {
        let out = cluster
            .kubectl
            .ok(&["get", "chc", "-n", "default", "-o", ready_column])
            .await;
        peak_rss = peak_rss.max(operator.rss_mib());
        let ready = out.lines().filter(|l| *l == "True").count();
        if ready == checks {
            return (started.elapsed(), peak_rss);
        }
        let waited = started.elapsed();
        assert!(
            waited < Duration::from_secs(600),
            "only {ready}/{checks} Ready after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Applies the checks, waits until all are Ready, then runs two more intervals.
async fn run(checks_wanted: usize, qps: u32) -> Figures {
    let cluster = Cluster::start().await;
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let operator = Launch::operator(CANARY, cluster.kubeconfig())
        .args(&["--status-write-qps", &qps.to_string()])
        .env("RUST_LOG", "warn,canary_operator::engine=info")
        .process()
        .await;
    let cpu0 = operator.cpu();
    cluster.server.clear_requests();
    let started = Instant::now();
    let apply = ["apply", "--server-side", "-f", "-"];
    cluster
        .kubectl
        .ok_stdin(&apply, &documents(&checks(checks_wanted, &target)))
        .await;
    let applied = started.elapsed();
    let (all_ready, peak_rss) = wait_all_ready(&cluster, &operator, checks_wanted, started).await;
    // Keep running for two more intervals to see the steady-state write rate.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let writes = (cluster.operator_requests().into_iter())
        .filter(|r| r.subresource == "status" && r.verb == "patch")
        .map(|r| r.received)
        .collect();
    let figures = Figures {
        checks: checks_wanted,
        qps,
        applied,
        all_ready,
        total: started.elapsed(),
        writes,
        cpu: operator.cpu() - cpu0,
        rss: operator.rss_mib(),
        peak_rss,
    };
    let _ = operator.terminate().await;
    figures
}

/// The most writes in one whole second since the first.
fn busiest_second(writes: &[Instant]) -> usize {
    let mut per_second = BTreeMap::new();
    for w in writes {
        *per_second
            .entry(w.duration_since(writes[0]).as_secs())
            .or_insert(0) += 1;
    }
    per_second.values().copied().max().unwrap_or(0)
}

fn report(f: &Figures) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let total = f.total.as_secs_f64();
    let cpu = f.cpu.as_secs_f64();
    println!("cores: {cores}");
    println!(
        "{} HealthChecks at a 10s interval, --status-write-qps {} (burst 50)",
        f.checks, f.qps
    );
    println!(
        "kubectl apply --server-side of all: {:.1}s",
        f.applied.as_secs_f64()
    );
    println!(
        "all Ready in status after {:.1}s",
        f.all_ready.as_secs_f64()
    );
    println!(
        "status writes: {} in {total:.0}s ({:.1}/s average, busiest second {})",
        f.writes.len(),
        f.writes.len() as f64 / total,
        busiest_second(&f.writes)
    );
    println!(
        "operator CPU {cpu:.1}s over {total:.0}s ({:.0}% of one core), RSS {:.1} MiB (peak seen {:.1} MiB)",
        cpu / total * 100.0,
        f.rss,
        f.peak_rss
    );
}

fn main() {
    let (checks, qps) = (env_or("CHECKS", 1000), env_or("QPS", 10));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    report(&runtime.block_on(run(checks, qps)));
}
