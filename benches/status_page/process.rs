//! Sections `memory` and `flood`: `canary standalone` (this build's binary, fat LTO as shipped, or
//! `CANARY_BIN` to compare another build) with `FLEET` (default 2,000) TCP checks of a loopback
//! listener at `INTERVAL` (default 10 s), as issue 23 measured it.
//!
//! - `memory`: 128 connections send `GET` and never read (receive buffer 4 KiB, as a remote
//!   client that wants the server to keep its reply would set it): the same overview, the same
//!   gzipped, and 128 different pages of it. RSS growth, and the kernel's send queues of the
//!   page's sockets (charged to the pod's cgroup too). A fresh process for each.
//! - `flood`: plus a sentinel HTTP check (1 s, `maxDuration: 250ms`, the target answers at
//!   once) while 16 clients fetch the overview gzipped at about 100 requests/s for `SECONDS`
//!   (default 90): the sentinel's `Slow` runs and mean duration, the scheduler's mean lag, and
//!   the page's answer times; once for `/` and once for uncacheable pages (`/?page=N&n=I`).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    time::{Duration, Instant},
};

use canary_test_harness::{
    env_or, http,
    operator::{Launch, Operator},
    procfs::tcp_send_queue,
    targets::{Reply, Tarpit, TestServer, Transport},
    wait::eventually,
};

const SEC: Duration = Duration::from_secs(1);

fn binary() -> String {
    std::env::var("CANARY_BIN").unwrap_or(env!("CARGO_BIN_EXE_canary").into())
}

/// Writes `fleet` TCP checks of `port` at `interval` seconds, and `extra` documents.
fn write_fleet(dir: &Path, fleet: usize, port: u16, interval: u64, extra: &[String]) {
    let mut docs: Vec<String> = (0..fleet)
        .map(|i| {
            format!(
                "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{namespace: team-{}, name: service-{i}}}\n\
                 spec: {{interval: {interval}s, timeout: 2s, tcp: {{host: 127.0.0.1, port: {port}}}}}\n",
                i % 20
            )
        })
        .collect();
    docs.extend_from_slice(extra);
    std::fs::write(dir.join("fleet.yaml"), docs.join("---\n")).unwrap();
}

/// Starts the standalone process on `dir` and waits until `runs` runs were counted.
async fn start(dir: &Path, runs: usize) -> Operator {
    let canary = Launch::standalone(&binary(), dir).process().await;
    canary.wait_ready(60 * SEC).await;
    eventually(120 * SEC, "every check ran", SEC, async || {
        let counted = canary.metric_sum("canary_check_runs_total", &[]).await;
        if counted >= runs as f64 {
            Ok(())
        } else {
            Err(format!("{counted} runs"))
        }
    })
    .await;
    canary
}

/// `GET target` on a connection with a 4 KiB receive buffer; the first bytes of the reply are
/// read, then nothing more. The status code, 0 when none came.
fn unread(addr: SocketAddr, target: &str, gzip: bool) -> (TcpStream, u16) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect_timeout(&addr.into(), 2 * SEC).unwrap();
    let mut stream = TcpStream::from(socket);
    let encoding = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    let request = format!("GET {target} HTTP/1.1\r\nHost: canary\r\n{encoding}\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.set_read_timeout(Some(60 * SEC)).unwrap();
    let mut head = [0u8; 12];
    let status = match stream.read_exact(&mut head) {
        Ok(()) => String::from_utf8_lossy(&head[9..12]).parse().unwrap_or(0),
        Err(_) => 0,
    };
    (stream, status)
}

/// Section `memory`.
pub async fn memory() {
    let fleet = env_or("FLEET", 2000);
    let target = Tarpit::start().await;
    for (what, gzip, distinct) in [
        ("the overview", false, false),
        ("the overview, gzipped", true, false),
        ("128 different pages", false, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write_fleet(dir.path(), fleet, target.port(), 3600, &[]);
        let canary = start(dir.path(), fleet).await;
        let addr = canary.ui.expect("the status page is on");
        let size = http::get(addr, "/").await.map_or(0, |r| r.body.len());
        let before = canary.rss_mib();
        let held = tokio::task::spawn_blocking(move || {
            (0..128)
                .map(|i| {
                    let path = match distinct {
                        true => format!("/?page={}&n={i}", i % 20 + 1),
                        false => "/".into(),
                    };
                    unread(addr, &path, gzip)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        let rss = canary.rss_mib() - before;
        let queued = tcp_send_queue(addr.port()) as f64 / 1024.0 / 1024.0;
        let ok = held.iter().filter(|(_, status)| *status == 200).count();
        let busy = held.iter().filter(|(_, status)| *status == 503).count();
        println!(
            "{fleet} checks, 128 unread replies of {what} (the overview is {:.0} KiB): RSS {before:.1} MiB + {rss:.1} MiB; kernel send queues {queued:.1} MiB; {ok} answered 200, {busy} 503",
            size as f64 / 1024.0
        );
        canary.kill();
    }
}

/// Section `flood`.
pub async fn flood() {
    let fleet = env_or("FLEET", 2000);
    let interval = env_or("INTERVAL", 10);
    let seconds = env_or("SECONDS", 90);
    let target = Tarpit::start().await;
    let sentinel_target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let sentinel = format!(
        "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{namespace: watch, name: sentinel}}\n\
         spec: {{interval: 1s, timeout: 900ms, http: {{url: '{}', expect: {{maxDuration: 250ms}}}}}}\n",
        sentinel_target.url("/healthz")
    );
    for uncached in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        write_fleet(
            dir.path(),
            fleet,
            target.port(),
            interval,
            std::slice::from_ref(&sentinel),
        );
        let canary = start(dir.path(), fleet + 1).await;
        let what = if uncached { "uncacheable pages" } else { "/" };
        flood_one(&canary, what, uncached, Duration::from_secs(seconds)).await;
        canary.kill();
    }
}

/// Counters of the run: sentinel runs, its Slow runs, its duration sum, scheduler lag sum and
/// count.
async fn counters(canary: &Operator) -> [f64; 5] {
    let sentinel = [("namespace", "watch"), ("name", "sentinel")];
    let slow = [
        ("namespace", "watch"),
        ("name", "sentinel"),
        ("reason", "Slow"),
    ];
    [
        canary
            .metric_sum("canary_check_runs_total", &sentinel)
            .await,
        canary.metric_sum("canary_check_runs_total", &slow).await,
        (canary.metric_sum("canary_check_duration_seconds_sum", &sentinel)).await,
        (canary.metric_sum("canary_scheduler_lag_seconds_sum", &[])).await,
        (canary.metric_sum("canary_scheduler_lag_seconds_count", &[])).await,
    ]
}

async fn flood_one(canary: &Operator, what: &str, uncached: bool, seconds: Duration) {
    let addr = canary.ui.expect("the status page is on");
    let before = counters(canary).await;
    let until = Instant::now() + seconds;
    let clients = (0..16).map(|client| async move {
        let mut ticks = tokio::time::interval(Duration::from_millis(160));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut answers = Vec::new();
        let mut i = 0;
        while Instant::now() < until {
            ticks.tick().await;
            i += 1;
            let path = match uncached {
                true => format!("/?page={}&n={client}-{i}", i % 20 + 1),
                false => "/".into(),
            };
            let start = Instant::now();
            let answer = http::request(addr, &path, &[("Accept-Encoding", "gzip")]).await;
            answers.push((answer.map_or(0, |r| r.status), start.elapsed()));
        }
        answers
    });
    let answers: Vec<(u16, Duration)> = (futures::future::join_all(clients).await)
        .into_iter()
        .flatten()
        .collect();
    let after = counters(canary).await;
    let d: Vec<f64> = before.iter().zip(after).map(|(b, a)| a - b).collect();
    let mut times: Vec<f64> = answers.iter().map(|(_, t)| t.as_secs_f64() * 1e3).collect();
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    println!(
        "flood of {what} for {seconds:?}: {} requests ({:.0}/s), {ok} answered 200; page answered in {:.1} ms mean, p50 {:.1}, p99 {:.1}, max {:.1} ms",
        answers.len(),
        answers.len() as f64 / seconds.as_secs_f64(),
        times.iter().sum::<f64>() / times.len() as f64,
        pct(0.5),
        pct(0.99),
        pct(1.0),
    );
    println!(
        "  sentinel: {} runs, {} Slow, {:.1} ms mean; scheduler lag {:.1} ms mean",
        d[0],
        d[1],
        d[2] / d[0].max(1.0) * 1e3,
        d[3] / d[4].max(1.0) * 1e3
    );
}
