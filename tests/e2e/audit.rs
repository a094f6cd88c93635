//! No check is ever forgotten, with the real binary: a 410 on one namespace's watch stops none
//! of 200 checks, and the self-audit recovers a check deliberately left without a runner
//! (`CANARY_FAULT_INJECT_LOSE_RUNNER`) within two audit periods, or fails `/healthz` naming it
//! when the recovery cannot take; standalone audits its files the same way.

use std::{collections::BTreeMap, time::Instant};

use canary_test_harness::{
    cluster::{Cluster, healthcheck},
    operator::{Launch, Operator},
    targets::{Reply, TestServer, Transport},
    wait::eventually,
};
use serde_json::{Value, json};

use crate::{CANARY, SEC, operator};

/// A TCP check of `port` every `interval`.
fn tcp_check(namespace: &str, name: &str, port: u16, interval: &str) -> Value {
    let spec = json!({"interval": interval, "timeout": "500ms",
        "tcp": {"host": "127.0.0.1", "port": port}});
    healthcheck(namespace, name, spec)
}

/// Runs of every check of `names` so far.
async fn runs(operator: &Operator, names: &[(String, String)]) -> BTreeMap<String, f64> {
    let mut runs = BTreeMap::new();
    for (namespace, name) in names {
        let value = operator.runs(namespace, name).await;
        runs.insert(format!("{namespace}/{name}"), value);
    }
    runs
}

/// Waits until every check of `names` ran at least twice more than in `before`.
async fn all_advance(operator: &Operator, names: &[(String, String)], what: &str) {
    let before = runs(operator, names).await;
    eventually(30 * SEC, what, SEC / 2, async || {
        let now = runs(operator, names).await;
        let behind: Vec<&String> = (now.iter())
            .filter(|(check, runs)| **runs < before[*check] + 2.0)
            .map(|(check, _)| check)
            .collect();
        match behind.len() {
            0 => Ok(()),
            n => Err(format!(
                "{n} checks not advancing, e.g. {:?}",
                &behind[..n.min(5)]
            )),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_of_one_namespace_stops_none_of_200_checks_and_a_lost_runner_is_recovered() {
    let cluster = Cluster::alone().await;
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let port = target.port();
    let mut names = Vec::new();
    let mut objects = Vec::new();
    for namespace in ["a", "b"] {
        cluster.namespace(namespace).await;
        for i in 0..100 {
            objects.push(tcp_check(namespace, &format!("c{i}"), port, "2s"));
            names.push((namespace.to_string(), format!("c{i}")));
        }
    }
    cluster.kubectl.apply(&objects).await;
    let started = Instant::now();
    // CANARY_BINARY runs the scenario against another build (the release binary, for the note).
    let binary = std::env::var("CANARY_BINARY").unwrap_or_else(|_| CANARY.to_string());
    let canary = Launch::operator(&binary, cluster.operator_kubeconfig())
        .args(&["--namespaces", "a,b", "--audit-interval", "2s"])
        .env("CANARY_FAULT_INJECT_LOSE_RUNNER", "a/c7")
        .process()
        .await;
    canary.wait_ready(20 * SEC).await;
    // The first audit comes one period after the start; the lost runner is rebuilt then.
    canary.wait_runs("a", "c7", None, 1.0).await;
    let recovered_after = started.elapsed();
    let cause = [("cause", "missing_runner")];
    let recovered = canary
        .metric_sum("canary_checks_recovered_total", &cause)
        .await;
    assert_eq!(recovered, 1.0, "one recovery: {}", canary.tail(20));
    assert!(
        canary.logged("self-audit"),
        "an ERROR names it: {}",
        canary.tail(20)
    );
    all_advance(&canary, &names, "all 200 checks before the fault").await;

    cluster.server.expire_watches("/namespaces/a/healthchecks");
    all_advance(&canary, &names, "all 200 checks after a's relist").await;
    assert_eq!(
        canary.health_code("/healthz").await,
        Some(200),
        "{}",
        canary.tail(20)
    );
    let unscheduled = canary.metric_sum("canary_checks_unscheduled", &[]).await;
    let expected = canary.metric_sum("canary_checks_expected", &[]).await;
    assert_eq!((unscheduled, expected), (0.0, 200.0));
    let recovered = canary
        .metric_sum("canary_checks_recovered_total", &[])
        .await;
    assert_eq!(
        recovered,
        1.0,
        "the relist lost nothing: {}",
        canary.tail(20)
    );
    println!("a/c7 recovered {recovered_after:?} after the operator started (audit every 2s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_lost_at_every_start_fails_healthz_naming_it() {
    let cluster = Cluster::start().await;
    cluster.namespace("a").await;
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let port = target.port();
    let objects: Vec<Value> = (0..3)
        .map(|i| tcp_check("a", &format!("c{i}"), port, "1s"))
        .collect();
    cluster.kubectl.apply(&objects).await;
    let canary = (operator(&cluster))
        .args(&["--audit-interval", "1s"])
        .env("CANARY_FAULT_INJECT_LOSE_RUNNER", "a/c1:always")
        .process()
        .await;
    eventually(20 * SEC, "/healthz 503 naming a/c1", SEC / 4, async || {
        let answer = canary_test_harness::http::get(canary.health, "/healthz").await?;
        match answer.status == 503 && answer.body.contains("a/c1") {
            true => Ok(()),
            false => Err(format!("{} {}", answer.status, answer.body)),
        }
    })
    .await;
    canary.wait_runs("a", "c0", None, 2.0).await;
    assert_eq!(canary.runs("a", "c1").await, 0.0, "a/c1 never ran");
    let unscheduled = canary.metric_sum("canary_checks_unscheduled", &[]).await;
    assert_eq!(unscheduled, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_audits_its_files_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let port = target.port();
    let documents: Vec<String> = (0..3)
        .map(|i| {
            serde_json::to_string(&tcp_check("default", &format!("f{i}"), port, "1s")).unwrap()
        })
        .collect();
    std::fs::write(dir.path().join("checks.yaml"), documents.join("\n---\n")).unwrap();
    let canary = Launch::standalone(CANARY, dir.path())
        .args(&["--audit-interval", "1s"])
        .env("CANARY_FAULT_INJECT_LOSE_RUNNER", "default/f2")
        .process()
        .await;
    canary.wait_runs("default", "f2", None, 1.0).await;
    let cause = [("cause", "missing_runner")];
    let recovered = canary
        .metric_sum("canary_checks_recovered_total", &cause)
        .await;
    assert_eq!(recovered, 1.0, "{}", canary.tail(20));
    assert_eq!(canary.metric_sum("canary_checks_expected", &[]).await, 3.0);
    assert_eq!(canary.health_code("/healthz").await, Some(200));
}
