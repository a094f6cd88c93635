//! Tenants isolated under saturation: through the real binary (`canary standalone`,
//! `--max-concurrent-probes 16`), namespace `noisy` has 300 checks (5s interval, 4s timeout)
//! against a blackhole and namespace `quiet` 5 checks (1s interval) against a target that
//! answers at once. Before, a freed slot went to the waiting namespace holding the fewest, but
//! `noisy` held every slot for up to its timeout, so `quiet` ran 35 of its 100 runs in 20 s
//! (scheduler lag 8.3 s on average). Now slots beyond a namespace's fair share are lent only
//! out of headroom no other active namespace needed recently, so `quiet` finds a free slot.

use std::time::{Duration, Instant};

use canary_test_harness::{
    metrics,
    operator::{Launch, Operator},
    targets::{Blackhole, Reply, TestServer, Transport},
};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");
const NOISY: usize = 300;
const QUIET: usize = 5;
const WINDOW: Duration = Duration::from_secs(20);

fn check(namespace: &str, name: &str, interval: &str, timeout: &str, url: &str) -> String {
    format!(
        "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\n\
         metadata: {{name: {name}, namespace: {namespace}}}\n\
         spec: {{interval: {interval}, timeout: {timeout}, http: {{url: '{url}'}}}}\n---\n"
    )
}

fn write_checks(dir: &std::path::Path, blackhole: u16, quick: &str) {
    let hole = format!("http://127.0.0.1:{blackhole}/healthz");
    let noisy: String = (0..NOISY)
        .map(|i| check("noisy", &format!("n{i}"), "5s", "4s", &hole))
        .collect();
    std::fs::write(dir.join("noisy.yaml"), noisy).unwrap();
    let quiet: String = (0..QUIET)
        .map(|i| check("quiet", &format!("q{i}"), "1s", "500ms", quick))
        .collect();
    std::fs::write(dir.join("quiet.yaml"), quiet).unwrap();
}

/// Runs of every check of `namespace`, from one scrape.
fn runs(text: &str, namespace: &str) -> f64 {
    metrics::sum(text, "canary_check_runs_total", &[("namespace", namespace)])
}

async fn scrape(canary: &Operator) -> String {
    let text = canary.scrape().await;
    text.unwrap_or_else(|| panic!("/metrics did not answer; logs:\n{}", canary.tail(20)))
}

/// Waits until `noisy` saturates the slots: its first probes timed out, so every slot has been
/// fought over at least once and `quiet` is known to the pool (start-up is not measured: until
/// `quiet` first asks for a slot, nothing tells the pool to keep one for it).
async fn saturated(canary: &Operator) {
    let what = "noisy's first timeouts and quiet's first runs";
    canary_test_harness::wait::eventually(
        Duration::from_secs(30),
        what,
        Duration::from_millis(200),
        async || {
            let text = scrape(canary).await;
            let (noisy, quiet) = (runs(&text, "noisy"), runs(&text, "quiet"));
            (noisy >= 16.0 && quiet >= QUIET as f64)
                .then_some(())
                .ok_or(format!("noisy {noisy} runs, quiet {quiet}"))
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_namespace_keeps_its_schedule_beside_a_noisy_one() {
    let hole = Blackhole::start().await;
    let quick = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let dir = tempfile::tempdir().unwrap();
    write_checks(dir.path(), hole.port(), &quick.url("/healthz"));
    let canary = Launch::standalone(CANARY, dir.path())
        .args(&["--max-concurrent-probes", "16"])
        .process()
        .await;
    canary.wait_ready(Duration::from_secs(30)).await;
    saturated(&canary).await;
    let before = scrape(&canary).await;
    let start = Instant::now();
    while start.elapsed() < WINDOW {
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Capacity shortage, not a stall: /healthz stays 200.
        assert_eq!(canary.health_code("/healthz").await, Some(200));
    }
    let after = scrape(&canary).await;
    let elapsed = start.elapsed();
    let quiet = runs(&after, "quiet") - runs(&before, "quiet");
    let noisy = runs(&after, "noisy") - runs(&before, "noisy");
    let due = QUIET as f64 * elapsed.as_secs_f64().floor();
    println!("in {elapsed:?}: quiet ran {quiet} of {due} due runs, noisy {noisy}");
    // The slack: one run per check for where the window's edges fall among its runs.
    assert!(
        quiet >= due - QUIET as f64,
        "quiet ran {quiet} of {due} due runs; logs:\n{}",
        canary.tail(20)
    );
    // Noisy keeps at least its fair share, 8 of the 16 slots, each busy 4 s per run (less
    // one run per slot for the window's edges).
    let share_runs = 8.0 * (WINDOW.as_secs_f64() / 4.0 - 1.0);
    assert!(noisy >= share_runs, "noisy ran {noisy} (< {share_runs})");
}
