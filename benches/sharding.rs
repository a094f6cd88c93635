//! Sharding benchmark through the local API server: `CHECKS` HealthChecks (default 10,000) at a
//! 10 s interval over `REPLICAS` operator processes (default 3) with `--sharding shards`.
//! Measures the time until every check shows Ready in status, then over a steady window
//! (`WINDOW` seconds, default 30): scheduler lag p99 per replica (from the
//! `canary_scheduler_lag_seconds` histogram, bucket upper bound), CPU per replica, checks owned
//! per replica, and status writes per second seen at the API server. Run:
//! `cargo bench --bench sharding` (bench profile: fat LTO, as shipped; needs the tools of `scripts/test` for kubectl).
//! With `CHECKS=1000` it takes about a minute here, the default 10,000 about four, 30,000 about
//! nine (figures in docs/scaling.md). The target
//! runs on its own runtime: on the API server's runtime, at 10,000 checks it was starved into
//! probe timeouts (8 % of runs), so all-Ready was never reached.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use canary_operator::api::{HealthCheck, ReadyStatus};
use canary_test_harness::{
    cluster::{Cluster, http_check},
    env_or, metrics,
    operator::{Launch, Operator},
    targets::{Reply, TestServer, Transport},
    tools::documents,
};
use futures::StreamExt;
use kube::{Api, runtime::watcher};
use serde_json::{Value, json};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");

/// `checks` HealthChecks at a 10s interval probing `target`.
fn checks(checks: usize, target: &TestServer) -> Vec<Value> {
    let spec = json!({"interval": "10s", "timeout": "2s"});
    (0..checks)
        .map(|i| http_check("default", &format!("c{i}"), &target.url("/"), spec.clone()))
        .collect()
}

/// The `canary_scheduler_lag_seconds` buckets of one scrape: (upper bound, cumulative count).
fn lag_buckets(text: &str) -> Vec<(f64, f64)> {
    let mut buckets: Vec<(f64, f64)> = (metrics::samples(text).into_iter())
        .filter(|s| s.name == "canary_scheduler_lag_seconds_bucket")
        .filter_map(|s| {
            let le = s.labels.get("le")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, s.value))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// The upper bound of the bucket holding the `q` quantile of the runs between two scrapes,
/// and how many runs that was.
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> (f64, f64) {
    let counts: Vec<(f64, f64)> = (after.iter())
        .map(|(le, n)| {
            let was = (before.iter()).find(|(b, _)| b == le).map_or(0.0, |b| b.1);
            (*le, n - was)
        })
        .collect();
    let total = counts.last().map_or(0.0, |c| c.1);
    let bound = (counts.iter())
        .find(|(_, n)| *n >= q * total)
        .map_or(f64::NAN, |c| c.0);
    (bound, total)
}

/// Polls the replicas' `canary_checks{state="ready"}` until they add up to `checks` (10
/// minutes at most; cheap, unlike listing 10,000 objects); returns when, since `started`.
async fn wait_all_ready_on_replicas(
    operators: &[(String, Operator)],
    checks: usize,
    started: Instant,
) -> Duration {
    loop {
        let mut ready = 0.0;
        for (_, operator) in operators {
            let scrape = operator.scrape().await.unwrap_or_default();
            ready += metrics::sum(&scrape, "canary_checks", &[("state", "ready")]);
        }
        // At least: during a move two replicas may both count a check for a moment.
        if ready as usize >= checks {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {ready}/{checks} Ready on the replicas after 10 minutes"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Watches the checks until every one is Ready=True in status (10 minutes at most); returns
/// when, since `started`. One list, then events: re-listing 30,000 objects with kubectl at each
/// poll took longer than the harness's two minutes per call on the shared machine.
async fn wait_all_ready(cluster: &Cluster, checks: usize, started: Instant) -> Duration {
    let kubeconfig = kube::config::Kubeconfig::read_from(cluster.kubeconfig()).unwrap();
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .unwrap();
    let api = Api::<HealthCheck>::namespaced(kube::Client::try_from(config).unwrap(), "default");
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
    let mut ready: HashSet<String> = HashSet::new();
    let mut listed = false;
    let deadline = Duration::from_secs(600);
    loop {
        let left = deadline.saturating_sub(started.elapsed());
        let event = tokio::time::timeout(left, events.next()).await;
        let Ok(Some(event)) = event else {
            panic!("only {}/{checks} Ready after 10 minutes", ready.len());
        };
        let mut note = |check: &HealthCheck| {
            let name = check.metadata.name.clone().unwrap_or_default();
            let is_ready =
                (check.status.as_ref()).and_then(|s| s.ready()) == Some(ReadyStatus::True);
            if is_ready {
                ready.insert(name);
            } else {
                ready.remove(&name);
            }
        };
        match event {
            Ok(watcher::Event::Init) => ready.clear(),
            Ok(watcher::Event::InitApply(check) | watcher::Event::Apply(check)) => note(&check),
            Ok(watcher::Event::Delete(check)) => {
                ready.remove(&check.metadata.name.unwrap_or_default());
            }
            Ok(watcher::Event::InitDone) => listed = true,
            Err(error) => println!("watch: {error}"),
        }
        if listed && ready.len() == checks {
            return started.elapsed();
        }
    }
}

async fn run(checks_wanted: usize, replicas: usize, window: Duration, target: &TestServer) {
    let cluster = Cluster::start().await;
    let mut operators: Vec<(String, Operator)> = Vec::new();
    for i in 1..=replicas {
        let name = format!("r{i}");
        let operator = Launch::operator(CANARY, cluster.kubeconfig())
            .args(&["--sharding", "shards"])
            .env("POD_NAME", &name)
            .env("RUST_LOG", "warn,canary_operator::engine=info")
            .process()
            .await;
        operators.push((name, operator));
    }
    println!(
        "{checks_wanted} HealthChecks at a 10s interval over {replicas} replicas (--sharding shards)"
    );
    let started = Instant::now();
    let apply = ["apply", "--server-side", "-f", "-"];
    // In batches: one kubectl call must finish within the harness's two minutes (5,000 took
    // longer on the shared machine).
    for batch in checks(checks_wanted, target).chunks(2_000) {
        cluster.kubectl.ok_stdin(&apply, &documents(batch)).await;
    }
    let applied = started.elapsed();
    println!("kubectl apply --server-side: {:.1}s", applied.as_secs_f64());
    let on_replicas = wait_all_ready_on_replicas(&operators, checks_wanted, started).await;
    println!(
        "all Ready on the replicas after {:.1}s",
        on_replicas.as_secs_f64()
    );
    let all_ready = wait_all_ready(&cluster, checks_wanted, started).await;
    println!("all Ready in status after {:.1}s", all_ready.as_secs_f64());
    // The steady window: every check has run, first writes are done.
    cluster.server.clear_requests();
    let mut before = Vec::new();
    for (_, operator) in &operators {
        let scrape = operator.scrape().await.unwrap_or_default();
        let failed = metrics::sum(&scrape, "canary_check_runs_total", &[("result", "failure")]);
        before.push((operator.cpu(), lag_buckets(&scrape), failed));
    }
    let window_start = Instant::now();
    tokio::time::sleep(window).await;
    let seconds = window_start.elapsed().as_secs_f64();
    let writes = (cluster.operator_requests().into_iter())
        .filter(|r| r.subresource == "status" && r.verb == "patch")
        .count();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("cores: {cores}");
    println!("steady window {seconds:.0}s:");
    for ((name, operator), (cpu0, lag0, failed0)) in operators.iter().zip(&before) {
        // Read before this scrape too: rendering 10,000 checks' series takes tens of MB for a
        // few seconds (jemalloc's background thread returns them within its 10 s decay).
        let idle_rss = operator.rss_mib();
        let scrape = operator.scrape().await.unwrap_or_default();
        let cpu = (operator.cpu() - *cpu0).as_secs_f64();
        let (p99, runs) = quantile(lag0, &lag_buckets(&scrape), 0.99);
        let owned = metrics::sum(&scrape, "canary_shard_owned_checks", &[]);
        let members = metrics::sum(&scrape, "canary_shard_members", &[]);
        let failed =
            metrics::sum(&scrape, "canary_check_runs_total", &[("result", "failure")]) - failed0;
        println!(
            "  {name}: owns {owned:.0} checks (sees {members:.0} members), {runs:.0} runs \
             ({:.0}/s, {failed:.0} failed), scheduler lag p99 <= {p99}s, CPU {:.0}% of one core, \
             RSS {idle_rss:.1} MiB ({:.1} MiB right after a scrape)",
            runs / seconds,
            cpu / seconds * 100.0,
            operator.rss_mib()
        );
    }
    println!(
        "status writes at the API server: {writes} ({:.1}/s, all replicas)",
        writes as f64 / seconds
    );
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, operator) in &operators {
        let (status, _) = operator.terminate().await;
        *counts
            .entry(if status.success() { "ok" } else { "failed" })
            .or_default() += 1;
        if !status.success() {
            println!("{name} exited with {status:?}");
        }
    }
    println!("exits: {counts:?}");
}

fn main() {
    let checks = env_or("CHECKS", 10_000);
    let replicas = env_or("REPLICAS", 3);
    let window = Duration::from_secs(env_or("WINDOW", 30));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // The target answers from its own runtime, so the API server's work in this process
    // (thousands of status writes, three watchers) cannot starve it into probe timeouts.
    let target_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let target = target_runtime.block_on(TestServer::start(Transport::Plain, |_| Reply::ok("ok")));
    runtime.block_on(run(checks, replicas, window, &target));
}
