//! The audit against a scripted source, on tokio's paused clock.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::future::BoxFuture;
use prometheus::{IntCounterVec, IntGauge, Opts};

use super::*;
use crate::{
    api::Reason,
    probe::Outcome,
    runner::{Plan, Prober, RunnerSpec, Schedule, SchedulerConfig},
};

const GRACE: Duration = Duration::from_secs(5);

fn key(name: &str) -> CheckKey {
    CheckKey {
        namespace: "a".into(),
        name: name.into(),
    }
}

/// Answers at once.
struct Instant0;

impl Prober for Instant0 {
    fn probe(&self) -> BoxFuture<'_, Outcome> {
        Box::pin(async { Outcome::not_run(Reason::Succeeded, "ok") })
    }
}

fn runner(name: &str) -> RunnerSpec {
    let schedule = Schedule::every(Duration::from_secs(10), Duration::from_secs(1));
    RunnerSpec::new(key(name), schedule, Plan::Run(Arc::new(Instant0)))
}

/// A source that expects `expected` and, when `restores`, rebuilds a missing runner.
struct Scripted {
    scheduler: Scheduler,
    expected: Mutex<BTreeSet<String>>,
    pending: Mutex<BTreeSet<String>>,
    restores: bool,
    restored: Mutex<Vec<String>>,
}

impl Expectations for Scripted {
    fn with_expected(&self, judge: &mut dyn FnMut(&[Expected])) {
        let expected: Vec<Expected> = (lock(&self.expected).iter())
            .filter(|name| !lock(&self.pending).contains(*name))
            .map(|name| Expected {
                key: key(name),
                probes: true,
            })
            .collect();
        judge(&expected);
    }

    fn pending(&self, key: &CheckKey) -> bool {
        lock(&self.pending).contains(&key.name)
    }

    fn restore(&self, key: &CheckKey) {
        lock(&self.restored).push(key.name.clone());
        if self.restores {
            self.scheduler.upsert(runner(&key.name));
        }
    }
}

fn metrics() -> AuditMetrics {
    AuditMetrics {
        expected: IntGauge::new("expected", "e").expect("gauge"),
        unscheduled: IntGauge::new("unscheduled", "u").expect("gauge"),
        recovered: IntCounterVec::new(Opts::new("recovered", "r"), &["cause"]).expect("counter"),
    }
}

fn audited(expected: &[&str], restores: bool) -> (Audit, Arc<Scripted>, AuditMetrics) {
    let scheduler = Scheduler::new(SchedulerConfig::default(), vec![]);
    let source = Arc::new(Scripted {
        scheduler: scheduler.clone(),
        expected: Mutex::new(expected.iter().map(|n| n.to_string()).collect()),
        pending: Mutex::default(),
        restores,
        restored: Mutex::default(),
    });
    let metrics = metrics();
    let audit = Audit::new(scheduler, metrics.clone(), GRACE);
    audit.attach(source.clone());
    (audit, source, metrics)
}

fn recovered(metrics: &AuditMetrics, cause: Cause) -> u64 {
    metrics.recovered.with_label_values(&[cause.label()]).get()
}

#[tokio::test(start_paused = true)]
async fn a_check_without_a_runner_is_rebuilt_counted_and_healthy_once_it_runs() {
    let (audit, source, metrics) = audited(&["c0", "c1"], true);
    source.scheduler.upsert(runner("c0"));
    let found = audit.audit(Instant::now());
    assert_eq!(
        found.keys().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["c1"]
    );
    assert_eq!(found[&key("c1")].cause, Cause::MissingRunner);
    assert_eq!(*lock(&source.restored), ["c1"]);
    assert!(source.scheduler.contains(&key("c1")), "restored");
    assert_eq!((metrics.expected.get(), metrics.unscheduled.get()), (2, 1));
    assert_eq!(recovered(&metrics, Cause::MissingRunner), 1);
    assert!(audit.audit(Instant::now()).is_empty());
    assert_eq!(metrics.unscheduled.get(), 0);
    assert!(audit.problems(Instant::now()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_recovery_that_does_not_take_fails_healthz_naming_the_check() {
    let (audit, _source, metrics) = audited(&["c0"], false);
    audit.audit(Instant::now());
    assert!(
        audit.problems(Instant::now()).is_empty(),
        "one chance first"
    );
    audit.audit(Instant::now());
    let problems = audit.problems(Instant::now());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("a/c0") && problems[0].contains("missing_runner"),
        "{problems:?}"
    );
    assert_eq!(recovered(&metrics, Cause::MissingRunner), 2);
}

#[tokio::test(start_paused = true)]
async fn a_runner_that_stopped_advancing_is_restarted_and_runs_again() {
    let (audit, source, metrics) = audited(&["c0"], true);
    let scheduler = &source.scheduler;
    scheduler.arm_fault(&key("c0"), false, false);
    scheduler.upsert(runner("c0"));
    // Within interval + timeout + grace (16 s) of its start it is not judged.
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert!(audit.audit(Instant::now()).is_empty());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let found = audit.audit(Instant::now());
    assert_eq!(
        found.get(&key("c0")).map(|f| f.cause),
        Some(Cause::NotAdvancing),
        "{found:?}"
    );
    assert_eq!(recovered(&metrics, Cause::NotAdvancing), 1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        scheduler.runs(&key("c0")),
        Some(1),
        "the restarted runner ran at once"
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(audit.audit(Instant::now()).is_empty(), "it advances now");
}

#[tokio::test(start_paused = true)]
async fn a_runner_of_a_check_that_should_not_run_here_is_stopped_unless_work_is_pending() {
    let (audit, source, metrics) = audited(&[], true);
    source.scheduler.upsert(runner("stray"));
    source.scheduler.upsert(runner("starting"));
    lock(&source.pending).insert("starting".into());
    let found = audit.audit(Instant::now());
    assert_eq!(
        found.keys().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["stray"]
    );
    assert!(!source.scheduler.contains(&key("stray")));
    assert!(source.scheduler.contains(&key("starting")));
    assert_eq!(recovered(&metrics, Cause::StrayRunner), 1);
}

#[tokio::test(start_paused = true)]
async fn a_check_with_work_pending_is_not_judged() {
    let (audit, source, metrics) = audited(&["c0"], true);
    lock(&source.pending).insert("c0".into());
    assert!(audit.audit(Instant::now()).is_empty());
    assert_eq!(metrics.expected.get(), 0);
}
