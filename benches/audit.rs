//! The self-audit's cost: CHECKS (10,000) registered checks at a 1 h interval (none runs during
//! the measurement), audited AUDITS (50) times against a source that expects every one of them;
//! prints the time of one audit and its cost per check. Run: `cargo bench --bench audit`.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use canary_operator::{
    api::{Reason, validate},
    probe::Outcome,
    runner::{
        Audit, AuditMetrics, CheckKey, Expectations, Expected, Plan, Prober, RunnerSpec, Schedule,
        Scheduler, SchedulerConfig,
    },
};
use canary_test_harness::{env_or, refs::spec};
use futures::future::BoxFuture;
use prometheus::{IntCounterVec, IntGauge, Opts};
use serde_json::json;

/// Never called: the interval is an hour.
struct Idle;

impl Prober for Idle {
    fn probe(&self) -> BoxFuture<'_, Outcome> {
        Box::pin(async { Outcome::not_run(Reason::Succeeded, "idle") })
    }
}

/// Expects every registered check, as the operator's index does for its own.
struct Everything {
    keys: BTreeSet<CheckKey>,
    probes: bool,
}

impl Expectations for Everything {
    fn with_expected(&self, judge: &mut dyn FnMut(&[Expected])) {
        let expected: Vec<Expected> = (self.keys.iter())
            .map(|key| Expected {
                key: key.clone(),
                probes: self.probes,
            })
            .collect();
        judge(&expected);
    }

    fn pending(&self, _: &CheckKey) -> bool {
        false
    }

    fn restore(&self, _: &CheckKey) {}
}

fn metrics() -> AuditMetrics {
    AuditMetrics {
        expected: IntGauge::new("expected", "e").unwrap(),
        unscheduled: IntGauge::new("unscheduled", "u").unwrap(),
        recovered: IntCounterVec::new(Opts::new("recovered", "r"), &["cause"]).unwrap(),
    }
}

#[tokio::main]
async fn main() {
    let checks: usize = env_or("CHECKS", 10_000);
    let audits: usize = env_or("AUDITS", 50);
    let scheduler = Scheduler::new(SchedulerConfig::default(), vec![]);
    let schedule = Schedule::every(Duration::from_secs(3600), Duration::from_secs(5));
    let probes = validate(&spec(json!({"tcp": {"host": "127.0.0.1", "port": 9}}))).is_ok();
    let mut keys = BTreeSet::new();
    for i in 0..checks {
        let key = CheckKey {
            namespace: format!("ns-{}", i % 20),
            name: format!("check-{i}"),
        };
        let plan = Plan::Run(Arc::new(Idle));
        scheduler.upsert(RunnerSpec::new(key.clone(), schedule.clone(), plan));
        keys.insert(key);
    }
    let audit = Audit::new(scheduler.clone(), metrics(), Duration::from_secs(30));
    audit.attach(Arc::new(Everything { keys, probes }));
    let mut times = Vec::with_capacity(audits);
    for _ in 0..audits {
        let started = Instant::now();
        let findings = audit.audit(tokio::time::Instant::now());
        times.push(started.elapsed());
        assert!(findings.is_empty(), "{findings:?}");
    }
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    let per_check = median.as_nanos() as f64 / checks as f64;
    println!(
        "audit of {checks} checks: median {median:?}, max {worst:?} ({per_check:.0} ns per check, {audits} audits)"
    );
}
