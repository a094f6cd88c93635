//! Locations end to end (issue 29): one local API server as the hub (a hub operator with
//! `--locations-hub`), three spoke processes with `--location a|b|c` and `--hub-kubeconfig`
//! pointing at the same server, and a loopback target that fails the requests of the
//! locations the test names (the User-Agent names the replica, `spoke-<location>`). The
//! verdict comes from the spokes' real reports: Degraded below the quorum, False at it, Unknown
//! (not False) when a spoke dies, recovered when it comes back.

use std::{
    collections::BTreeSet,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use canary_test_harness::{
    cluster::{Cluster, describe, http_check},
    operator::Operator,
    targets::{Reply, TestServer, Transport},
};
use serde_json::{Value, json};

use crate::{SEC, Scenario, locations::condition, spokes};

const NS: &str = "quorum";
/// The spokes' `--status-heartbeat`: the hub calls a location stale after
/// max(3 intervals of 1 s, 2 x this).
const HEARTBEAT: &str = "3s";
const STALE_AFTER: Duration = Duration::from_secs(6);

/// A spoke of the hub `hub` (a kubeconfig) at `location`, replica `spoke-<location>`.
async fn spoke(cluster: &Cluster, hub: &Path, location: &str) -> Operator {
    spokes::spoke_with(cluster, hub, location, &["--status-heartbeat", HEARTBEAT]).await
}

/// Waits until `api` shows Ready=`ready` (`reason`) and Degraded=`degraded`; returns it.
/// Sets `saw_false` whenever it sees Ready=False meanwhile.
async fn verdict(
    s: &Scenario,
    ready: &str,
    reason: &str,
    degraded: &str,
    saw_false: &AtomicBool,
) -> Value {
    let what = format!("api Ready={ready} {reason}, Degraded={degraded}");
    (s.watch.until(60 * SEC, &what, |seen| {
        let check = seen.get("api").ok_or("api not seen")?;
        let r = condition(check, "Ready").map(|(s, r, _)| (s, r));
        if r.as_ref().is_some_and(|(s, _)| s == "False") {
            saw_false.store(true, Ordering::SeqCst);
        }
        let d = condition(check, "Degraded").map(|(s, _, _)| s);
        if r == Some((ready.into(), reason.into())) && d.as_deref() == Some(degraded) {
            Ok(check.clone())
        } else {
            Err(describe(check))
        }
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_locations_judge_by_quorum_and_a_dead_spoke_makes_it_unknown_not_false() {
    let failing: Arc<Mutex<BTreeSet<String>>> = Arc::new(Mutex::new(["c".into()].into()));
    let fails = failing.clone();
    let target = TestServer::start(Transport::Plain, move |request| {
        let agent = request.header("user-agent").unwrap_or_default();
        let failing = fails.lock().expect("lock");
        match failing
            .iter()
            .any(|l| agent.contains(&format!("(spoke-{l})")))
        {
            true => Reply::status(503, "not from here"),
            false => Reply::ok("ok"),
        }
    })
    .await;
    let spec = json!({"interval": "1s", "timeout": "500ms",
                      "locations": {"names": ["a", "b", "c"], "minFailing": 2}});
    let check = http_check(NS, "api", &target.url("/healthz"), spec);
    let s = Scenario::start(NS, &["--locations-hub"], &[check]).await;
    let hub = s.cluster.kubeconfig().to_path_buf();
    let mut spokes = Vec::new();
    for location in ["a", "b", "c"] {
        spokes.push(spoke(&s.cluster, &hub, location).await);
    }
    let saw_false = AtomicBool::new(false);

    // 1 of 3 failing, quorum 2: passing, degraded.
    let api = verdict(&s, "True", "Succeeded", "True", &saw_false).await;
    assert_eq!(api["status"]["locationsPassing"], "2/3", "{api}");
    assert!(
        !saw_false.load(Ordering::SeqCst),
        "one location never fails it"
    );

    // 2 of 3: failing, naming both.
    failing.lock().expect("lock").insert("b".into());
    let api = verdict(&s, "False", "UnexpectedStatus", "False", &saw_false).await;
    let (_, _, message) = condition(&api, "Ready").expect("Ready");
    for named in ["b UnexpectedStatus", "c UnexpectedStatus", "a ok"] {
        assert!(message.contains(named), "{named:?} in {message:?}");
    }
    failing.lock().expect("lock").remove("b");
    verdict(&s, "True", "Succeeded", "True", &saw_false).await;

    // Spoke a (passing) killed: c failing + a stale reach the quorum: Unknown, never False.
    saw_false.store(false, Ordering::SeqCst);
    spokes[0].kill();
    let killed = Instant::now();
    let api = verdict(&s, "Unknown", "LocationsStale", "True", &saw_false).await;
    let took = killed.elapsed();
    assert!(
        !saw_false.load(Ordering::SeqCst),
        "a dead spoke is not a failing target"
    );
    let a = (api["status"]["locations"]
        .as_array()
        .expect("locations")
        .iter())
    .find(|l| l["name"] == "a")
    .cloned()
    .expect("location a");
    assert_eq!(a["stale"], true, "{api}");
    // The bound, plus the last report's age at the kill (a heartbeat) and slack for a busy
    // machine (a pass every 0.5 s, the status write, the watch).
    assert!(
        took <= STALE_AFTER + Duration::from_secs(3) + 10 * SEC,
        "stale after {took:?}"
    );

    // Restarted: its reports resume, the verdict recovers.
    spokes[0] = spoke(&s.cluster, &hub, "a").await;
    let api = verdict(&s, "True", "Succeeded", "True", &saw_false).await;
    assert_eq!(api["status"]["locationsPassing"], "2/3", "{api}");

    // A report from a location the check does not list is ignored.
    let owner = json!([{"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
                        "name": "api", "uid": api["metadata"]["uid"]}]);
    let report = json!({
        "apiVersion": "canary.dev/v1alpha1", "kind": "CheckReport",
        "metadata": {"name": "api.z", "namespace": NS, "ownerReferences": owner},
        "spec": {"check": "api", "location": "z", "heartbeatSeconds": 60},
    });
    s.cluster.kubectl.apply(&[report]).await;
    let ignored = [("reason", "unlisted")];
    canary_test_harness::wait::eventually(
        30 * SEC,
        "the unlisted report counted as ignored",
        Duration::from_millis(200),
        async || match s
            .operator
            .try_metric("canary_location_reports_ignored_total", &ignored)
            .await
        {
            Ok(n) if n >= 1.0 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    let api = verdict(&s, "True", "Succeeded", "True", &saw_false).await;
    let names: Vec<&str> = (api["status"]["locations"]
        .as_array()
        .expect("locations")
        .iter())
    .filter_map(|l| l["name"].as_str())
    .collect();
    assert_eq!(names, ["a", "b", "c"], "{api}");
    for spoke in &spokes {
        assert!(spoke.running(), "{}", spoke.tail(20));
    }
}
