//! The hub's pure parts on a virtual clock: the verdict, the status it makes, the reports'
//! staleness clock.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{api::ObjectMeta, runtime::watcher};

use super::{
    Ignored, Reports,
    aggregate::{Aggregate, Observed, aggregate, stale_after},
    status::next_status,
};
use crate::api::{
    CheckReport, CheckReportSpec, CheckReportStatus, DEGRADED, HealthCheckStatus, ReadyStatus,
    Reason, ValidLocations,
};

const INTERVAL: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_secs(60);

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn three(min_failing: usize) -> ValidLocations {
    ValidLocations {
        names: vec!["eu-west".into(), "us-east".into(), "ap-south".into()],
        min_failing,
    }
}

fn report(ready: &str, reason: &str) -> CheckReportStatus {
    CheckReportStatus {
        ready: Some(ready.into()),
        reason: Some(reason.into()),
        ..CheckReportStatus::default()
    }
}

/// The verdict with `reports` (location, status, seen at) at `now`, aggregating since 0.
fn judge(
    min_failing: usize,
    reports: &[(&str, CheckReportStatus, Duration)],
    now: Duration,
) -> Aggregate {
    let observed = |name: &str| {
        let (_, status, seen) = reports.iter().find(|(n, _, _)| *n == name)?;
        Some(Observed {
            status: Some(status),
            heartbeat: HEARTBEAT,
            seen: *seen,
        })
    };
    aggregate(&three(min_failing), INTERVAL, observed, s(0), now)
}

fn ok() -> CheckReportStatus {
    report("True", "Succeeded")
}

fn timeout() -> CheckReportStatus {
    report("False", "Timeout")
}

#[test]
fn one_of_three_failing_under_quorum_passes_degraded() {
    let verdict = judge(
        2,
        &[
            ("eu-west", timeout(), s(0)),
            ("us-east", ok(), s(0)),
            ("ap-south", ok(), s(0)),
        ],
        s(5),
    );
    assert_eq!(verdict.ready, ReadyStatus::True);
    assert_eq!(verdict.reason, Reason::Succeeded);
    assert!(verdict.degraded);
    assert_eq!(verdict.message, "eu-west Timeout; us-east ok, ap-south ok");
    assert_eq!(verdict.passing_column(), "2/3");
}

#[test]
fn two_of_three_failing_fails_naming_both() {
    let verdict = judge(
        2,
        &[
            ("eu-west", timeout(), s(0)),
            ("us-east", timeout(), s(0)),
            ("ap-south", ok(), s(0)),
        ],
        s(5),
    );
    assert_eq!(verdict.ready, ReadyStatus::False);
    assert_eq!(verdict.reason, Reason::Timeout);
    assert!(!verdict.degraded, "failing, not degraded");
    assert_eq!(
        verdict.message,
        "eu-west Timeout, us-east Timeout; ap-south ok"
    );
    assert_eq!(verdict.passing_column(), "1/3");
}

#[test]
fn the_most_common_failing_reason_wins_and_ties_go_to_the_first_listed() {
    let refused = || report("False", "ConnectionRefused");
    let all = [
        ("eu-west", timeout(), s(0)),
        ("us-east", refused(), s(0)),
        ("ap-south", refused(), s(0)),
    ];
    assert_eq!(judge(2, &all, s(1)).reason, Reason::ConnectionRefused);
    let tie = [("eu-west", timeout(), s(0)), ("us-east", refused(), s(0))];
    assert_eq!(judge(2, &tie, s(1)).reason, Reason::Timeout);
}

#[test]
fn stale_reports_make_it_unknown_not_false() {
    // The bound is max(3 intervals, 2 heartbeats) = 120 s with these numbers.
    assert_eq!(stale_after(INTERVAL, Some(HEARTBEAT)), s(120));
    let reports = [
        ("eu-west", timeout(), s(0)),
        ("us-east", ok(), s(0)),
        ("ap-south", ok(), s(100)),
    ];
    let fresh = judge(2, &reports, s(119));
    assert_eq!(fresh.ready, ReadyStatus::True);
    let stale = judge(2, &reports, s(120));
    assert_eq!(stale.ready, ReadyStatus::Unknown);
    assert_eq!(stale.reason, Reason::LocationsStale);
    assert_eq!(stale.stale, 2, "eu-west and us-east are stale");
    assert!(stale.locations[0].stale && !stale.locations[2].stale);
    assert_eq!(
        stale.locations[0].ready, "Unknown",
        "a stale location is Unknown"
    );
    assert_eq!(
        stale.locations[0].reason.as_deref(),
        Some("Timeout"),
        "its last reason stays"
    );
    assert!(!stale.degraded, "a stale failure is not a failure");
    assert_eq!(stale.message, "eu-west stale, us-east stale, ap-south ok");
}

#[test]
fn one_stale_location_beside_failing_ones_still_fails_at_quorum() {
    let reports = [
        ("eu-west", timeout(), s(200)),
        ("us-east", timeout(), s(200)),
        ("ap-south", ok(), s(0)),
    ];
    let verdict = judge(2, &reports, s(210));
    assert_eq!(verdict.ready, ReadyStatus::False);
    assert_eq!(verdict.stale, 1);
}

#[test]
fn a_location_that_never_reported_is_pending_then_stale() {
    let reports = [("eu-west", ok(), s(0)), ("us-east", ok(), s(0))];
    // 3 intervals (30 s) after the hub began aggregating.
    let early = judge(2, &reports[..1], s(29));
    assert_eq!(
        (early.ready, early.reason),
        (ReadyStatus::Unknown, Reason::Pending)
    );
    assert_eq!(
        early.message,
        "eu-west ok, us-east pending, ap-south pending"
    );
    let late = judge(2, &reports[..1], s(30));
    assert_eq!(
        (late.ready, late.reason),
        (ReadyStatus::Unknown, Reason::LocationsStale)
    );
    // Two passing: one unknown is below the quorum, it passes.
    let two = judge(2, &reports, s(30));
    assert_eq!(two.ready, ReadyStatus::True);
    assert!(two.locations[2].stale);
}

#[test]
fn a_report_of_unknown_counts_as_pending() {
    let reports = [
        ("eu-west", report("Unknown", "Pending"), s(0)),
        ("us-east", report("Unknown", "Pending"), s(0)),
        ("ap-south", ok(), s(0)),
    ];
    let verdict = judge(2, &reports, s(1));
    assert_eq!(
        (verdict.ready, verdict.reason),
        (ReadyStatus::Unknown, Reason::Pending)
    );
}

#[test]
fn report_timestamps_are_shown_never_compared() {
    // A spoke whose clock is a year off: its lastRunTime is shown, and judged fresh or stale
    // by the hub's clock only.
    let skewed = |years: i64| CheckReportStatus {
        last_run_time: Some(Time(
            jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::from_hours(24 * 365 * years))
                .unwrap(),
        )),
        ..timeout()
    };
    for years in [-1, 1] {
        let reports = [
            ("eu-west", skewed(years), s(0)),
            ("us-east", skewed(years), s(0)),
            ("ap-south", ok(), s(0)),
        ];
        let verdict = judge(2, &reports, s(5));
        assert_eq!(verdict.ready, ReadyStatus::False, "skew {years}y");
        assert!(verdict.locations[0].last_run_time.is_some());
        let later = judge(2, &reports, s(120));
        assert_eq!(later.ready, ReadyStatus::Unknown, "skew {years}y");
    }
}

fn status_of(verdict: &Aggregate, previous: &HealthCheckStatus) -> (HealthCheckStatus, bool) {
    let settled = previous.ready().filter(|r| *r != ReadyStatus::Unknown);
    let now = Time(jiff::Timestamp::now());
    let next = next_status(verdict, previous, settled, Some(1), &now);
    (next.status, next.transition.is_some())
}

#[test]
fn degraded_and_ready_conditions_follow_the_verdict_and_recovery_is_a_transition() {
    let passing = [
        ("eu-west", ok(), s(0)),
        ("us-east", ok(), s(0)),
        ("ap-south", ok(), s(0)),
    ];
    let (healthy, first) = status_of(&judge(2, &passing, s(1)), &HealthCheckStatus::default());
    assert!(
        first,
        "the first verdict is a transition (no Event: not news)"
    );
    let degraded = [
        ("eu-west", timeout(), s(2)),
        passing[1].clone(),
        passing[2].clone(),
    ];
    let (status, transition) = status_of(&judge(2, &degraded, s(3)), &healthy);
    assert!(!transition, "Degraded is no Ready transition");
    let condition = |status: &HealthCheckStatus, type_: &str| {
        let c = status.conditions.iter().find(|c| c.type_ == type_).unwrap();
        (c.status.clone(), c.reason.clone())
    };
    assert_eq!(
        condition(&status, DEGRADED),
        ("True".into(), "Succeeded".into())
    );
    assert_eq!(status.locations_passing.as_deref(), Some("2/3"));
    let failing = [
        degraded[0].clone(),
        ("us-east", timeout(), s(4)),
        passing[2].clone(),
    ];
    let (down, transition) = status_of(&judge(2, &failing, s(5)), &status);
    assert!(transition);
    assert_eq!(
        condition(&down, "Ready"),
        ("False".into(), "Timeout".into())
    );
    assert_eq!(condition(&down, DEGRADED).0, "False");
    let result = down.last_result.as_ref().expect("a whole last result");
    assert_eq!((result.success, result.reason), (false, Reason::Timeout));
    assert_eq!(
        result.message,
        "eu-west Timeout, us-east Timeout; ap-south ok"
    );
    // Stale in between: no transition; then recovered: a transition from False.
    let stale = judge(2, &failing, s(500));
    let now = Time(jiff::Timestamp::now());
    let unknown = next_status(&stale, &down, Some(ReadyStatus::False), Some(1), &now);
    assert!(unknown.transition.is_none());
    assert_eq!(unknown.settled, Some(ReadyStatus::False));
    let back = judge(2, &passing.map(|(n, r, _)| (n, r, s(500))), s(501));
    let recovered = next_status(&back, &unknown.status, unknown.settled, Some(1), &now);
    let transition = recovered.transition.expect("recovered");
    assert_eq!(transition.from, Some(ReadyStatus::False));
    assert_eq!(transition.to, ReadyStatus::True);
}

fn check_report(name: &str, location: &str, version: &str) -> CheckReport {
    let mut report = CheckReport::new(
        name,
        CheckReportSpec {
            check: "api".into(),
            location: location.into(),
            heartbeat_seconds: 60,
        },
    );
    report.metadata = ObjectMeta {
        name: Some(name.into()),
        namespace: Some("shop".into()),
        resource_version: Some(version.into()),
        ..ObjectMeta::default()
    };
    report.status = Some(ok());
    report
}

fn seen(reports: &Reports, location: &str) -> Option<Duration> {
    let key = crate::api::CheckKey {
        namespace: "shop".into(),
        name: "api".into(),
    };
    Some(reports.of(&key)?.get(location)?.seen)
}

#[test]
fn the_staleness_clock_starts_at_a_new_version_and_survives_a_relist() {
    let mut reports = Reports::default();
    reports.apply(watcher::Event::Init, s(0));
    reports.apply(
        watcher::Event::InitApply(check_report("api.a", "a", "1")),
        s(0),
    );
    reports.apply(
        watcher::Event::InitApply(check_report("api.b", "b", "1")),
        s(0),
    );
    reports.apply(watcher::Event::InitDone, s(0));
    assert!(reports.synced());
    reports.apply(
        watcher::Event::Apply(check_report("api.a", "a", "2")),
        s(10),
    );
    assert_eq!(seen(&reports, "a"), Some(s(10)));
    // A reconnect relists: unchanged versions keep their time; a report gone is dropped.
    reports.apply(watcher::Event::Init, s(20));
    reports.apply(
        watcher::Event::InitApply(check_report("api.a", "a", "2")),
        s(20),
    );
    reports.apply(watcher::Event::InitDone, s(20));
    assert_eq!(seen(&reports, "a"), Some(s(10)), "a relist is no change");
    assert_eq!(seen(&reports, "b"), None);
    reports.apply(
        watcher::Event::Delete(check_report("api.a", "a", "2")),
        s(30),
    );
    assert!(reports.is_empty());
}

#[test]
fn a_report_not_named_for_its_check_and_location_is_ignored() {
    let mut reports = Reports::default();
    let misnamed = check_report("api.eu-west", "us-east", "1");
    let ignored = reports.apply(watcher::Event::Apply(misnamed), s(0));
    assert_eq!(ignored, Some(Ignored::Name));
    assert_eq!(seen(&reports, "us-east"), None);
}

#[test]
fn a_report_from_an_unlisted_location_changes_nothing() {
    let listed = [
        ("eu-west", timeout(), s(0)),
        ("us-east", ok(), s(0)),
        ("ap-south", ok(), s(0)),
    ];
    let mut with_mars = listed.to_vec();
    with_mars.push(("mars", timeout(), s(0)));
    assert_eq!(judge(2, &listed, s(1)), judge(2, &with_mars, s(1)));
    assert_eq!(judge(2, &with_mars, s(1)).locations.len(), 3);
}
