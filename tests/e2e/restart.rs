//! A restarted operator resumes from status: it exits 0 promptly on SIGTERM, the next one keeps
//! counting where status left off, records no new transitions and spreads its first runs.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use canary_test_harness::{
    cluster::{describe, http_check, occurrences, ready, status_int},
    operator::Operator,
    targets::{Recorded, Reply, Switchable, TestServer, Transport},
    wait::eventually,
    watch::Seen,
};
use serde_json::{Value, json};

use crate::{SEC, Scenario, max_in_window, operator};

const NS: &str = "ops";

/// SIGTERM: the operator exits 0 within 5s.
async fn stop(s: &Scenario) {
    let (exit, took) = s.operator.terminate().await;
    assert!(
        exit.success(),
        "exit after SIGTERM: {exit:?}; logs:\n{}",
        s.operator.tail(20)
    );
    assert!(took < 5 * SEC, "shutdown took {took:?}");
}

/// Stops the operator (see [`stop`]) and starts a new one.
async fn restart(s: &Scenario) -> Operator {
    stop(s).await;
    operator(&s.cluster).process().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_keeps_counting_failures_from_status() {
    let counting = TestServer::start(Transport::Plain, |_| Reply::status(503, "down")).await;
    // Counted up to its threshold in status, one write per run: shows counts surviving a
    // restart, and the threshold reached across it.
    let check = http_check(
        NS,
        "counting",
        &counting.url("/"),
        json!({"failureThreshold": 6}),
    );
    let s = Scenario::start(NS, &[], &[check]).await;
    let failures = |seen: &Seen| {
        seen.get("counting")
            .map_or(0, |c| status_int(c, "consecutiveFailures"))
    };
    s.watch
        .until(20 * SEC, "counting at 2 failures", |seen| {
            (failures(seen) >= 2)
                .then_some(())
                .ok_or(format!("{:?}", seen.get("counting").map(describe)))
        })
        .await;
    stop(&s).await;
    let counted = s.watch.with(failures);
    assert!(counted < 6, "restarted before the threshold: {counted}");
    let second = operator(&s.cluster).process().await;
    let resumed = Instant::now();
    // The threshold of 6 is reached after 6 failures in all, not 6 more.
    let check = s
        .watch
        .ready_as("counting", "False", "UnexpectedStatus")
        .await;
    assert_eq!(status_int(&check, "consecutiveFailures"), 6);
    let runs_after_restart = second.runs(NS, "counting").await;
    assert!(
        runs_after_restart <= (6 - counted) as f64 + 1.0,
        "the threshold came {runs_after_restart} runs after the restart, {counted} had been counted ({:?})",
        resumed.elapsed()
    );
    let values: Vec<i64> = s.watch.with(|seen| {
        let versions = seen.versions("counting").filter(|c| !c["status"].is_null());
        versions
            .map(|c| status_int(c, "consecutiveFailures"))
            .collect()
    });
    assert!(
        values.windows(2).all(|w| w[1] >= w[0]),
        "counting was reset: {values:?}"
    );
    s.cluster
        .wait_events(NS, "counting", &[("Warning", "UnexpectedStatus", 1)])
        .await;
}

/// The Ready condition's lastTransitionTime of `name`.
fn transition(seen: &Seen, name: &str) -> Option<String> {
    let check = seen.get(name)?;
    check["status"]["conditions"][0]["lastTransitionTime"]
        .as_str()
        .map(str::to_string)
}

/// Ready statuses `name` went through once it was known.
fn readies(seen: &Seen, name: &str) -> Vec<String> {
    let statuses = seen.versions(name).filter_map(|c| ready(c).map(|r| r.0));
    statuses.skip_while(|r| r == "Unknown").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_operator_records_no_new_transitions() {
    let failing = Switchable::start(500).await;
    let passing = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let checks = [
        http_check(NS, "failing", &failing.url("/"), json!({})),
        http_check(NS, "passing", &passing.url("/"), json!({})),
    ];
    let s = Scenario::start(NS, &[], &checks).await;
    s.watch
        .ready_as("failing", "False", "UnexpectedStatus")
        .await;
    s.watch.ready_as("passing", "True", "Succeeded").await;
    let once = [("Warning", "UnexpectedStatus", 1)];
    s.cluster.wait_events(NS, "failing", &once).await;
    let failing_since = s.watch.with(|seen| transition(seen, "failing"));

    let second = restart(&s).await;
    second.wait_runs(NS, "failing", Some("failure"), 2.0).await;
    second.wait_runs(NS, "passing", Some("success"), 2.0).await;
    for name in ["failing", "passing"] {
        let readies = s.watch.with(|seen| readies(seen, name));
        assert!(
            readies.windows(2).all(|w| w[0] == w[1]),
            "{name} Ready flapped: {readies:?}"
        );
    }
    let failing_now = s.watch.with(|seen| transition(seen, "failing"));
    assert_eq!(failing_now, failing_since, "lastTransitionTime kept");
    s.cluster.wait_events(NS, "failing", &once).await;
    assert!(occurrences(&s.cluster.events(NS).await, "passing").is_empty());
    assert!(second.running(), "operator alive");
}

/// 20 checks at a 4s interval on one server that records when each path was first requested
/// after `since`.
struct Spread {
    server: TestServer,
    arrivals: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Spread {
    async fn start() -> Self {
        let arrivals: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
        let seen = arrivals.clone();
        let server = TestServer::start(Transport::Plain, move |r: &Recorded| {
            seen.lock().unwrap().push((r.path.clone(), Instant::now()));
            Reply::ok("ok")
        })
        .await;
        Self { server, arrivals }
    }

    fn checks(&self) -> Vec<Value> {
        let spec = json!({"interval": "4s", "timeout": "1s"});
        (0..20)
            .map(|i| {
                http_check(
                    NS,
                    &format!("spread-{i}"),
                    &self.server.url(&format!("/{i}")),
                    spec.clone(),
                )
            })
            .collect()
    }

    /// When each path was first requested at or after `since`, once all 20 were.
    fn firsts(&self, since: Instant) -> Result<Vec<Instant>, String> {
        let mut firsts: Vec<(String, Instant)> = Vec::new();
        for (path, at) in self
            .arrivals
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, at)| *at >= since)
        {
            if !firsts.iter().any(|(p, _)| p == path) {
                firsts.push((path.clone(), *at));
            }
        }
        let mut times: Vec<Instant> = firsts.iter().map(|(_, t)| *t).collect();
        times.sort();
        (times.len() == 20)
            .then_some(times)
            .ok_or(format!("{} of 20", firsts.len()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_runs_after_a_restart_are_spread_over_the_interval() {
    let spread = Spread::start().await;
    let s = Scenario::start(NS, &[], &spread.checks()).await;
    for i in 0..20 {
        s.watch
            .ready_as(&format!("spread-{i}"), "True", "Succeeded")
            .await;
    }
    let _second = restart(&s).await;
    let resumed = Instant::now();
    let what = "a first run of each spread check";
    let every = Duration::from_millis(200);
    let times = eventually(15 * SEC, what, every, async || spread.firsts(resumed)).await;
    let range = times[19] - times[0];
    let bunched = max_in_window(&times, Duration::from_millis(500));
    assert!(
        range >= Duration::from_millis(1500) && bunched <= 10,
        "first runs after the restart span {range:?}, {bunched} of 20 within 0.5s"
    );
}
