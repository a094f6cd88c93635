//! The contract between the scheduler and what receives its runs (metrics, the status writer,
//! Events, logs): a [`RunReport`] per completed run, a [`Registration`] that tells a late report
//! from a live one, and the per-tick [`Summary`].

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use super::{CheckKey, RunnerSpec, StateCounts};
use crate::{api::HealthCheckStatus, probe::Outcome, readiness::Transition};

/// One completed run, as sinks see it.
pub struct RunReport<'a> {
    pub key: &'a CheckKey,
    pub spec: &'a RunnerSpec,
    pub outcome: &'a Outcome,
    pub previous: &'a HealthCheckStatus,
    pub status: &'a HealthCheckStatus,
    /// The change of Ready this run made, decided once by [`crate::readiness::next_status`].
    pub transition: Option<&'a Transition>,
    /// Actual start minus due time (including the slot wait).
    pub lag: Duration,
    /// Time spent waiting for a probe slot.
    pub slot_wait: Duration,
    /// The run fell in a maintenance window.
    pub in_maintenance: bool,
    /// Ticks skipped after this run because it overran its interval.
    pub skipped: u64,
    /// The check's registration: a sink keeping per-check state drops the report once it is
    /// removed (see [`Registration`]).
    pub registration: &'a Arc<Registration>,
}

#[cfg(test)]
impl<'a> RunReport<'a> {
    /// A report of `outcome` that leaves `status` as it was, on time (tests of sinks).
    pub(crate) fn of(
        spec: &'a RunnerSpec,
        outcome: &'a crate::probe::Outcome,
        status: &'a HealthCheckStatus,
        registration: &'a Arc<Registration>,
    ) -> Self {
        Self {
            key: &spec.key,
            spec,
            outcome,
            previous: status,
            status,
            transition: None,
            lag: Duration::ZERO,
            slot_wait: Duration::ZERO,
            in_maintenance: false,
            skipped: 0,
            registration,
        }
    }
}

/// One runner's registration: the check's, from its first [`super::Scheduler::upsert`] to
/// its [`super::Scheduler::remove`] (shared by runners replacing one another; a check added
/// again gets a new one), and the runner's own, ended when a new runner replaces it.
///
/// Removal or replacement cannot stop a run that is already reporting: abort takes effect at
/// the runner's next `.await`, and the report calls the sinks synchronously on its own thread,
/// possibly after [`Sink::on_remove`] or after the new runner's first report. So a sink that
/// keeps per-check state checks [`Registration::live`] under the lock under which it records
/// and forgets that state: `remove` ends the registration before it calls `on_remove`, and
/// `upsert` supersedes the old runner's before the new runner starts, so the order in which
/// the two take that lock decides (a run recorded first is then forgotten or overwritten, a
/// run arriving after is dropped), not thread timing. A replaced runner's late report can thus
/// never overwrite the new runner's `Reconciling` status or count in its metrics. Holding the
/// runner's state lock across the sinks instead would block the watchdog behind a wedged
/// sink; and unlike a tombstone per removed key, the flags go with their runners.
#[derive(Debug, Default)]
pub struct Registration {
    /// The check was removed (shared by every runner of one registration).
    removed: Arc<AtomicBool>,
    /// This runner was replaced by another.
    superseded: AtomicBool,
}

impl Registration {
    /// Whether the check was removed (its sinks told, or about to be told, `on_remove`): a
    /// write queued for it is dropped.
    pub fn removed(&self) -> bool {
        self.removed.load(Ordering::SeqCst)
    }

    /// Whether this runner still reports for its check: neither removed nor replaced. A sink
    /// drops a report whose registration is not live.
    pub fn live(&self) -> bool {
        !self.removed() && !self.superseded.load(Ordering::SeqCst)
    }

    /// Ends the registration; called before any sink hears `on_remove`.
    pub(crate) fn end(&self) {
        self.removed.store(true, Ordering::SeqCst);
    }

    /// The registration of the runner replacing this one: this runner's reports are dropped
    /// from now on; the check's removal still ends both.
    pub(crate) fn supersede(&self) -> Self {
        self.superseded.store(true, Ordering::SeqCst);
        Self {
            removed: self.removed.clone(),
            superseded: AtomicBool::new(false),
        }
    }
}

/// Receives every run (metrics, status writer, event recorder, logs). Must not block.
pub trait Sink: Send + Sync {
    /// One completed run. It may arrive after `on_remove` of its check, or after its runner
    /// was replaced: a sink keeping per-check state drops it under its own lock unless
    /// [`Registration::live`].
    fn on_run(&self, report: &RunReport<'_>);
    /// The check is gone from this scheduler: forget its state.
    fn on_remove(&self, key: &CheckKey);
    /// A check this scheduler did not hold starts running (a new object, a restart, a check
    /// moved here from another replica): a sink may show the last state its status records
    /// until the first run reports, so a failing check's alert does not lose its sample.
    /// `resumed` is that status (the runner's spec no longer holds it: see
    /// [`super::Scheduler::upsert`]).
    fn on_start(
        &self,
        _spec: &RunnerSpec,
        _resumed: &HealthCheckStatus,
        _registration: &Registration,
    ) {
    }
    /// Called every scheduler tick with the state of all checks.
    fn on_tick(&self, _summary: &Summary) {}
}

/// Counts of checks by state, how many are stalled or late, and the probe slots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub states: StateCounts,
    /// Active checks the watchdog judges stalled (see [`WatchdogConfig`]).
    pub overdue: usize,
    /// Checks due for more than [`LATE_AFTER`] and not started yet (waiting for a slot).
    pub late: usize,
    pub slots_in_use: usize,
    pub slots_max: usize,
}
