//! The uptime history survives a restart (issue 28): the runner stores its hourly buckets in
//! `status.history` and the next operator resumes them, so the JSON API and the page show the
//! same 24h/7d/30d uptime as before, within the one run whose write a stop may cut.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use canary_test_harness::{
    cluster::{Cluster, http_check},
    http,
    operator::Operator,
    targets::{Reply, TestServer, Transport},
    wait::eventually,
};
use serde_json::{Value, json};

use crate::{SEC, Scenario, operator};

const NS: &str = "history";
/// History stored on every write and a write after every run (2s interval): a stop loses at
/// most the run whose write it cut.
const ARGS: [&str; 4] = [
    "--status-history-interval",
    "1s",
    "--status-heartbeat",
    "1s",
];

/// Runs and successes of one window, as `/api/v1/checks/{ns}/{name}/uptime` says them.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    runs: u64,
    successes: u64,
}

/// The three windows and `historySince`, `historySource` of the check `flaky`.
async fn windows(operator: &Operator) -> Result<([Window; 3], String, String), String> {
    let ui = operator.ui.ok_or("the page is off")?;
    let mut found = [Window {
        runs: 0,
        successes: 0,
    }; 3];
    let mut since = (String::new(), String::new());
    for (slot, span) in found.iter_mut().zip(["24h", "7d", "30d"]) {
        let path = format!("/api/v1/checks/{NS}/flaky/uptime?window={span}");
        let reply = http::get(ui, &path).await?;
        let value: Value = serde_json::from_str(&reply.body).map_err(|e| e.to_string())?;
        if reply.status != 200 {
            return Err(format!("{path}: {} {}", reply.status, reply.body));
        }
        let count = |field: &str| value[field].as_u64().ok_or(format!("{field}: {value}"));
        *slot = Window {
            runs: count("runs")?,
            successes: count("successes")?,
        };
        let text = |field: &str| value[field].as_str().unwrap_or_default().to_string();
        since = (text("historySince"), text("historySource"));
    }
    Ok((found, since.0, since.1))
}

/// A LEB128 varint, as `status.history` stores its numbers.
fn varint(bytes: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        bytes.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

/// A `status.history` written as docs/status-page.md describes it (not with Canary's code):
/// since `since`, and full buckets of (hour, runs, successes), latency 100 ms.
fn stored(since: i64, buckets: &[(u64, u64, u64)]) -> String {
    let mut bytes = Vec::new();
    varint(&mut bytes, since as u64);
    let (mut previous, mut latency) = (None, 0i64);
    for &(hour, runs, successes) in buckets {
        let gap = previous.map_or(hour, |p: u64| hour - p - 1);
        varint(&mut bytes, gap << 2);
        for value in [runs, runs - successes, 0] {
            varint(&mut bytes, value);
        }
        let delta = 100 - latency;
        varint(&mut bytes, ((delta << 1) ^ (delta >> 63)) as u64);
        (previous, latency) = (Some(hour), 100);
    }
    format!("1.{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A server failing every third request.
async fn flaky_server() -> TestServer {
    let count = Arc::new(AtomicUsize::new(0));
    TestServer::start(Transport::Plain, move |_| {
        match count.fetch_add(1, Ordering::SeqCst) % 3 {
            2 => Reply::status(503, "down"),
            _ => Reply::ok("ok"),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uptime_windows_survive_a_restart_from_status_history() {
    let server = flaky_server().await;
    let cluster = Cluster::start().await;
    cluster.namespace(NS).await;
    let check = http_check(
        NS,
        "flaky",
        &server.url("/"),
        json!({"interval": "2s", "timeout": "1s"}),
    );
    cluster.kubectl.apply(&[check]).await;
    // History from before: 10 days ago (30d only) and 2 days ago (7d and 30d).
    let now = jiff::Timestamp::now().as_second();
    let hour = (now / 3600) as u64;
    let since = now - 12 * 86_400;
    let seeded = stored(since, &[(hour - 240, 100, 40), (hour - 48, 50, 50)]);
    let patch = json!({"status": {"history": seeded}}).to_string();
    let kubectl = &cluster.kubectl;
    (kubectl.ok(&[
        "patch",
        "healthcheck",
        "flaky",
        "-n",
        NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]))
    .await;
    let s = Scenario::on_cluster(cluster, NS, &ARGS, &[]).await;
    let first = &s.operator;
    let (seen, since_text, source) = eventually(40 * SEC, "8 live runs", SEC, async || {
        let (found, _) = consistent(first).await;
        (found.0[0].runs >= 8)
            .then_some(found.clone())
            .ok_or(format!("{found:?}"))
    })
    .await;
    assert_eq!(
        since_text,
        jiff::Timestamp::from_second(since).unwrap().to_string()
    );
    assert_eq!(source, "status");
    let live = seen[0];
    assert_eq!(seen[1].runs, live.runs + 50, "7d: {seen:?}");
    assert_eq!(seen[2].runs, live.runs + 150, "30d: {seen:?}");

    // The windows it shows last, then SIGTERM at once and a new operator.
    let last = consistent(first).await.0.0;
    let (exit, _) = s.operator.terminate().await;
    assert!(exit.success(), "{}", s.operator.tail(20));
    let second = operator(&s.cluster).args(&ARGS).process().await;
    let resumed = consistent(&second).await;
    let ((after, since_after, source_after), ran) = resumed;
    assert_eq!(since_after, since_text, "historySince kept");
    assert_eq!(source_after, "status");
    for (span, (b, a)) in ["24h", "7d", "30d"].iter().zip(last.iter().zip(after)) {
        // Within one run: the run a stop cut before its write, or one between the last read
        // and the stop.
        let lost = (b.runs + ran) as i64 - a.runs as i64;
        assert!(
            (-1..=1).contains(&lost),
            "{span}: {b:?} before, {a:?} after, {ran} runs since the restart"
        );
        assert!(
            a.successes + 1 >= b.successes && a.successes <= b.successes + ran + 1,
            "{span}: {b:?} before, {a:?} after, {ran} runs since the restart"
        );
    }
    let page = http::get(second.ui.unwrap(), &format!("/checks/{NS}/flaky")).await;
    let page = page.unwrap().body;
    assert!(
        page.contains("restarts and shard moves resume it"),
        "{page}"
    );
}

/// The windows of `operator` with the runs it made itself, read on both sides of the API read
/// (repeated when a run fell between).
async fn consistent(operator: &Operator) -> (([Window; 3], String, String), u64) {
    eventually(
        20 * SEC,
        "windows and runs read together",
        SEC,
        async || {
            let ran = operator.runs(NS, "flaky").await as u64;
            let found = windows(operator).await?;
            ((operator.runs(NS, "flaky").await as u64) == ran)
                .then_some((found, ran))
                .ok_or("a run between the reads".to_string())
        },
    )
    .await
}

/// A replica of a two-member shard ring with the history flags.
fn replica(cluster: &Cluster, name: &str) -> canary_test_harness::operator::Launch {
    operator(cluster)
        .args(&[
            "--sharding",
            "shards",
            "--leader-election-lease-duration",
            "6s",
        ])
        .args(&["--leader-election-lease-name", "history-ring"])
        .args(&ARGS)
        .env("POD_NAME", name)
}

/// The replica `status.probedBy` names, once two reads 3s apart agree and it serves the check.
async fn settled_owner(cluster: &Cluster, replicas: &[(&str, &Operator); 2]) -> usize {
    let probed_by = async || {
        let check = cluster
            .kubectl
            .get_json(&["healthcheck", "flaky", "-n", NS])
            .await;
        check["status"]["probedBy"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    eventually(40 * SEC, "a settled owner", SEC, async || {
        let first = probed_by().await;
        tokio::time::sleep(3 * SEC).await;
        let owner = replicas.iter().position(|(name, _)| *name == first);
        match owner {
            Some(i) if probed_by().await == first && windows(replicas[i].1).await.is_ok() => Ok(i),
            _ => Err(format!("probedBy {first:?}")),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uptime_windows_survive_a_shard_move() {
    let server = flaky_server().await;
    let cluster = Cluster::start().await;
    cluster.namespace(NS).await;
    let check = http_check(
        NS,
        "flaky",
        &server.url("/"),
        json!({"interval": "2s", "timeout": "1s"}),
    );
    cluster.kubectl.apply(&[check]).await;
    let r1 = replica(&cluster, "r1").process().await;
    eventually(40 * SEC, "6 live runs on r1", SEC, async || {
        let (found, _) = consistent(&r1).await;
        (found.0[0].runs >= 6)
            .then_some(())
            .ok_or(format!("{found:?}"))
    })
    .await;
    let r2 = replica(&cluster, "r2").process().await;
    r2.wait_ready(20 * SEC).await;
    let replicas = [("r1", &r1), ("r2", &r2)];
    let owner = settled_owner(&cluster, &replicas).await;
    let (from, to) = (replicas[owner].1, replicas[1 - owner].1);
    // The owner's last windows, then SIGTERM: it hands the check to the other replica.
    let ((last, since, _), _) = consistent(from).await;
    let (exit, _) = from.terminate().await;
    assert!(exit.success(), "{}", from.tail(20));
    let ((after, since_after, source), ran) = consistent(to).await;
    assert_eq!((since_after, source.as_str()), (since, "status"));
    for (span, (b, a)) in ["24h", "7d", "30d"].iter().zip(last.iter().zip(after)) {
        let lost = (b.runs + ran) as i64 - a.runs as i64;
        assert!(
            (-1..=1).contains(&lost) && a.successes + 1 >= b.successes,
            "{span}: {b:?} on the old owner, {a:?} on the new one, {ran} runs since the move"
        );
    }
}
