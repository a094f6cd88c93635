//! Editing a HealthCheck replaces its runner without double runs; deleting it stops probing and
//! removes its metric series.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use canary_test_harness::{
    cluster::{describe, http_check},
    metrics,
    targets::{Reply, TestServer, Transport},
    wait::eventually,
};
use serde_json::json;

use crate::{SEC, Scenario, gaps, mean};

/// A server answering "version-1", recording when each request arrived.
async fn recording_server() -> (TestServer, Arc<Mutex<Vec<Instant>>>) {
    let times: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let seen = times.clone();
    let server = TestServer::start(Transport::Plain, move |_| {
        seen.lock().unwrap().push(Instant::now());
        Reply::ok("version-1")
    })
    .await;
    (server, times)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_takes_effect_with_the_new_interval_and_no_double_runs() {
    let ns = "shop";
    let (server, times) = recording_server().await;
    let expect = json!({"http": {"expect": {"bodyContains": "version-1"}}});
    let created = Instant::now();
    let s = Scenario::start(
        ns,
        &[],
        &[http_check(ns, "edited", &server.url("/"), expect)],
    )
    .await;
    s.watch.ready_as("edited", "True", "Succeeded").await;
    let runs = async |n: usize, since: Instant| {
        let all = times.lock().unwrap().clone();
        let after: Vec<Instant> = all.into_iter().filter(|t| *t >= since).collect();
        (after.len() >= n)
            .then_some(after.clone())
            .ok_or(format!("{} runs", after.len()))
    };
    let every = Duration::from_millis(200);
    let before = eventually(10 * SEC, "3 runs", every, async || runs(3, created).await).await;
    let mean_before = mean(&gaps(&before));
    assert!(
        mean_before < 1.4,
        "1s interval: mean gap {mean_before:.2}s ({:?})",
        gaps(&before)
    );

    let edit = r#"{"spec":{"interval":"2s","timeout":"1s","http":{"expect":{"bodyContains":"version-2"}}}}"#;
    s.cluster
        .kubectl
        .ok(&[
            "patch",
            "chc",
            "edited",
            "-n",
            ns,
            "--type=merge",
            "-p",
            edit,
        ])
        .await;
    let check = s.watch.ready_as("edited", "False", "BodyMismatch").await;
    assert_eq!(check["metadata"]["generation"], 2);
    assert_eq!(
        check["status"]["observedGeneration"],
        2,
        "{}",
        describe(&check)
    );
    let edited_at = Instant::now();
    let what = "4 runs at the new interval";
    let after = eventually(15 * SEC, what, every, async || runs(4, edited_at).await).await;
    let after_gaps = gaps(&after);
    // A late run followed by an on-time one shortens one gap a little; a double run (old and
    // new runner both alive) would leave a gap near zero.
    assert!(
        mean(&after_gaps) >= 1.7 && after_gaps.iter().all(|g| *g >= 1.2),
        "2s interval after the edit, no double runs: {after_gaps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_check_stops_probing_and_removes_its_series() {
    let ns = "shop";
    let (server, times) = recording_server().await;
    let other = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let checks = [
        http_check(ns, "edited", &server.url("/"), json!({})),
        http_check(ns, "healthy", &other.url("/"), json!({})),
    ];
    let s = Scenario::start(ns, &[], &checks).await;
    s.watch.ready_as("edited", "True", "Succeeded").await;
    s.watch.ready_as("healthy", "True", "Succeeded").await;
    let series = [("namespace", ns), ("name", "edited")];
    let scrape = s.operator.scrape().await.unwrap_or_default();
    assert!(metrics::any_series_with(&scrape, &series));
    s.cluster
        .kubectl
        .ok(&["delete", "chc", "edited", "-n", ns])
        .await;
    eventually(
        10 * SEC,
        "edited's series removed",
        Duration::from_millis(200),
        async || {
            let text = s.operator.scrape().await.ok_or("no scrape")?;
            match metrics::any_series_with(&text, &series) {
                true => Err("series still exported".to_string()),
                false => Ok(()),
            }
        },
    )
    .await;
    let probed = times.lock().unwrap().len();
    // Absence can only be shown over time: four intervals of the deleted check.
    tokio::time::sleep(4 * SEC).await;
    assert_eq!(
        times.lock().unwrap().len(),
        probed,
        "probing stopped after deletion"
    );
    let text = s.operator.scrape().await.expect("scrape");
    assert!(
        !metrics::any_series_with(&text, &series),
        "no series came back"
    );
    assert!(metrics::any_series_with(
        &text,
        &[("namespace", ns), ("name", "healthy")]
    ));
    let healthz = s.operator.health_code("/healthz").await;
    assert_eq!(healthz, Some(200), "{}", s.operator.tail(20));
}
