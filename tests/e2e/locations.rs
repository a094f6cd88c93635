//! The hub half of locations (issue 29): the test writes the CheckReports spokes would, and
//! the operator aggregates them into the HealthCheck's status, never probing the target
//! itself.

use std::time::{Duration, Instant};

use canary_test_harness::{
    cluster::{Cluster, describe, http_check},
    http,
    targets::{Reply, TestServer, Transport},
    tools::Kubectl,
    wait::{eventually, steady},
};
use serde_json::{Value, json};

use crate::{SEC, Scenario, table};

const NS: &str = "shop";
/// Heartbeats the reports declare: long while a step needs its reports fresh (a busy machine
/// takes seconds between kubectl calls), short for the step that waits for them to go stale.
const LONG: u32 = 60;
const SHORT: u32 = 3;
/// max(3 intervals of 1 s, 2 x the short heartbeat).
const STALE_AFTER: Duration = Duration::from_secs(6);

/// Writes (creates, then updates the status of) the report of `api` from `location`, owned
/// by the check (as spokes write them, so deleting the check collects them).
async fn report(k: &Kubectl, location: &str, ready: &str, reason: &str, heartbeat: u32) {
    let name = format!("api.{location}");
    let check = k.get_json(&["chc", "api", "-n", NS]).await;
    let owner = json!([{"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
                        "name": "api", "uid": check["metadata"]["uid"]}]);
    let object = json!({
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "CheckReport",
        "metadata": {"name": name, "namespace": NS, "ownerReferences": owner},
        "spec": {"check": "api", "location": location, "heartbeatSeconds": heartbeat},
    });
    k.apply(&[object]).await;
    let now = jiff::Timestamp::now().to_string();
    let status = json!({"status": {"ready": ready, "reason": reason, "lastRunTime": now,
                                   "probedBy": format!("spoke-{location}")}});
    let patch = status.to_string();
    let args = [
        "patch",
        "checkreport",
        &name,
        "-n",
        NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ];
    k.ok(&args).await;
}

/// The condition `type_` of `check`: (status, reason, message).
pub(crate) fn condition(check: &Value, type_: &str) -> Option<(String, String, String)> {
    let conditions = check["status"]["conditions"].as_array()?;
    let c = conditions.iter().find(|c| c["type"] == type_)?;
    let text = |f: &str| c[f].as_str().unwrap_or_default().to_string();
    Some((text("status"), text("reason"), text("message")))
}

/// Waits until `api` shows Ready=`ready` (`reason`) and Degraded=`degraded`.
async fn verdict(s: &Scenario, ready: &str, reason: &str, degraded: &str) -> Value {
    let what = format!("api Ready={ready} {reason}, Degraded={degraded}");
    (s.watch.until(20 * SEC, &what, |seen| {
        let check = seen.get("api").ok_or("api not seen")?;
        let r = condition(check, "Ready").map(|(s, r, _)| (s, r));
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
async fn the_hub_judges_a_check_by_its_locations_reports_and_never_probes_it() {
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let locations = json!({"locations": {"names": ["a", "b", "c"], "minFailing": 2}});
    let check = http_check(NS, "api", &target.url("/"), locations);
    let s = Scenario::start(NS, &["--locations-hub"], &[check]).await;
    let k = &s.cluster.kubectl;

    // Nothing reported yet: no verdict (Pending; every location stale 3 intervals later).
    (s.watch
        .until(20 * SEC, "api Pending with 0/3 locations", |seen| {
            let pending = (seen.versions("api")).any(|check| {
                let ready = condition(check, "Ready").map(|(s, r, _)| (s, r));
                ready == Some(("Unknown".into(), "Pending".into()))
                    && check["status"]["locationsPassing"] == "0/3"
            });
            pending
                .then_some(())
                .ok_or(format!("{:?}", seen.get("api")))
        }))
    .await;

    report(k, "a", "True", "Succeeded", LONG).await;
    report(k, "b", "True", "Succeeded", LONG).await;
    report(k, "c", "False", "Timeout", LONG).await;
    let degraded = verdict(&s, "True", "Succeeded", "True").await;
    assert_eq!(degraded["status"]["locationsPassing"], "2/3");
    let (_, _, message) = condition(&degraded, "Ready").unwrap();
    assert_eq!(message, "c Timeout; a ok, b ok");
    let locations = degraded["status"]["locations"].as_array().unwrap();
    let names: Vec<&str> = locations
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(locations[2]["ready"], "False");
    assert_eq!(locations[2]["reason"], "Timeout");
    // The status page shows the check, each location and Degraded.
    let ui = s.operator.ui.expect("the status page");
    let api = http::get(ui, &format!("/api/v1/checks/{NS}/api"))
        .await
        .unwrap();
    let shown: Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(
        (shown["state"].as_str(), shown["degraded"].as_bool()),
        (Some("ready"), Some(true)),
        "{shown}"
    );
    assert_eq!(shown["locations"][2]["reason"], "Timeout", "{shown}");
    let page = http::get(ui, &format!("/checks/{NS}/api"))
        .await
        .unwrap()
        .body;
    assert!(
        page.contains("<h2>Locations</h2>") && page.contains("degraded"),
        "{page}"
    );
    let (header, rows) = table(k, NS, false).await;
    let column = header
        .iter()
        .position(|h| h == "LOCATIONS")
        .expect("a LOCATIONS column");
    assert_eq!(rows[0][column], "2/3", "{header:?} {rows:?}");

    // A report from a location the check does not list is ignored, and counted.
    report(k, "mars", "False", "Timeout", LONG).await;
    let ignored = [("reason", "unlisted")];
    eventually(
        10 * SEC,
        "the unlisted report counted",
        SEC / 4,
        async || {
            let n = s
                .operator
                .try_metric("canary_location_reports_ignored_total", &ignored)
                .await?;
            (n >= 1.0).then_some(()).ok_or(format!("{n}"))
        },
    )
    .await;

    report(k, "b", "False", "Timeout", LONG).await;
    let failing = verdict(&s, "False", "Timeout", "False").await;
    let (_, _, message) = condition(&failing, "Ready").unwrap();
    assert_eq!(message, "b Timeout, c Timeout; a ok");
    // The spokes declare a short heartbeat, then stop reporting: every location turns stale
    // after the bound, and the check Unknown (LocationsStale), not False.
    let reported = Instant::now();
    report(k, "a", "True", "Succeeded", SHORT).await;
    report(k, "b", "False", "Timeout", SHORT).await;
    report(k, "c", "False", "Timeout", SHORT).await;
    (s.watch.until(30 * SEC, "every location stale", |seen| {
        let check = seen.get("api").ok_or("api not seen")?;
        let ready = condition(check, "Ready").map(|(s, r, _)| (s, r));
        let locations = check["status"]["locations"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let all = locations.len() == 3 && locations.iter().all(|l| l["stale"] == true);
        let unknown = ready == Some(("Unknown".into(), "LocationsStale".into()));
        (unknown && all).then_some(()).ok_or(describe(check))
    }))
    .await;
    let waited = reported.elapsed();
    assert!(
        waited + SEC / 4 >= STALE_AFTER,
        "stale after {waited:?}, before the bound {STALE_AFTER:?}"
    );
    let labels = [("namespace", NS), ("name", "api"), ("report_location", "b")];
    let gauge = s
        .operator
        .try_metric("canary_check_location_stale", &labels)
        .await;
    assert_eq!(gauge, Ok(1.0));

    for location in ["a", "b", "c"] {
        report(k, location, "True", "Succeeded", LONG).await;
    }
    verdict(&s, "True", "Succeeded", "False").await;
    (s.watch.until(10 * SEC, "3/3 locations passing", |seen| {
        let check = seen.get("api").ok_or("api not seen")?;
        let passing = &check["status"]["locationsPassing"];
        (passing == "3/3").then_some(()).ok_or(describe(check))
    }))
    .await;
    let both = [("Warning", "Timeout", 1), ("Normal", "Recovered", 1)];
    s.cluster.wait_events(NS, "api", &both).await;

    assert_eq!(
        target.accepted(),
        0,
        "the operator probed a check with locations"
    );
    let runs = s
        .operator
        .check_metric("canary_check_runs_total", NS, "api")
        .await;
    assert_eq!(runs, Ok(0.0), "no local run of a check with locations");

    // Deleting the check collects its reports and removes its location series.
    k.ok(&["delete", "chc", "api", "-n", NS]).await;
    let reports = k.ok(&["get", "checkreports", "-n", NS, "-o", "name"]).await;
    assert_eq!(reports.trim(), "", "reports left: {reports}");
    eventually(
        10 * SEC,
        "the location series removed",
        SEC / 4,
        async || {
            let text = s.operator.scrape().await.ok_or("no /metrics")?;
            let left: Vec<&str> = (text.lines())
                .filter(|l| l.starts_with("canary_check_location_") && l.contains(r#"name="api""#))
                .collect();
            left.is_empty().then_some(()).ok_or(format!("{left:?}"))
        },
    )
    .await;
}

/// With `--sharding shards`, each hub replica aggregates its share: every check exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_hub_replicas_each_aggregate_their_own_share() {
    const CHECKS: usize = 12;
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let cluster = Cluster::start().await;
    cluster.namespace(NS).await;
    let k = &cluster.kubectl;
    let locations = json!({"locations": {"names": ["a", "b", "c"]}});
    let checks: Vec<Value> = (0..CHECKS)
        .map(|i| http_check(NS, &format!("c{i}"), &target.url("/"), locations.clone()))
        .collect();
    k.apply(&checks).await;
    let replica = |name: &str| {
        crate::operator(&cluster)
            .args(&["--locations-hub", "--sharding", "shards"])
            .args(&["--leader-election-lease-duration", "6s"])
            .args(&["--leader-election-lease-name", "hub-ring"])
            .env("POD_NAME", name)
            .process()
    };
    let (h1, h2) = futures::join!(replica("h1"), replica("h2"));
    let reports: Vec<Value> = (0..CHECKS)
        .flat_map(|i| ["a", "b", "c"].map(move |l| (i, l)))
        .map(|(i, l)| {
            json!({"apiVersion": "canary.dev/v1alpha1", "kind": "CheckReport",
                   "metadata": {"name": format!("c{i}.{l}"), "namespace": NS},
                   "spec": {"check": format!("c{i}"), "location": l, "heartbeatSeconds": 3600}})
        })
        .collect();
    k.apply(&reports).await;
    let passing = json!({"status": {"ready": "True", "reason": "Succeeded"}}).to_string();
    let patches = (reports.iter()).map(|r| {
        let name = r["metadata"]["name"].as_str().unwrap().to_string();
        let patch = passing.clone();
        async move {
            let args = [
                "patch",
                "checkreport",
                &name,
                "-n",
                NS,
                "--subresource=status",
            ];
            k.ok(&[&args[..], &["--type=merge", "-p", &patch]].concat())
                .await
        }
    });
    futures::future::join_all(patches).await;
    // Each check's location series on exactly one replica, and every check passing.
    eventually(
        30 * SEC,
        "each check aggregated by one replica",
        SEC / 2,
        async || {
            let mut owners = vec![0; CHECKS];
            for replica in [&h1, &h2] {
                let text = replica.scrape().await.ok_or("no /metrics")?;
                for (i, owner) in owners.iter_mut().enumerate() {
                    let series = format!(r#"name="c{i}",namespace="{NS}",report_location="a"}} 1"#);
                    *owner += usize::from(text.lines().any(|l| l.ends_with(&series)));
                }
            }
            (owners.iter().all(|n| *n == 1))
                .then_some(())
                .ok_or(format!("{owners:?}"))
        },
    )
    .await;
    eventually(
        30 * SEC,
        "every check Ready with 3/3",
        SEC / 2,
        async || {
            let list = k.get_json(&["chc", "-n", NS]).await;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            let done = (items.iter())
                .filter(|c| c["status"]["locationsPassing"] == "3/3")
                .count();
            (done == CHECKS)
                .then_some(())
                .ok_or(format!("{done} of {CHECKS}"))
        },
    )
    .await;
    assert_eq!(
        target.accepted(),
        0,
        "no replica probed a check with locations"
    );
}

/// A local check edited to name locations stops being probed here: its runner goes, and the
/// hub takes over its status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_edited_to_name_locations_is_no_longer_probed_here() {
    let target = TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await;
    let local = http_check(NS, "api", &target.url("/"), json!({}));
    let s = Scenario::start(NS, &["--locations-hub"], &[local]).await;
    s.watch.ready_as("api", "True", "Succeeded").await;
    let locations = json!({"locations": {"names": ["a", "b", "c"]}});
    let located = http_check(NS, "api", &target.url("/"), locations);
    s.cluster.kubectl.apply(&[located]).await;
    verdict(&s, "Unknown", "Pending", "False").await;
    // Runs started before the edit may still land; then none.
    let accepted = steady(20 * SEC, 3 * SEC, "requests to stop", SEC / 4, async || {
        target.accepted()
    })
    .await;
    assert!(accepted > 0, "it was probed before the edit");
    let runs = s
        .operator
        .check_metric("canary_check_runs_total", NS, "api")
        .await;
    assert_eq!(runs, Ok(0.0), "its local series went with its runner");
}
