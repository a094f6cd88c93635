//! Bad HealthChecks: rejected by the API server naming the field, and when one slips past
//! validation, reported as InvalidSpec without stopping the others.

use std::time::Duration;

use canary_test_harness::{
    cluster::{Cluster, healthcheck, http_check, ready},
    targets::{Reply, TestServer, Transport},
    wait::eventually,
};
use serde_json::{Value, json};

use crate::{SEC, Scenario};

/// Specs the API server must reject, with what its message must contain.
fn invalid_specs() -> Vec<(Value, Vec<&'static str>)> {
    let url = "http://127.0.0.1/";
    let both_values = json!({"name": "X", "value": "a",
        "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}});
    vec![
        (
            json!({"interval": "soon", "http": {"url": url}}),
            vec!["spec.interval"],
        ),
        (
            json!({"http": {"method": "GET"}}),
            vec!["spec.http.url", "Required value"],
        ),
        (
            json!({"http": {"url": url}, "tcp": {"host": "db", "port": 5432}}),
            vec![
                "exactly one of spec.http, spec.tcp, spec.tls, spec.dns, spec.grpc, spec.heartbeat or spec.cronJob must be set",
            ],
        ),
        (
            json!({"interval": "2s", "timeout": "5s", "http": {"url": url}}),
            // The API server's message shows the values given, not the defaults.
            vec![
                "spec.timeout",
                "spec.timeout (5s) must be shorter than spec.interval (2s)",
            ],
        ),
        (
            json!({"http": {"url": url, "headers": [both_values]}}),
            vec![
                "spec.http.headers[0]",
                "exactly one of value or valueFrom must be set",
            ],
        ),
        (
            json!({"tcp": {"host": "db", "port": 70000}}),
            vec!["spec.tcp.port"],
        ),
        (
            json!({"bogus": true, "http": {"url": url}}),
            vec!["unknown field \"spec.bogus\""],
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_healthchecks_are_rejected_by_the_api_server_naming_the_field() {
    let cluster = Cluster::start().await;
    let mut missing = Vec::new();
    for (spec, wanted) in invalid_specs() {
        let document = healthcheck("default", "bad", spec.clone()).to_string();
        let stderr = cluster
            .kubectl
            .fails(&["apply", "-f", "-"], &document)
            .await;
        for want in wanted.into_iter().filter(|w| !stderr.contains(w)) {
            missing.push(format!("{spec}: expected {want:?} in: {stderr}"));
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
    let stored = cluster
        .kubectl
        .ok(&["get", "chc", "-A", "-o", "name"])
        .await;
    assert!(stored.trim().is_empty(), "nothing stored: {stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_that_slipped_past_validation_is_invalid_spec_and_others_go_on() {
    let ns = "refs";
    let echo = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let passing = http_check(ns, "passing", &echo.url("/passing"), json!({}));
    let s = Scenario::start(ns, &["--reference-ttl", "1s"], &[passing]).await;
    s.watch.ready_as("passing", "True", "Succeeded").await;
    s.cluster.server.set_validation(false);
    let spec = json!({"interval": "1s", "timeout": "5s", "http": {"url": echo.url("/slipped")}});
    s.cluster
        .kubectl
        .apply(&[healthcheck(ns, "slipped", spec)])
        .await;
    s.cluster.server.set_validation(true);
    let check = s.watch.ready_as("slipped", "False", "InvalidSpec").await;
    let (_, _, message) = ready(&check).unwrap();
    assert!(
        message.contains("timeout"),
        "message names the field: {message}"
    );
    assert_eq!(
        check["status"]["observedGeneration"],
        check["metadata"]["generation"]
    );
    let once = [("Warning", "InvalidSpec", 1)];
    s.cluster.wait_events(ns, "slipped", &once).await;
    let before = echo.requests().len();
    eventually(
        10 * SEC,
        "other checks keep running",
        Duration::from_millis(200),
        async || {
            let now = echo.requests().len();
            (now >= before + 2)
                .then_some(())
                .ok_or(format!("{now} requests"))
        },
    )
    .await;
    let requests = echo.requests();
    assert!(
        requests.iter().all(|r| r.path != "/slipped"),
        "an invalid spec is not probed"
    );
    // Re-resolving every second does not repeat the Event.
    tokio::time::sleep(3 * SEC).await;
    s.cluster.wait_events(ns, "slipped", &once).await;
    let healthz = s.operator.health_code("/healthz").await;
    assert_eq!(healthz, Some(200), "{}", s.operator.tail(20));
}
