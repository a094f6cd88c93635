//! The admin endpoints answer under abuse: with 1,000 connections that send headers slowly
//! and 100 clients that request `/metrics` and never read, `/healthz` and `/readyz` still answer
//! within a second, and the process grows by less than 32 MiB. (Before: no header-read timeout
//! and no connection cap, so such clients grew memory without bound or wedged the accept loop,
//! and the kubelet restarted a healthy pod.)

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use canary_test_harness::{
    http,
    operator::{Launch, Operator},
    targets::closed_port,
};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");

async fn standalone(dir: &std::path::Path) -> Operator {
    let port = closed_port().await;
    let check = format!(
        "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{name: refused}}\n\
         spec: {{interval: 1s, timeout: 500ms, tcp: {{host: 127.0.0.1, port: {port}}}}}\n"
    );
    std::fs::write(dir.join("check.yaml"), check).unwrap();
    let canary = Launch::standalone(CANARY, dir).process().await;
    canary.wait_ready(Duration::from_secs(10)).await;
    canary
}

/// Opens `count` connections to `addr`, each sending `request` and then nothing more.
fn open(addr: SocketAddr, count: usize, request: &[u8]) -> Vec<TcpStream> {
    (0..count)
        .filter_map(|_| {
            let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
            stream.write_all(request).ok()?;
            Some(stream)
        })
        .collect()
}

/// The slowest answer of `path` over `rounds` tries, failing on anything but 200.
async fn slowest(addr: SocketAddr, path: &str, rounds: usize) -> Duration {
    let mut worst = Duration::ZERO;
    for _ in 0..rounds {
        let start = Instant::now();
        let response = http::get(addr, path).await;
        let took = start.elapsed();
        let status = response.as_ref().map(|r| r.status).map_err(String::clone);
        assert_eq!(status, Ok(200), "{path} under abuse after {took:?}");
        worst = worst.max(took);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worst
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_answer_within_a_second_under_slow_and_greedy_clients() {
    let dir = tempfile::tempdir().unwrap();
    let canary = standalone(dir.path()).await;
    let before = canary.rss_mib();
    let (health, metrics) = (canary.health, canary.metrics);
    let abusers = tokio::task::spawn_blocking(move || {
        let slow = open(health, 1000, b"GET /healthz HTTP/1.1\r\nHost: canary\r\n");
        let greedy = open(
            metrics,
            100,
            b"GET /metrics HTTP/1.1\r\nHost: canary\r\n\r\n",
        );
        (slow, greedy)
    })
    .await
    .unwrap();
    assert!(
        abusers.0.len() >= 900 && abusers.1.len() >= 90,
        "abusers connected"
    );
    let healthz = slowest(health, "/healthz", 20).await;
    let readyz = slowest(health, "/readyz", 20).await;
    let growth = canary.rss_mib() - before;
    println!(
        "under abuse: /healthz {healthz:?}, /readyz {readyz:?} at worst; RSS +{growth:.1} MiB"
    );
    assert!(
        healthz < Duration::from_secs(1),
        "/healthz took {healthz:?}"
    );
    assert!(readyz < Duration::from_secs(1), "/readyz took {readyz:?}");
    assert!(growth < 32.0, "RSS grew {growth:.1} MiB");
    let closed = tokio::task::spawn_blocking(move || closed_by_server(&abusers.0))
        .await
        .unwrap();
    assert!(
        closed * 10 >= 9 * 1000,
        "only {closed} of 1000 slow clients were cut off"
    );
}

/// How many of `streams` the server has closed (end of stream or reset), waiting at most
/// the header-read timeout plus a little for each.
fn closed_by_server(streams: &[TcpStream]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(8);
    streams
        .iter()
        .filter(|stream| {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1));
            let _ = stream.set_read_timeout(Some(left));
            let mut buffer = [0u8; 512];
            // An answer (408), then the close; or the close alone.
            loop {
                match (&**stream).read(&mut buffer) {
                    Ok(0) => return true,
                    Ok(_) => continue,
                    Err(error) => {
                        use std::io::ErrorKind::{TimedOut, WouldBlock};
                        return !matches!(error.kind(), WouldBlock | TimedOut);
                    }
                }
            }
        })
        .count()
}
