//! Heartbeat checks in `canary standalone` (`--secrets-dir`, state in memory), over loopback:
//! the listener's answers (tokens, identical 401s, the body cap, the per-check rate) and the
//! verdicts (pinged: Ready within 1 s; silent for period + grace: HeartbeatMissed; /fail:
//! HeartbeatFailed and no HeartbeatMissed for that run).

use std::{
    net::SocketAddr,
    path::Path,
    time::{Duration, Instant},
};

use canary_test_harness::{
    operator::{Launch, Operator},
    wait::eventually,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");
const TOKEN: &str = "s3cr3t-token-0123456789abcdef";
const POLL: Duration = Duration::from_millis(50);

/// One answer: status, the head without its Date line, the body.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// `method path` with an optional bearer token and body, over a fresh connection.
async fn ping(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: canary\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // A server that answers before reading the whole body may close early: that is fine.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw)).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let head = (head.lines())
        .filter(|line| !line.to_ascii_lowercase().starts_with("date:"))
        .collect::<Vec<_>>()
        .join("\n");
    Answer {
        status,
        head,
        body: body.to_string(),
    }
}

fn check_yaml(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: canary.dev/v1alpha1\nkind: HealthCheck\nmetadata: {{name: {name}}}\n\
         spec:\n  heartbeat:\n    tokenSecretRef: {{name: ping, key: token}}\n    period: 10s\n    grace: 5s\n{extra}"
    )
}

/// `canary standalone` with heartbeat checks `names`, the token in `--secrets-dir`.
async fn standalone(dir: &Path, names: &[&str]) -> (Operator, SocketAddr) {
    let (checks, secrets) = (dir.join("checks"), dir.join("secrets"));
    std::fs::create_dir_all(secrets.join("ping")).unwrap();
    std::fs::create_dir_all(&checks).unwrap();
    std::fs::write(secrets.join("ping/token"), format!("{TOKEN}\n")).unwrap();
    for name in names {
        std::fs::write(checks.join(format!("{name}.yaml")), check_yaml(name, "")).unwrap();
    }
    let secrets = secrets.display().to_string();
    let args = [
        "--secrets-dir",
        &secrets,
        "--heartbeat-bind-address",
        "127.0.0.1:0",
    ];
    let canary = Launch::standalone(CANARY, &checks)
        .args(&args)
        .process()
        .await;
    canary.wait_ready(Duration::from_secs(10)).await;
    let addr = canary
        .heartbeat
        .expect("the heartbeat listener's address is logged");
    (canary, addr)
}

async fn runs(canary: &Operator, name: &str, reason: &str) -> f64 {
    let labels = [("namespace", "default"), ("name", name), ("reason", reason)];
    canary
        .try_metric("canary_check_runs_total", &labels)
        .await
        .unwrap_or(0.0)
}

async fn success(canary: &Operator, name: &str) -> Result<f64, String> {
    let labels = [("namespace", "default"), ("name", name)];
    canary.try_metric("canary_check_success", &labels).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_authenticates_caps_bodies_and_rate_limits_per_check() {
    let dir = tempfile::tempdir().unwrap();
    let (canary, addr) = standalone(dir.path(), &["tokens", "caps", "rated"]).await;
    let path = "/api/v1/ping/default/tokens";

    let missing = ping(addr, "GET", path, None, b"").await;
    let started = Instant::now();
    let wrong = ping(addr, "GET", path, Some("wrong-token-0123456789abcdef"), b"").await;
    let wrong_took = started.elapsed();
    let started = Instant::now();
    let unknown = ping(addr, "GET", "/api/v1/ping/default/nosuch", Some(TOKEN), b"").await;
    let unknown_took = started.elapsed();
    assert_eq!(missing.status, 401, "{missing:?}");
    assert_eq!(
        wrong, unknown,
        "an unknown check and a wrong token answer alike"
    );
    assert_eq!(wrong, missing);
    for took in [wrong_took, unknown_took] {
        assert!(
            took >= Duration::from_millis(100),
            "a 401 comes after its floor: {took:?}"
        );
    }
    let right = ping(addr, "POST", path, Some(TOKEN), b"backup done").await;
    assert_eq!((right.status, right.body.trim()), (200, "OK"), "{right:?}");

    let caps = "/api/v1/ping/default/caps/0";
    let over = ping(addr, "POST", caps, Some(TOKEN), &vec![b'x'; 10 * 1024 + 1]).await;
    assert_eq!(over.status, 413, "{over:?}");
    let at_cap = ping(addr, "POST", caps, Some(TOKEN), &vec![b'x'; 10 * 1024]).await;
    assert_eq!(at_cap.status, 200, "{at_cap:?}");
    let bad = ping(
        addr,
        "GET",
        "/api/v1/ping/default/caps/256",
        Some(TOKEN),
        b"",
    )
    .await;
    assert_eq!(bad.status, 404);

    let rated = "/api/v1/ping/default/rated/start";
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(ping(addr, "GET", rated, Some(TOKEN), b"").await.status);
    }
    assert_eq!(&statuses[..5], [200; 5], "a burst of five: {statuses:?}");
    assert!(
        statuses[5..].contains(&429),
        "then one a second: {statuses:?}"
    );
    let rejected = |reason: &'static str| {
        let canary = &canary;
        async move {
            let labels = [("reason", reason)];
            canary
                .try_metric("canary_heartbeat_rejected_total", &labels)
                .await
                .unwrap_or(0.0)
        }
    };
    assert!(rejected("unauthorized").await >= 3.0);
    assert!(rejected("too_large").await >= 1.0);
    assert!(rejected("rate_limited").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinged_is_ready_silence_is_missed_and_a_failure_is_not_followed_by_missed() {
    let dir = tempfile::tempdir().unwrap();
    let (canary, addr) = standalone(dir.path(), &["backup"]).await;
    let path = "/api/v1/ping/default/backup";

    let pinged = Instant::now();
    assert_eq!(ping(addr, "POST", path, Some(TOKEN), b"").await.status, 200);
    eventually(
        Duration::from_secs(1),
        "Ready after a ping",
        POLL,
        async || match success(&canary, "backup").await {
            Ok(1.0) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    assert!(pinged.elapsed() < Duration::from_secs(1));

    // No ping for period (10s) + grace (5s): missed (judged 2s later, see DEFAULT_SETTLE).
    eventually(
        Duration::from_secs(25),
        "HeartbeatMissed",
        POLL,
        async || match runs(&canary, "backup", "HeartbeatMissed").await {
            n if n >= 1.0 => Ok(()),
            n => Err(format!("{n} missed after {:?}", pinged.elapsed())),
        },
    )
    .await;
    assert!(
        pinged.elapsed() >= Duration::from_secs(15),
        "not before its deadline"
    );
    assert_eq!(success(&canary, "backup").await, Ok(0.0));

    let failed = Instant::now();
    assert_eq!(
        ping(addr, "POST", &format!("{path}/fail"), Some(TOKEN), b"")
            .await
            .status,
        200
    );
    eventually(
        Duration::from_secs(1),
        "HeartbeatFailed",
        POLL,
        async || match runs(&canary, "backup", "HeartbeatFailed").await {
            1.0 => Ok(()),
            n => Err(format!("{n}")),
        },
    )
    .await;
    let missed = runs(&canary, "backup", "HeartbeatMissed").await;
    // The failure is a run: the next deadline is 15 s after it, so nothing is missed before.
    // An absence can only be watched for: until 13 s after the failure.
    while failed.elapsed() < Duration::from_secs(13) {
        assert_eq!(runs(&canary, "backup", "HeartbeatMissed").await, missed);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_ping_reports_a_command_and_exits_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let (canary, addr) = standalone(dir.path(), &["job"]).await;
    let token_file = dir.path().join("secrets/ping/token");
    let url = format!("http://{addr}/api/v1/ping/default/job");
    let ping_run = async |script: &str| {
        let output = tokio::process::Command::new(CANARY)
            .args(["ping", "--url", &url, "--rid", "run-1", "--token-file"])
            .arg(&token_file)
            .args(["--", "sh", "-c", script])
            .output()
            .await
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let (code, stdout) = ping_run("echo backing up; exit 3").await;
    assert_eq!(code, Some(3), "the command's exit code");
    assert_eq!(stdout, "backing up\n", "its output passes through");
    eventually(
        Duration::from_secs(2),
        "HeartbeatFailed",
        POLL,
        async || match runs(&canary, "job", "HeartbeatFailed").await {
            1.0 => Ok(()),
            n => Err(format!("{n}")),
        },
    )
    .await;
    let started = [("result", "start")];
    let starts = canary
        .try_metric("canary_heartbeat_pings_total", &started)
        .await;
    assert_eq!(starts, Ok(1.0), "/start was sent first");
    let (code, _) = ping_run("true").await;
    assert_eq!(code, Some(0));
    // A reporting problem never keeps the job from running.
    let unreadable = tokio::process::Command::new(CANARY)
        .args([
            "ping",
            "--url",
            &url,
            "--token-file",
            "/nonexistent",
            "--",
            "sh",
            "-c",
            "exit 4",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(unreadable.status.code(), Some(4));
    eventually(
        Duration::from_secs(2),
        "Succeeded",
        POLL,
        async || match success(&canary, "job").await {
            Ok(1.0) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
}

/// Opens `count` connections to `addr`, each sending `request` and then nothing more.
fn open_slow(addr: SocketAddr, count: usize, request: &[u8]) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    (0..count)
        .filter_map(|_| {
            let mut stream =
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
            stream.write_all(request).ok()?;
            Some(stream)
        })
        .collect()
}

/// The admin endpoints' abuse test, on the heartbeat listener: 1,000 connections that send
/// headers slowly and 100 that send a body slowly (to another check: a client with a check's
/// token may spend that check's rate) do not keep a job's ping from being answered within a
/// second, nor grow the process by 32 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_are_answered_within_a_second_under_slow_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (canary, addr) = standalone(dir.path(), &["busy", "other"]).await;
    let before = canary.rss_mib();
    let abusers = tokio::task::spawn_blocking(move || {
        let headers = b"POST /api/v1/ping/default/busy HTTP/1.1\r\nHost: canary\r\n";
        let slow_headers = open_slow(addr, 1000, headers);
        let body = format!(
            "POST /api/v1/ping/default/other HTTP/1.1\r\nHost: canary\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 10240\r\n\r\nx"
        );
        let slow_bodies = open_slow(addr, 100, body.as_bytes());
        (slow_headers, slow_bodies)
    })
    .await
    .unwrap();
    assert!(abusers.0.len() >= 900, "abusers connected");
    let mut worst = Duration::ZERO;
    for _ in 0..3 {
        let started = Instant::now();
        let answer = ping(addr, "GET", "/api/v1/ping/default/busy", Some(TOKEN), b"").await;
        worst = worst.max(started.elapsed());
        assert_eq!(answer.status, 200, "{answer:?}");
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let growth = canary.rss_mib() - before;
    println!("under abuse: a ping took {worst:?} at worst; RSS +{growth:.1} MiB");
    assert!(worst < Duration::from_secs(1), "a ping took {worst:?}");
    assert!(growth < 32.0, "RSS grew {growth:.1} MiB");
    drop(abusers);
}
