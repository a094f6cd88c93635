//! Feedback in seconds: a new check's verdict is there for `kubectl wait` within seconds
//! whatever its interval (`--for=condition=Probed` on any verdict, `Ready` on a pass), an edit shows `Reconciling` with the new generation at once, and the
//! `canary.dev/run-now` annotation runs a check on demand.

use std::time::{Duration, Instant};

use canary_test_harness::{
    cluster::{http_check, ready},
    targets::{Reply, TestServer, Transport},
    wait::eventually,
};
use serde_json::json;

use crate::{SEC, Scenario};

const NS: &str = "feedback";

async fn target() -> TestServer {
    TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await
}

/// A check at the default 60s interval.
fn slow_check(target: &TestServer, path: &str) -> serde_json::Value {
    let spec = json!({"interval": "60s", "timeout": "5s"});
    http_check(NS, "api", &target.url(path), spec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_wait_returns_within_seconds_for_a_new_check() {
    let target = target().await;
    let s = Scenario::start(NS, &[], &[]).await;
    let applied = Instant::now();
    s.cluster.kubectl.apply(&[slow_check(&target, "/")]).await;
    let wait = [
        "wait",
        "--for=condition=Ready",
        "healthchecks.canary.dev/api",
        "-n",
        NS,
        "--timeout=30s",
    ];
    s.cluster.kubectl.ok(&wait).await;
    let took = applied.elapsed();
    println!("applied to Ready in {took:?} (interval 60s)");
    assert!(took < 10 * SEC, "kubectl wait took {took:?}");
}

/// The README's wait for any verdict: a new check whose target fails from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_wait_for_probed_returns_within_seconds_for_a_new_failing_check() {
    let target = TestServer::start(Transport::Plain, |_| Reply::status(503, "down")).await;
    let s = Scenario::start(NS, &[], &[]).await;
    let applied = Instant::now();
    s.cluster.kubectl.apply(&[slow_check(&target, "/")]).await;
    let wait = [
        "wait",
        "--for=condition=Probed",
        "chc/api",
        "-n",
        NS,
        "--timeout=30s",
    ];
    s.cluster.kubectl.ok(&wait).await;
    let took = applied.elapsed();
    println!("applied to Probed in {took:?} (interval 60s, failing)");
    assert!(took < 10 * SEC, "kubectl wait took {took:?}");
    let check = s.cluster.check(NS, "api").await;
    assert_eq!(
        ready(&check).map(|r| (r.0, r.1)),
        Some(("False".into(), "UnexpectedStatus".into()))
    );
    let conditions = check["status"]["conditions"].as_array().unwrap();
    let probed = conditions.iter().find(|c| c["type"] == "Probed").unwrap();
    assert_eq!(probed["status"], "True");
    assert_eq!(
        probed["observedGeneration"],
        check["metadata"]["generation"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_reports_reconciling_with_the_new_generation_then_its_verdict() {
    let target = target().await;
    let s = Scenario::start(NS, &[], &[slow_check(&target, "/v1")]).await;
    s.watch.ready_as("api", "True", "Succeeded").await;
    s.cluster.kubectl.apply(&[slow_check(&target, "/v2")]).await;
    let reconciling = s
        .watch
        .ready_within(10 * SEC, "api", "Unknown", "Reconciling")
        .await;
    assert_eq!(reconciling["status"]["observedGeneration"], 2);
    let ready = s
        .watch
        .ready_within(10 * SEC, "api", "True", "Succeeded")
        .await;
    assert_eq!(ready["status"]["observedGeneration"], 2);
    assert!(
        target.requests().iter().any(|r| r.path == "/v2"),
        "the new spec ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_now_annotation_runs_a_check_at_once() {
    let target = target().await;
    let s = Scenario::start(NS, &[], &[slow_check(&target, "/")]).await;
    s.watch.ready_as("api", "True", "Succeeded").await;
    let before = target.requests().len();
    let annotate = [
        "annotate",
        "healthchecks.canary.dev/api",
        "-n",
        NS,
        "canary.dev/run-now=1",
        "--overwrite",
    ];
    let asked = Instant::now();
    s.cluster.kubectl.ok(&annotate).await;
    eventually(
        10 * SEC,
        "a run on demand",
        Duration::from_millis(50),
        async || match target.requests().len() > before {
            true => Ok(()),
            false => Err(format!("{} requests", target.requests().len())),
        },
    )
    .await;
    assert!(
        asked.elapsed() < 5 * SEC,
        "ran {:?} after the annotation",
        asked.elapsed()
    );
    let check = s.cluster.check(NS, "api").await;
    assert_eq!(ready(&check).map(|r| r.0), Some("True".to_string()));
}
