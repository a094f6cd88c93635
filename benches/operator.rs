//! Operator benchmark through the local API server: 1,000 HealthChecks at a 10 s interval
//! applied with kubectl; time until every one shows Ready in status, status writes per second
//! seen at the API server (converging, then in steady state against the `--status-write-qps`
//! budget), then `kubectl annotate --all canary.dev/run-now`: time until every check's
//! `status.lastHandledRunNow` shows the value and the writes it cost; operator CPU and RSS.
//! Run: `cargo bench --bench operator` (bench profile: fat LTO, as shipped; needs the tools of `scripts/test` for
//! kubectl). `CHECKS`, `QPS` and `STEADY` (seconds) override; `RUN_NOW=0` skips the run-now
//! phase.

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
    /// When every check showed Ready, and the steady window after it.
    ready_at: Instant,
    steady: Duration,
    run_now: Vec<RunNowPhase>,
    cpu: Duration,
    rss: f64,
    peak_rss: f64,
}

/// One `kubectl annotate --all canary.dev/run-now=<value>`: when it was sent, and how long
/// until every check's status showed the value.
struct RunNowPhase {
    value: String,
    sent: Instant,
    all_handled: Duration,
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

/// Annotates every check with run-now `value`; waits (2 minutes at most) until every status
/// carries it.
async fn run_now(cluster: &Cluster, checks: usize, value: &str) -> RunNowPhase {
    let sent = Instant::now();
    let annotation = format!("canary.dev/run-now={value}");
    let annotate = [
        "annotate",
        "chc",
        "--all",
        "-n",
        "default",
        &annotation,
        "--overwrite",
    ];
    cluster.kubectl.ok(&annotate).await;
    let handled = r#"jsonpath={range .items[*]}{.status.lastHandledRunNow}{"\n"}{end}"#;
    loop {
        let out = (cluster.kubectl)
            .ok(&["get", "chc", "-n", "default", "-o", handled])
            .await;
        let done = out.lines().filter(|l| *l == value).count();
        if done == checks {
            return RunNowPhase {
                value: value.to_string(),
                sent,
                all_handled: sent.elapsed(),
            };
        }
        assert!(
            sent.elapsed() < Duration::from_secs(120),
            "only {done}/{checks} handled run-now {value} after 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Applies the checks, waits until all are Ready, measures the steady state, then run-now.
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
    let ready_at = Instant::now();
    // A measurement window, not a wait for a condition: the steady-state write rate.
    let steady = Duration::from_secs(env_or("STEADY", 30));
    tokio::time::sleep(steady).await;
    let mut phases = Vec::new();
    if env_or("RUN_NOW", 1) == 1 {
        phases.push(run_now(&cluster, checks_wanted, "bench-1").await);
    }
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
        ready_at,
        steady,
        run_now: phases,
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

/// The writes received in `[from, to)`.
fn between(writes: &[Instant], from: Instant, to: Instant) -> Vec<Instant> {
    (writes.iter().copied())
        .filter(|w| *w >= from && *w < to)
        .collect()
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
    let steady_end = f.ready_at + f.steady;
    let steady = between(&f.writes, f.ready_at, steady_end);
    println!(
        "steady state ({:.0}s after all Ready): {} writes, {:.2}/s (budget --status-write-qps {}), busiest second {}",
        f.steady.as_secs_f64(),
        steady.len(),
        steady.len() as f64 / f.steady.as_secs_f64(),
        f.qps,
        busiest_second(&steady)
    );
    for (i, phase) in f.run_now.iter().enumerate() {
        let end = (f.run_now.get(i + 1)).map_or(Instant::now(), |next| next.sent);
        let writes = between(&f.writes, phase.sent, end);
        println!(
            "run-now {} on all: every lastHandledRunNow after {:.1}s; {} writes until the next phase, busiest second {}",
            phase.value,
            phase.all_handled.as_secs_f64(),
            writes.len(),
            busiest_second(&writes)
        );
    }
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
