//! Transitions become Events, once each: a failing check that recovers reports both, a check
//! that never changed reports none.

use canary_test_harness::{
    cluster::{http_check, occurrences, status_int},
    targets::{Reply, Switchable, TestServer, Transport},
};
use serde_json::json;

use crate::Scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_target_turns_ready_again_with_one_event_per_transition() {
    let flaky = Switchable::start(500).await;
    let steady = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let ns = "shop";
    let checks = [
        http_check(ns, "flaky", &flaky.url("/"), json!({})),
        http_check(ns, "healthy", &steady.url("/"), json!({})),
    ];
    let s = Scenario::start(ns, &[], &checks).await;
    let check = s.watch.ready_as("flaky", "False", "UnexpectedStatus").await;
    assert_eq!(check["status"]["lastResult"]["httpStatus"], 500);
    assert!(
        check["status"]["tls"].is_null(),
        "no TLS facts for plain HTTP"
    );
    s.watch.ready_as("healthy", "True", "Succeeded").await;

    s.operator
        .wait_runs(ns, "flaky", Some("failure"), 3.0)
        .await;
    flaky.set(200);
    let check = s.watch.ready_as("flaky", "True", "Succeeded").await;
    assert_eq!(status_int(&check, "consecutiveFailures"), 0);
    let both = [
        ("Warning", "UnexpectedStatus", 1),
        ("Normal", "Recovered", 1),
    ];
    s.cluster.wait_events(ns, "flaky", &both).await;
    let events = s.cluster.events(ns).await;
    assert!(
        occurrences(&events, "healthy").is_empty(),
        "no transition, no Event: {events:?}"
    );
    for e in &events {
        assert_eq!(e.regarding_kind, "HealthCheck", "{e:?}");
        assert!(!e.note.is_empty(), "{e:?}");
    }
}
