use kube::runtime::watcher::Event;

use super::for_location;
use crate::api::{CheckKey, CheckReportStatus};

/// [`for_location`] of a spoke that wrote no report yet.
fn for_location_(event: Event<HealthCheck>, location: &str) -> Option<Event<HealthCheck>> {
    for_location(event, location, |_, _| None)
}
use crate::{
    api::{HealthCheck, Locations},
    controller::fixtures::{CheckFixture, check},
};

fn located(name: &str, names: &[&str]) -> HealthCheck {
    let mut object = check("shop", name).written(2);
    object.spec.locations = Some(Locations {
        names: names.iter().map(|n| n.to_string()).collect(),
        min_failing: None,
    });
    object
}

fn name(event: &Event<HealthCheck>) -> (&'static str, String) {
    match event {
        Event::Init => ("init", String::new()),
        Event::InitDone => ("init-done", String::new()),
        Event::InitApply(o) => ("init-apply", o.metadata.name.clone().unwrap()),
        Event::Apply(o) => ("apply", o.metadata.name.clone().unwrap()),
        Event::Delete(o) => ("delete", o.metadata.name.clone().unwrap()),
    }
}

#[test]
fn a_spoke_sees_only_the_checks_listing_its_location_as_plain_checks() {
    let mine = for_location_(Event::Apply(located("api", &["a", "b"])), "a").unwrap();
    assert_eq!(name(&mine), ("apply", "api".into()));
    let Event::Apply(object) = mine else {
        unreachable!()
    };
    assert_eq!(object.spec.locations, None, "probed as a plain check");
    assert_eq!(
        object.status, None,
        "the hub's aggregate is not this location's state"
    );
    let listed = for_location_(Event::InitApply(located("api", &["a"])), "a");
    assert_eq!(name(&listed.unwrap()), ("init-apply", "api".into()));
    assert!(for_location_(Event::InitApply(located("api", &["b"])), "a").is_none());
    assert!(
        for_location_(Event::InitApply(check("shop", "local")), "a").is_none(),
        "a check without locations is the hub's own"
    );
    assert!(for_location_(Event::Init, "a").is_some());
    assert!(for_location_(Event::InitDone, "a").is_some());
}

#[test]
fn a_listed_check_carries_its_locations_last_report_as_status() {
    let failing = CheckReportStatus {
        ready: Some("False".into()),
        reason: Some("Timeout".into()),
        consecutive_failures: 4,
        ..CheckReportStatus::default()
    };
    let last = |key: &CheckKey, uid: &str| {
        (key.name == "api" && uid == "uid-shop-api").then(|| failing.clone())
    };
    let Some(Event::InitApply(object)) =
        for_location(Event::InitApply(located("api", &["a"])), "a", last)
    else {
        panic!("listed")
    };
    let status = object.status.expect("resumed from the report");
    assert_eq!(status.consecutive_failures, 4);
    assert_eq!(status.ready_reason(), Some(crate::api::Reason::Timeout));
}

#[test]
fn a_check_that_stops_listing_the_location_is_deleted_here() {
    let gone = for_location_(Event::Apply(located("api", &["b", "c"])), "a").unwrap();
    assert_eq!(name(&gone), ("delete", "api".into()));
    let local = for_location_(Event::Apply(check("shop", "local")), "a").unwrap();
    assert_eq!(name(&local), ("delete", "local".into()));
    let deleted = for_location_(Event::Delete(located("api", &["a"])), "a").unwrap();
    assert_eq!(name(&deleted), ("delete", "api".into()));
}

/// What a spoke pays for a hub check that does not list its location: one watch event decoded
/// and dropped per change of the check (the hub's status writes included). Every event of such
/// a check is dropped (a `Delete` for the index), and one stays about 1 KiB on the wire; the
/// cost per event is printed (`--nocapture`; a debug build overstates it).
#[test]
fn an_unlisted_hub_check_event_is_decoded_and_dropped() {
    let mut object = located("api", &["b", "c"]);
    object.status = Some(serde_json::from_value(serde_json::json!({
        "observedGeneration": 1, "probedBy": "hub-0", "target": "https://api.shop.svc:8443/healthz",
        "conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
            "message": "HTTP 200 in 0.012s", "lastTransitionTime": "2026-12-07T08:00:00Z"}],
        "lastRunTime": "2026-12-07T09:00:00Z", "lastSuccessTime": "2026-12-07T09:00:00Z",
        "consecutiveSuccesses": 40,
        "lastResult": {"success": true, "reason": "Succeeded", "message": "HTTP 200 in 0.012s",
            "duration": "0.012s", "httpStatus": 200},
        "locations": [{"name": "b", "ready": "True", "reason": "Succeeded"},
            {"name": "c", "ready": "True", "reason": "Succeeded"}]
    })).unwrap());
    let event = serde_json::json!({"type": "MODIFIED", "object": object});
    let wire = serde_json::to_vec(&event).unwrap();
    assert!(wire.len() < 2048, "{} bytes on the wire", wire.len());
    let n = 2_000;
    let started = std::time::Instant::now();
    for _ in 0..n {
        let decoded: serde_json::Value = serde_json::from_slice(&wire).unwrap();
        let object: HealthCheck = serde_json::from_value(decoded["object"].clone()).unwrap();
        assert!(matches!(
            for_location_(Event::Apply(object), "a"),
            Some(Event::Delete(_))
        ));
    }
    let each = started.elapsed() / n;
    println!(
        "one event: {} bytes on the wire, {each:?} to decode and drop",
        wire.len()
    );
}
