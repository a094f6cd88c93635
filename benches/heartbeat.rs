//! Heartbeat checks' cost: `canary standalone` with `CHECKS` (default 10,000) heartbeat checks
//! (`period: 1h`, one file, the token in `--secrets-dir`): RSS and CPU while idle over `WINDOW`
//! seconds (default 30), then while `RATE` checks (default 100) are each pinged once a second
//! (100 pings/s, a new connection each, as `curl` in a CronJob does) for the same window: the
//! answers, CPU and RSS. Run: `cargo bench --features jemalloc --bench heartbeat` (release, as
//! shipped), or `cargo test --features jemalloc --bench heartbeat` (a debug build).

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use canary_test_harness::{env_or, operator::Launch, procfs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");
const TOKEN: &str = "bench-heartbeat-token-0123456789";

/// One POST with the token over a fresh connection: the status code (0 on failure).
async fn ping(addr: SocketAddr, name: String) -> u16 {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let request = format!(
        "POST /api/v1/ping/default/{name} HTTP/1.1\r\nHost: canary\r\nConnection: close\r\n\
         Authorization: Bearer {TOKEN}\r\nContent-Length: 0\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    (text.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn checks(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{name: hb-{i}}}\n\
                 spec:\n  heartbeat:\n    tokenSecretRef: {{name: ping, key: token}}\n    period: 1h\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// CPU seconds of `pid` over `window`, and its RSS at the end.
async fn measure(pid: u32, window: Duration) -> (f64, f64) {
    let before = procfs::cpu(pid);
    tokio::time::sleep(window).await;
    let cpu = procfs::cpu(pid).saturating_sub(before).as_secs_f64();
    (cpu, procfs::memory_mib(pid, "VmRSS"))
}

#[tokio::main]
async fn main() {
    let count: usize = env_or("CHECKS", 10_000);
    let rate: usize = env_or("RATE", 100);
    let window = Duration::from_secs(env_or("WINDOW", 30));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (files, secrets) = (dir.path().join("checks"), dir.path().join("secrets"));
    std::fs::create_dir_all(secrets.join("ping")).expect("secrets dir");
    std::fs::create_dir_all(&files).expect("checks dir");
    std::fs::write(secrets.join("ping/token"), TOKEN).expect("token");
    std::fs::write(files.join("checks.yaml"), checks(count)).expect("checks");
    let secrets = secrets.display().to_string();
    let args = [
        "--secrets-dir",
        &secrets,
        "--heartbeat-bind-address",
        "127.0.0.1:0",
    ];
    let started = Instant::now();
    let canary = Launch::standalone(CANARY, &files)
        .args(&args)
        .ui_off()
        .process()
        .await;
    canary.wait_ready(Duration::from_secs(120)).await;
    let addr = canary
        .heartbeat
        .expect("the heartbeat listener's address is logged");
    let pid = canary.pid();
    println!(
        "{count} heartbeat checks ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let (cpu, rss) = measure(pid, window).await;
    let seconds = window.as_secs_f64();
    println!(
        "idle over {seconds:.0}s: {cpu:.2}s CPU ({:.1}% of a core), RSS {rss:.0} MiB",
        100.0 * cpu / seconds
    );
    let load = tokio::spawn(async move {
        let mut answers = std::collections::BTreeMap::<u16, usize>::new();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        for _ in 0..window.as_secs() {
            tick.tick().await;
            let pings = (0..rate).map(|i| ping(addr, format!("hb-{i}")));
            for status in futures::future::join_all(pings).await {
                *answers.entry(status).or_default() += 1;
            }
        }
        answers
    });
    let (cpu, rss) = measure(pid, window).await;
    let answers = load.await.expect("the load");
    println!(
        "{rate} pings/s over {seconds:.0}s: answers {answers:?}; {cpu:.2}s CPU ({:.1}% of a core), RSS {rss:.0} MiB",
        100.0 * cpu / seconds
    );
    let _ = canary.terminate().await;
}
