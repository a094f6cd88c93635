//! The registry's rendering of check series, and the series of a check removed while one of its
//! runs is reporting.

use std::{
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use super::*;
use crate::{
    api::{HealthCheckStatus, Reason},
    probe::Outcome,
    runner::{CheckInfo, Plan, Registration, RunnerSpec, Schedule, Scheduler, SchedulerConfig},
};

fn spec() -> RunnerSpec {
    let key = CheckKey {
        namespace: "shop".into(),
        name: "api".into(),
    };
    let plan = Plan::Blocked {
        reason: Reason::InvalidSpec,
        message: String::new(),
    };
    let mut spec = RunnerSpec::new(
        key,
        Schedule::every(Duration::from_secs(1), Duration::ZERO),
        plan,
    );
    spec.info = Arc::new(CheckInfo {
        kind: "http",
        target: "https://api.shop/healthz".into(),
        labels: [("team".to_string(), "payments".to_string())].into(),
        ..CheckInfo::default()
    });
    spec
}

fn report(metrics: &Metrics, spec: &RunnerSpec, reason: Reason) {
    report_of(metrics, spec, reason, &Arc::default());
}

fn report_of(
    metrics: &Metrics,
    spec: &RunnerSpec,
    reason: Reason,
    registration: &Arc<Registration>,
) {
    let outcome = Outcome::not_run(reason, "");
    let status = HealthCheckStatus {
        consecutive_failures: 4,
        ..HealthCheckStatus::default()
    };
    let report = RunReport {
        in_maintenance: true,
        ..RunReport::of(spec, &outcome, &status, registration)
    };
    metrics.on_run(&report);
}

#[test]
fn info_names_the_target_and_allow_listed_labels_and_a_check_that_does_not_run_has_no_verdict() {
    let metrics = Metrics::with_label_allowlist(&["team".into()]).unwrap();
    let spec = spec();
    report(&metrics, &spec, Reason::UnexpectedStatus);
    let text = metrics.render().unwrap();
    for series in [
        r#"canary_check_info{kind="http",name="api",namespace="shop",target="https://api.shop/healthz",team="payments"} 1"#,
        r#"canary_check_success{name="api",namespace="shop"} 0"#,
        r#"canary_check_consecutive_failures{name="api",namespace="shop"} 4"#,
        r#"canary_check_in_maintenance{name="api",namespace="shop"} 1"#,
        "canary_build_info{revision=",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    report(&metrics, &spec, Reason::Suspended);
    let text = metrics.render().unwrap();
    assert!(
        !text.contains("canary_check_success{"),
        "a suspended check has no verdict"
    );
    assert!(!text.contains(r#"reason="Suspended""#), "nor a failed run");
    metrics.forget(&spec.key);
    assert!(!metrics.render().unwrap().contains("canary_check_info{"));
}

#[test]
fn a_pending_heartbeat_check_has_no_verdict_and_its_verdicts_no_latency() {
    let metrics = Metrics::new().unwrap();
    let spec = spec();
    report(&metrics, &spec, Reason::Pending);
    let text = metrics.render().unwrap();
    assert!(
        !text.contains("canary_check_success{"),
        "Pending is no verdict:\n{text}"
    );
    assert!(!text.contains(r#"reason="Pending""#), "nor a failed run");
    let mut outcome = Outcome::not_run(Reason::HeartbeatMissed, "");
    outcome.facts.kind = crate::probe::KindFacts::Heartbeat { last_ping: None };
    let status = HealthCheckStatus::default();
    metrics.on_run(&RunReport::of(&spec, &outcome, &status, &Arc::default()));
    let text = metrics.render().unwrap();
    assert!(text.contains(r#"canary_check_success{name="api",namespace="shop"} 0"#));
    assert!(
        !text.contains("canary_check_duration_seconds_count{"),
        "{text}"
    );
}

fn has_series(metrics: &Metrics) -> bool {
    metrics.render().unwrap().contains(r#"name="api""#)
}

#[test]
fn a_replaced_runners_late_report_counts_in_no_series() {
    let metrics = Metrics::new().unwrap();
    let spec = spec();
    let old = Arc::new(Registration::default());
    let new = Arc::new(old.supersede());
    report_of(&metrics, &spec, Reason::ConnectionRefused, &old);
    assert!(
        !has_series(&metrics),
        "the replaced runner's run was counted"
    );
    report_of(&metrics, &spec, Reason::Succeeded, &new);
    assert!(has_series(&metrics));
}

#[test]
fn a_run_reported_after_its_check_was_removed_brings_no_series_back() {
    let metrics = Metrics::new().unwrap();
    let spec = spec();
    let removed = Arc::new(Registration::default());
    report_of(&metrics, &spec, Reason::Succeeded, &removed);
    assert!(has_series(&metrics));
    // What Scheduler::remove does, then the late report of a run already past its awaits.
    removed.end();
    metrics.on_remove(&spec.key);
    report_of(&metrics, &spec, Reason::Succeeded, &removed);
    assert!(!has_series(&metrics), "a removed check's series came back");
    let added_again = Arc::default();
    report_of(&metrics, &spec, Reason::Succeeded, &added_again);
    assert!(has_series(&metrics), "the check added again has no series");
}

/// Holds each run at the first sink until the test opens it, and says it arrived.
struct Gate {
    arrived: mpsc::Sender<()>,
    open: Mutex<mpsc::Receiver<()>>,
}

impl Sink for Gate {
    fn on_run(&self, _: &RunReport<'_>) {
        self.arrived.send(()).unwrap();
        let open = self.open.lock().unwrap();
        open.recv_timeout(Duration::from_secs(10)).unwrap();
    }

    fn on_remove(&self, _: &CheckKey) {}
}

/// Says a run went through every sink before it.
struct Passed(mpsc::Sender<()>);

impl Sink for Passed {
    fn on_run(&self, _: &RunReport<'_>) {
        self.0.send(()).unwrap();
    }

    fn on_remove(&self, _: &CheckKey) {}
}

/// A scheduler whose runs stop at a gate before the metrics sink, on a runtime of one
/// worker thread, so a test decides what happens while a run is reporting.
struct Gated {
    scheduler: Scheduler,
    metrics: Arc<Metrics>,
    arrivals: mpsc::Receiver<()>,
    open: mpsc::Sender<()>,
    passes: mpsc::Receiver<()>,
    runtime: tokio::runtime::Runtime,
}

impl Gated {
    fn new() -> Self {
        let runtime = (tokio::runtime::Builder::new_multi_thread().worker_threads(1))
            .enable_all()
            .build()
            .unwrap();
        let (arrived, arrivals) = mpsc::channel();
        let (open, opened) = mpsc::channel();
        let (passed, passes) = mpsc::channel();
        let metrics = Arc::new(Metrics::new().unwrap());
        let gate = Gate {
            arrived,
            open: Mutex::new(opened),
        };
        let sinks: Vec<Arc<dyn Sink>> =
            vec![Arc::new(gate), metrics.clone(), Arc::new(Passed(passed))];
        let scheduler = Scheduler::new(SchedulerConfig::default(), sinks);
        Self {
            scheduler,
            metrics,
            arrivals,
            open,
            passes,
            runtime,
        }
    }

    /// Starts a runner of a blocked check: it reports at once, from its task on the
    /// worker thread, and that report waits at the gate, past its last await.
    fn start(&self, revision: u64) {
        let _runtime = self.runtime.enter();
        self.scheduler.upsert(RunnerSpec { revision, ..spec() });
    }

    fn arrived(&self) {
        self.arrivals.recv_timeout(Duration::from_secs(10)).unwrap();
    }

    /// Lets the waiting report through every sink.
    fn let_through(&self) {
        self.open.send(()).unwrap();
        self.passes.recv_timeout(Duration::from_secs(10)).unwrap();
    }
}

#[test]
fn a_run_reporting_while_its_check_is_removed_leaves_no_series() {
    let gated = Gated::new();
    gated.start(0);
    gated.arrived();
    assert!(gated.scheduler.remove(&spec().key));
    gated.let_through();
    assert!(
        !has_series(&gated.metrics),
        "a removed check's series came back"
    );
    gated.start(0);
    gated.arrived();
    gated.let_through();
    assert!(
        has_series(&gated.metrics),
        "the check added again has no series"
    );
}

#[test]
fn a_run_of_a_replaced_runner_reporting_while_its_check_is_removed_leaves_no_series() {
    let gated = Gated::new();
    gated.start(0);
    gated.arrived();
    // The replacement never runs: the one worker thread is held at the gate until after
    // the removal aborted it.
    gated.start(1);
    assert!(gated.scheduler.remove(&spec().key));
    gated.let_through();
    assert!(
        !has_series(&gated.metrics),
        "a removed check's series came back"
    );
}

/// A status as the previous owner (or the previous process) left it: failing 3 times in a row.
fn failing_status() -> HealthCheckStatus {
    let time = |s| {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            jiff::Timestamp::from_second(s).unwrap(),
        )
    };
    HealthCheckStatus {
        consecutive_failures: 3,
        last_run_time: Some(time(1_800_000_100)),
        last_success_time: Some(time(1_800_000_000)),
        last_result: Some(Box::new(crate::api::LastResult::new(
            false,
            Reason::Timeout,
            String::new(),
            "2s".into(),
        ))),
        ..HealthCheckStatus::default()
    }
}

#[test]
fn a_check_starting_here_shows_its_last_state_from_status_until_its_first_run() {
    let metrics = Metrics::new().unwrap();
    let spec = spec();
    let mut status = failing_status();
    metrics.on_start(&spec, &status, &Registration::default());
    let text = metrics.render().unwrap();
    for series in [
        r#"canary_check_success{name="api",namespace="shop"} 0"#,
        r#"canary_check_consecutive_failures{name="api",namespace="shop"} 3"#,
        r#"canary_check_last_run_timestamp_seconds{name="api",namespace="shop"} 1800000100"#,
        r#"canary_check_last_success_timestamp_seconds{name="api",namespace="shop"} 1800000000"#,
        r#"canary_check_in_maintenance{name="api",namespace="shop"} 0"#,
        r#"canary_check_info{kind="http",name="api",namespace="shop",target="https://api.shop/healthz"} 1"#,
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    assert!(
        !text.contains("canary_check_runs_total{"),
        "no run is counted that did not happen here"
    );
    // A run reported first is not overwritten by a late start; a removed check is not seeded.
    let ran = Metrics::new().unwrap();
    report(&ran, &spec, Reason::UnexpectedStatus);
    status.consecutive_failures = 9;
    ran.on_start(&spec, &status, &Registration::default());
    let text = ran.render().unwrap();
    assert!(text.contains(r#"canary_check_consecutive_failures{name="api",namespace="shop"} 4"#));
    let removed = Arc::new(Registration::default());
    removed.end();
    let fresh = Metrics::new().unwrap();
    fresh.on_start(&spec, &status, &removed);
    assert!(!fresh.render().unwrap().contains("canary_check_success{"));
}

#[test]
fn a_status_without_a_verdict_seeds_nothing() {
    let metrics = Metrics::new().unwrap();
    let spec = spec();
    metrics.on_start(
        &spec,
        &HealthCheckStatus::default(),
        &Registration::default(),
    );
    let mut status = failing_status();
    if let Some(last) = status.last_result.as_mut() {
        last.reason = Reason::Suspended;
    }
    metrics.on_start(&spec, &status, &Registration::default());
    assert!(!metrics.render().unwrap().contains("canary_check_success{"));
}

#[test]
fn a_location_labels_every_metric() {
    let metrics = Metrics::with_labels(&[], Some("eu-west")).unwrap();
    report(&metrics, &spec(), Reason::UnexpectedStatus);
    let text = metrics.render().unwrap();
    let samples: Vec<&str> = (text.lines())
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(samples.len() > 10, "{text}");
    for sample in samples {
        assert!(sample.contains(r#"location="eu-west""#), "{sample}");
    }
    let without = Metrics::with_label_allowlist(&[])
        .unwrap()
        .render()
        .unwrap();
    assert!(!without.contains("location="), "no label unless set");
}
