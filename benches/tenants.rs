//! Tenants under saturation, as `canary standalone` lives it with `--max-concurrent-probes 16`:
//! namespace `noisy` (300 checks at 5s/4s against a blackhole) alone, beside one quiet namespace
//! (5 checks at 1 s against a target answering at once) and beside ten. Prints, per scenario,
//! each quiet namespace's runs against the runs due, noisy's runs and the slots it kept busy.
//! Then the cost of the slot policy itself: acquire + release per second, on one thread, with
//! 1, 100 and 1,000 namespaces contending for 4,096 slots.
//! Run: `cargo bench --bench tenants`. `SECONDS` (window, default 20) overrides the size.

use std::time::{Duration, Instant};

use canary_operator::runner::Slots;
use canary_test_harness::{
    env_or, metrics,
    operator::{Launch, Operator},
    targets::{Blackhole, Reply, TestServer, Transport},
    wait::eventually,
};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");
const SLOTS: usize = 16;

fn check(namespace: &str, name: &str, interval: &str, timeout: &str, url: &str) -> String {
    format!(
        "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\n\
         metadata: {{name: {name}, namespace: {namespace}}}\n\
         spec: {{interval: {interval}, timeout: {timeout}, http: {{url: '{url}'}}}}\n---\n"
    )
}

fn write(dir: &std::path::Path, file: &str, checks: impl Iterator<Item = String>) {
    std::fs::write(dir.join(file), checks.collect::<String>()).unwrap();
}

fn runs(text: &str, namespace: &str) -> f64 {
    metrics::sum(text, "canary_check_runs_total", &[("namespace", namespace)])
}

async fn scrape(canary: &Operator) -> String {
    canary.scrape().await.expect("/metrics answers")
}

/// Runs noisy beside `quiets` quiet namespaces for `window` after noisy saturated the slots.
async fn scenario(quiets: usize, window: Duration) {
    let hole = Blackhole::start().await;
    let quick = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/", hole.port());
    write(
        dir.path(),
        "noisy.yaml",
        (0..300).map(|i| check("noisy", &format!("n{i}"), "5s", "4s", &url)),
    );
    for q in 0..quiets {
        let (namespace, url) = (format!("quiet-{q}"), quick.url("/"));
        let checks = (0..5).map(|i| check(&namespace, &format!("q{i}"), "1s", "500ms", &url));
        write(dir.path(), &format!("{namespace}.yaml"), checks);
    }
    let slots = SLOTS.to_string();
    let canary = Launch::standalone(CANARY, dir.path())
        .args(&["--max-concurrent-probes", &slots])
        .process()
        .await;
    canary.wait_ready(Duration::from_secs(30)).await;
    eventually(
        Duration::from_secs(30),
        "noisy's first timeouts",
        Duration::from_millis(200),
        async || {
            let noisy = runs(&scrape(&canary).await, "noisy");
            (noisy >= SLOTS as f64)
                .then_some(())
                .ok_or(format!("{noisy}"))
        },
    )
    .await;
    let before = scrape(&canary).await;
    let start = Instant::now();
    let mut in_use = Vec::new();
    while start.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let text = scrape(&canary).await;
        in_use.push(metrics::sum(&text, "canary_probe_slots_in_use", &[]));
    }
    let after = scrape(&canary).await;
    let elapsed = start.elapsed().as_secs_f64();
    let noisy = runs(&after, "noisy") - runs(&before, "noisy");
    let (low, high) = in_use
        .iter()
        .fold((f64::MAX, 0.0f64), |(l, h), v| (l.min(*v), h.max(*v)));
    println!(
        "noisy beside {quiets} quiet namespace(s), {elapsed:.1}s: noisy {noisy} runs (~{:.1} slots busy), \
         slots in use {low}-{high} of {SLOTS}",
        noisy * 4.0 / elapsed
    );
    for q in 0..quiets {
        let namespace = format!("quiet-{q}");
        let ran = runs(&after, &namespace) - runs(&before, &namespace);
        println!("  {namespace}: {ran} of {} due runs", 5.0 * elapsed.floor());
    }
}

/// Acquire + release per second on one thread, `tasks` contending for 4,096 slots from
/// `namespaces` namespaces.
async fn policy_cost(namespaces: usize, tasks: usize, span: Duration) {
    let slots = Slots::new(4096);
    let names: Vec<String> = (0..namespaces).map(|n| format!("ns-{n}")).collect();
    let until = Instant::now() + span;
    let workers: Vec<_> = (0..tasks)
        .map(|t| {
            let (slots, namespace) = (slots.clone(), names[t % namespaces].clone());
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < until {
                    let (permit, _) = slots.acquire(&namespace, Duration::from_secs(10)).await;
                    tokio::task::yield_now().await;
                    drop(permit);
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut total = 0;
    for worker in workers {
        total += worker.await.unwrap();
    }
    let per_second = total as f64 / span.as_secs_f64();
    println!(
        "slot policy, {namespaces} namespaces, {tasks} tasks: {per_second:.0} acquire+release/s ({:.1} us each)",
        1e6 / per_second
    );
}

fn main() {
    let window = Duration::from_secs(env_or("SECONDS", 20));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for quiets in [0, 1, 10] {
        runtime.block_on(scenario(quiets, window));
    }
    let one = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for namespaces in [1, 100, 1000] {
        one.block_on(policy_cost(namespaces, 8192, Duration::from_secs(3)));
    }
}
