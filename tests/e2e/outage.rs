//! The API server failing, dropping watches or going away never stops probing; status and
//! Events catch up afterwards.

use std::time::Duration;

use canary_test_harness::{
    cluster::{Cluster, http_check, occurrences},
    operator::Operator,
    targets::{Reply, Switchable, TestServer, Transport},
    wait::eventually,
};
use serde_json::json;

use crate::{SEC, Scenario};

const NS: &str = "faults";

/// An operator probing `failing` (a target answering `code`) and `passing`, both settled.
async fn failing_and_passing(code: u16) -> (Scenario, Switchable, TestServer) {
    let failing = Switchable::start(code).await;
    let passing = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let checks = [
        http_check(NS, "failing", &failing.url("/"), json!({})),
        http_check(NS, "passing", &passing.url("/"), json!({})),
    ];
    let s = Scenario::start(NS, &[], &checks).await;
    match code {
        200 => s.watch.ready_as("failing", "True", "Succeeded").await,
        _ => {
            s.watch
                .ready_as("failing", "False", "UnexpectedStatus")
                .await
        }
    };
    s.watch.ready_as("passing", "True", "Succeeded").await;
    (s, failing, passing)
}

/// Waits until check `passing` has run three more times than `runs` and check `failing`
/// reports `success`: probing goes on whatever the API server does.
async fn wait_probing(operator: &Operator, runs: f64, success: f64, what: &str) {
    eventually(10 * SEC, what, Duration::from_millis(200), async || {
        let now = operator
            .check_metric("canary_check_runs_total", NS, "passing")
            .await?;
        let ok = operator
            .check_metric("canary_check_success", NS, "failing")
            .await?;
        if now >= runs + 3.0 && ok == success {
            Ok(())
        } else {
            Err(format!("runs {now} (was {runs}), failing success {ok}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_write_errors_do_not_stop_probing_and_status_catches_up() {
    let (s, failing, _passing) = failing_and_passing(500).await;
    let once = [("Warning", "UnexpectedStatus", 1)];
    s.cluster.wait_events(NS, "failing", &once).await;
    let runs = s.operator.runs(NS, "passing").await;
    s.cluster.server.fail_next(3, 500, Some("/status"));
    failing.set(200);
    wait_probing(&s.operator, runs, 1.0, "runs during status-write errors").await;
    s.watch.ready_as("failing", "True", "Succeeded").await;
    let both = [
        ("Warning", "UnexpectedStatus", 1),
        ("Normal", "Recovered", 1),
    ];
    s.cluster.wait_events(NS, "failing", &both).await;
    let requests = s.cluster.server.requests();
    let injected = (requests.iter())
        .filter(|r| r.subresource == "status" && r.code == 500)
        .count();
    assert_eq!(injected, 3, "the operator met the injected errors");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_check_is_picked_up_after_dropped_watches_compaction_and_list_errors() {
    let (s, _failing, _passing) = failing_and_passing(500).await;
    // Watches dropped, history compacted (410 on resume) and the next lists/watches of
    // HealthChecks answered with 500s.
    let all_checks = "/apis/canary.dev/v1alpha1/healthchecks?";
    s.cluster.server.fail_next(2, 500, Some(all_checks));
    s.cluster.server.compact_history();
    s.cluster.server.drop_watches();
    let late = TestServer::start(Transport::Plain, |_| Reply::ok("late")).await;
    s.cluster
        .kubectl
        .apply(&[http_check(NS, "late", &late.url("/"), json!({}))])
        .await;
    // kube-runtime's watcher backs off between attempts (and treats the 410 as one more
    // error), so this takes several seconds.
    s.watch
        .ready_within(30 * SEC, "late", "True", "Succeeded")
        .await;
    let requests = s.cluster.operator_requests();
    let refused = requests
        .iter()
        .filter(|r| r.request_uri.contains(all_checks) && r.code == 500);
    assert_eq!(
        refused.count(),
        2,
        "the operator met the injected list/watch errors"
    );
}

/// Stops the API server, runs `meanwhile`, and restarts it on the same port.
async fn outage(cluster: &mut Cluster, meanwhile: impl AsyncFnOnce()) {
    cluster.server.stop().await;
    meanwhile().await;
    cluster
        .server
        .restart()
        .await
        .expect("restart on the same port");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probing_goes_on_while_the_api_server_is_down_and_status_catches_up() {
    let (mut s, failing, _passing) = failing_and_passing(200).await;
    let operator = &s.operator;
    outage(&mut s.cluster, async || {
        let runs = operator.runs(NS, "passing").await;
        failing.set(500);
        wait_probing(operator, runs, 0.0, "runs while the API server is down").await;
    })
    .await;
    s.watch
        .ready_within(40 * SEC, "failing", "False", "UnexpectedStatus")
        .await;
    // Nothing crashed; still healthy and ready.
    assert!(s.operator.running(), "operator alive");
    let healthz = s.operator.health_code("/healthz").await;
    assert_eq!(healthz, Some(200), "{}", s.operator.tail(20));
    assert_eq!(s.operator.health_code("/readyz").await, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transition_during_an_api_server_outage_is_recorded_as_an_event_afterwards() {
    let target = Switchable::start(200).await;
    let mut s = Scenario::start(
        NS,
        &[],
        &[http_check(NS, "web", &target.url("/"), json!({}))],
    )
    .await;
    s.watch.ready_as("web", "True", "Succeeded").await;
    let operator = &s.operator;
    outage(&mut s.cluster, async || {
        target.set(500);
        // The failure seen while the API server is down.
        operator.wait_success(NS, "web", 0.0).await;
        // Long enough for the operator to try (and fail) to publish the Event.
        operator.wait_runs(NS, "web", Some("failure"), 3.0).await;
    })
    .await;
    s.watch
        .ready_within(40 * SEC, "web", "False", "UnexpectedStatus")
        .await;
    // Like status, the Event is retried rather than lost.
    let want = vec![("Warning".to_string(), "UnexpectedStatus".to_string(), 1)];
    let what = "the Event for a transition during the outage";
    eventually(20 * SEC, what, Duration::from_millis(300), async || {
        let got = occurrences(&s.cluster.events(NS).await, "web");
        if got == want {
            return Ok(());
        }
        let logs: Vec<String> = s
            .operator
            .logs()
            .into_iter()
            .filter(|l| l.contains("Event"))
            .collect();
        Err(format!(
            "want {want:?}, got {got:?}; operator log lines about Events: {logs:#?}"
        ))
    })
    .await;
}
