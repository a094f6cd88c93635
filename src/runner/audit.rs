//! The self-audit, alerts for the alerts: every `--audit-interval` the checks a spec source
//! says should run here are compared with the scheduler's runners. The watchdog judges the
//! runners that exist; this finds the checks that lost theirs (a bookkeeping slip, a late
//! report, a relist gone wrong), which nothing else could see: no runner means no series, no
//! status change and no overdue check.
//!
//! A finding is recovered at once (a missing runner rebuilt by the source, a runner that stopped
//! advancing restarted, a runner of a check that should not run here stopped), logged at ERROR
//! and counted (`canary_checks_recovered_total{cause}`). The same check found again at the next
//! audit means the recovery did not take: `/healthz` fails naming it, so the kubelet restarts
//! the process.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use prometheus::{IntCounterVec, IntGauge};
use tokio::time::Instant;

use super::{Scheduler, Vital};
use crate::{
    api::{CheckKey, HealthCheckSpec, fmt_go, validate},
    lock,
};

/// A check a spec source wants running here, with no work pending on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub key: CheckKey,
    /// Whether it should be probing (valid and not suspended), not only reporting.
    pub probes: bool,
}

/// What a spec source (the controller, the files) says should run here.
pub trait Expectations: Send + Sync {
    /// Calls `judge` with the checks that should have a runner now, under the source's lock,
    /// so that no start or stop lands while the runners are compared. Checks with work
    /// pending (a start in progress) are left out.
    fn with_expected(&self, judge: &mut dyn FnMut(&[Expected]));
    /// Whether `key` has work pending (a runner without an expectation is then not stray).
    fn pending(&self, key: &CheckKey) -> bool;
    /// Builds the runner of `key` again (it was found missing), if it still runs here. Called
    /// outside [`Expectations::with_expected`].
    fn restore(&self, key: &CheckKey);
}

/// Whether a spec, once built, probes: valid and not suspended (references are judged by
/// the runner's plan).
pub fn probes(spec: &HealthCheckSpec) -> bool {
    probes_when(spec, validate(spec).is_ok())
}

/// [`probes`] with the spec's validation already made.
pub fn probes_when(spec: &HealthCheckSpec, valid: bool) -> bool {
    !spec.suspend && valid
}

/// Why the audit acted on a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cause {
    /// It should run here and has no runner.
    MissingRunner,
    /// Its runner is neither queued nor running and has not completed a run for longer than
    /// interval + timeout + `--stall-grace` (or its task ended).
    NotAdvancing,
    /// A runner of a check that should not run here (it would probe twice, or for nothing).
    StrayRunner,
}

impl Cause {
    /// The `cause` label.
    pub fn label(self) -> &'static str {
        match self {
            Self::MissingRunner => "missing_runner",
            Self::NotAdvancing => "not_advancing",
            Self::StrayRunner => "stray_runner",
        }
    }

    /// Every cause, for the metric's series.
    pub const ALL: [Self; 3] = [Self::MissingRunner, Self::NotAdvancing, Self::StrayRunner];
}

/// The audit's own metric families.
#[derive(Clone)]
pub struct AuditMetrics {
    /// `canary_checks_expected`: checks this replica should be probing.
    pub expected: IntGauge,
    /// `canary_checks_unscheduled`: found without a working runner at the last audit.
    pub unscheduled: IntGauge,
    /// `canary_checks_recovered_total{cause}`.
    pub recovered: IntCounterVec,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub cause: Cause,
    /// What was seen, for the log line.
    pub detail: String,
}

/// The audit of one scheduler against one spec source.
pub struct Audit {
    scheduler: Scheduler,
    /// Attached by the spec source once it exists (it needs the scheduler first).
    source: OnceLock<Arc<dyn Expectations>>,
    metrics: AuditMetrics,
    grace: Duration,
    /// Findings of the last audit, and those found twice in a row (recovery did not take).
    state: Mutex<AuditState>,
}

#[derive(Debug, Default)]
struct AuditState {
    last: BTreeMap<CheckKey, Finding>,
    unrecovered: BTreeMap<CheckKey, Finding>,
}

impl Audit {
    /// An audit of `scheduler`, against the source [`Audit::attach`]ed later; `grace` is
    /// `--stall-grace`.
    pub fn new(scheduler: Scheduler, metrics: AuditMetrics, grace: Duration) -> Self {
        for cause in Cause::ALL {
            metrics.recovered.with_label_values(&[cause.label()]);
        }
        Self {
            scheduler,
            source: OnceLock::new(),
            metrics,
            grace,
            state: Mutex::new(AuditState::default()),
        }
    }

    /// Audits against `source` from now on (the first source attached stays).
    pub fn attach(&self, source: Arc<dyn Expectations>) {
        let _ = self.source.set(source);
    }

    /// Audits every `interval`, forever (the first audit one interval after the start).
    pub async fn run(self: Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.audit(Instant::now());
        }
    }

    /// One audit at `now`: findings recovered, logged and counted; returns them.
    pub fn audit(&self, now: Instant) -> BTreeMap<CheckKey, Finding> {
        let mut findings = BTreeMap::new();
        let Some(source) = self.source.get() else {
            return findings;
        };
        let mut expected_probing = 0;
        let scheduler = &self.scheduler;
        source.with_expected(&mut |expected| {
            let wanted: HashSet<&CheckKey> = expected.iter().map(|e| &e.key).collect();
            for check in expected {
                expected_probing += usize::from(check.probes);
                if let Some(finding) = self.judge(&check.key, now) {
                    findings.insert(check.key.clone(), finding);
                }
            }
            for key in scheduler.keys() {
                if !wanted.contains(&key) && !source.pending(&key) {
                    let detail = "runs here but should not".to_string();
                    let cause = Cause::StrayRunner;
                    findings.insert(key, Finding { cause, detail });
                }
            }
            // Stopped and restarted under the source's lock, so no start or stop of the source
            // interleaves; missing runners are rebuilt by the source after it, which checks
            // again that each still runs here.
            for (key, finding) in &findings {
                self.recover(key, finding.cause);
            }
        });
        for (key, finding) in &findings {
            if finding.cause == Cause::MissingRunner {
                source.restore(key);
            }
        }
        self.record(&findings, expected_probing);
        findings
    }

    /// Why `key`, expected to run, has no working runner, if it has none.
    fn judge(&self, key: &CheckKey, now: Instant) -> Option<Finding> {
        let detail = match self.scheduler.advancing(key, now, self.grace) {
            None => "should run here and has no runner".to_string(),
            Some(Ok(())) => return None,
            Some(Err(why)) => why,
        };
        let cause = match self.scheduler.contains(key) {
            false => Cause::MissingRunner,
            true => Cause::NotAdvancing,
        };
        Some(Finding { cause, detail })
    }

    fn recover(&self, key: &CheckKey, cause: Cause) {
        match cause {
            Cause::MissingRunner => {}
            Cause::NotAdvancing => {
                self.scheduler.restart(key);
            }
            Cause::StrayRunner => {
                self.scheduler.remove(key);
            }
        }
    }

    /// Logs and counts the findings; those found at the previous audit too did not recover.
    fn record(&self, findings: &BTreeMap<CheckKey, Finding>, expected: usize) {
        let mut state = lock(&self.state);
        for (key, finding) in findings {
            let cause = finding.cause.label();
            let again = state.last.contains_key(key);
            tracing::error!(check = %key, cause, detail = %finding.detail, again, "self-audit: a check was not running; recovered");
            (self.metrics.recovered).with_label_values(&[cause]).inc();
        }
        state.unrecovered = (findings.iter())
            .filter(|(key, _)| state.last.contains_key(*key))
            .map(|(key, finding)| (key.clone(), finding.clone()))
            .collect();
        state.last = findings.clone();
        self.metrics.expected.set(expected as i64);
        self.metrics.unscheduled.set(findings.len() as i64);
    }
}

impl Vital for Audit {
    fn problems(&self, _now: Instant) -> Vec<String> {
        let state = lock(&self.state);
        (state.unrecovered.iter())
            .map(|(key, finding)| {
                format!(
                    "check {key} was found not running at two audits in a row ({}: {}): recovery did not take",
                    finding.cause.label(),
                    finding.detail
                )
            })
            .collect()
    }
}

/// How long a runner may go without completing a cycle before the audit calls it stuck.
pub(super) fn advancing_limit(interval: Duration, timeout: Duration, grace: Duration) -> Duration {
    interval + timeout + grace
}

/// The message for a runner that has not completed a cycle for `idle`.
pub(super) fn not_advancing(idle: Duration, limit: Duration) -> String {
    format!(
        "is neither queued nor running and has not completed a run for {} (limit {})",
        fmt_go(idle),
        fmt_go(limit)
    )
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
