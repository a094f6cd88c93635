//! The hub half of locations (issue 29): the test writes the CheckReports spokes would, and
//! the operator aggregates them into the HealthCheck's status, never probing the target
//! itself.

use std::time::{Duration, Instant};

use canary_test_harness::{
    cluster::{describe, http_check},
    http,
    targets::{Reply, TestServer, Transport},
    tools::Kubectl,
    wait::eventually,
};
use serde_json::{Value, json};

use crate::{SEC, Scenario, table};

const NS: &str = "shop";
/// max(3 intervals of 1 s, 2 x a heartbeat of 2 s).
const STALE_AFTER: Duration = Duration::from_secs(4);

/// Writes (creates, then updates the status of) the report of `api` from `location`, owned
/// by the check (as spokes write them, so deleting the check collects them).
async fn report(k: &Kubectl, location: &str, ready: &str, reason: &str) {
    let name = format!("api.{location}");
    let check = k.get_json(&["chc", "api", "-n", NS]).await;
    let owner = json!([{"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
                        "name": "api", "uid": check["metadata"]["uid"]}]);
    let object = json!({
        "apiVersion": "canary.dev/v1alpha1",
        "kind": "CheckReport",
        "metadata": {"name": name, "namespace": NS, "ownerReferences": owner},
        "spec": {"check": "api", "location": location, "heartbeatSeconds": 2},
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
fn condition(check: &Value, type_: &str) -> Option<(String, String, String)> {
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

    report(k, "a", "True", "Succeeded").await;
    report(k, "b", "True", "Succeeded").await;
    report(k, "c", "False", "Timeout").await;
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
    report(k, "mars", "False", "Timeout").await;
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

    report(k, "b", "False", "Timeout").await;
    let failing = verdict(&s, "False", "Timeout", "False").await;
    let (_, _, message) = condition(&failing, "Ready").unwrap();
    assert_eq!(message, "b Timeout, c Timeout; a ok");
    let reported = Instant::now();

    // Nobody reports any more: stale after the bound, Unknown and not False.
    let stale = verdict(&s, "Unknown", "LocationsStale", "False").await;
    let waited = reported.elapsed();
    assert!(
        waited + SEC / 4 >= STALE_AFTER,
        "stale after {waited:?}, before the bound {STALE_AFTER:?}"
    );
    let locations = stale["status"]["locations"].as_array().unwrap();
    assert!(
        locations.iter().all(|l| l["stale"] == true),
        "{locations:?}"
    );
    let labels = [("namespace", NS), ("name", "api"), ("report_location", "b")];
    let gauge = s
        .operator
        .try_metric("canary_check_location_stale", &labels)
        .await;
    assert_eq!(gauge, Ok(1.0));

    for location in ["a", "b", "c"] {
        report(k, location, "True", "Succeeded").await;
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
