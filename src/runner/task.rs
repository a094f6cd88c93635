//! One runner: wait for the due time, take a slot under the global bound, probe, decide the
//! next status, tell the sinks, and schedule the next run without ever stacking runs.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

use super::{
    Plan, Registration, RunPhase, RunReport, RunnerSpec, RunnerState, Shared, jitter, phase,
};
use crate::lock;
use crate::{
    api::Reason,
    probe::Outcome,
    readiness::{StatusInputs, next_status},
};

/// What one runner task owns: its spec, its state shared with the watchdog, and the check's
/// registration, which its reports carry to the sinks.
pub(super) struct Runner {
    pub spec: Arc<RunnerSpec>,
    pub state: Arc<Mutex<RunnerState>>,
    pub registration: Arc<Registration>,
}

/// The runner task; ends only when aborted (removal, replacement, shutdown). `stall`: a fault
/// injected for the audit's tests, the task never wakes. Heartbeat and CronJob runners are
/// boxed futures of their own: inline, they made every runner's task 824 bytes instead of 368
/// (the largest state sets the size of all).
pub(super) async fn run(shared: Arc<Shared>, runner: Runner, wake: Arc<Notify>, stall: bool) {
    if stall {
        return std::future::pending().await;
    }
    let (spec, state) = (&runner.spec, &runner.state);
    let prober = match (&spec.plan, spec.schedule.suspend) {
        (Plan::Blocked { reason, message }, _) => {
            let outcome = Outcome::not_run(*reason, message.clone());
            report(&shared, &runner, outcome, Timing::default());
            return std::future::pending().await;
        }
        (Plan::Run(_) | Plan::Heartbeat(_) | Plan::CronJob(_), true) => {
            let outcome =
                Outcome::not_run(Reason::Suspended, "spec.suspend is true; probing is paused");
            report(&shared, &runner, outcome, Timing::default());
            return std::future::pending().await;
        }
        (Plan::Heartbeat(plan), false) => {
            let plan = plan.clone();
            return Box::pin(super::pings::run(shared, runner, wake, plan)).await;
        }
        (Plan::CronJob(plan), false) => {
            let plan = plan.clone();
            return Box::pin(super::cronjob::run(shared, runner, wake, plan)).await;
        }
        (Plan::Run(prober), false) => prober.clone(),
    };
    announce_new_generation(&shared, &runner);
    let slots =
        (shared.config.aligned).then(|| phase::Slots::new(spec.schedule.interval, jitter(spec)));
    loop {
        let mut due = lock(state).next_due;
        // A run-now request moves next_due up and wakes the runner.
        while Instant::now() < due {
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = wake.notified() => {}
            }
            due = lock(state).next_due;
        }
        if retired(&shared, due, slots.as_ref()) {
            return std::future::pending().await;
        }
        lock(state).phase = RunPhase::Queued {
            since: Instant::now(),
        };
        let (permit, slot_wait) = shared
            .slots
            .acquire(&spec.key.namespace, spec.schedule.interval)
            .await;
        let started = Instant::now();
        if gated(&shared, started) {
            // Not this replica's to probe for now: the run is skipped, not stacked.
            drop(permit);
            let mut state = lock(state);
            // A run-now waiting meanwhile is handled by the next run this replica starts.
            state.next_due = next_run(due, spec, slots.as_ref(), started).0;
            state.phase = RunPhase::Idle;
            state.last_cycle = started;
            continue;
        }
        let handled = {
            let mut state = lock(state);
            state.phase = RunPhase::Running { since: started };
            state.run_now.take(started)
        };
        let lag = started.saturating_duration_since(due);
        let outcome = prober.probe().await;
        drop(permit);
        let now = Instant::now();
        let (next_due, skipped) = next_run(due, spec, slots.as_ref(), now);
        {
            let mut state = lock(state);
            // A run-now asked while this run was in flight keeps its turn.
            state.next_due = (state.run_now.due()).map_or(next_due, |d| d.min(next_due));
            state.phase = RunPhase::Idle;
        }
        let timing = Timing {
            lag,
            slot_wait,
            skipped,
            handled,
        };
        report(&shared, &runner, outcome, timing);
    }
}

/// Whether a run due at `due` falls after the time this replica promised to stop by.
fn retired(shared: &Shared, due: Instant, slots: Option<&phase::Slots>) -> bool {
    let Some(limit) = *lock(&shared.retire_after) else {
        return false;
    };
    due_wall_ms(due, slots) > limit
}

/// The wall-clock time of a run due at `due`: on aligned schedules its exact slot (the instant
/// read back against the clocks is off by a millisecond or so, and a slot on the promise's edge
/// must be judged the same way here as by the replica taking over, which compares slots).
pub(super) fn due_wall_ms(due: Instant, slots: Option<&phase::Slots>) -> i64 {
    let wall_now = phase::unix_ms(jiff::Timestamp::now());
    let wall = phase::wall_of(due, Instant::now(), wall_now);
    slots.map_or(wall, |slots| slots.nearest(wall))
}

/// The next due time after a run due at `due` (on its wall-clock slot when aligned), and how
/// many ticks were skipped.
fn next_run(
    due: Instant,
    spec: &RunnerSpec,
    slots: Option<&phase::Slots>,
    now: Instant,
) -> (Instant, u64) {
    let (next_due, skipped) = next_due_after(due, spec.schedule.interval, now);
    match slots {
        Some(slots) => {
            let (now, wall_now) = phase::clocks();
            (phase::snap(slots, next_due, now, wall_now), skipped)
        }
        None => (next_due, skipped),
    }
}

/// Whether this replica must not judge now: it promised to stop by an earlier time (a
/// handover, [`super::Scheduler::retire`]) or cannot renew its share
/// ([`super::Scheduler::probe_until`]). A heartbeat runner then leaves its verdicts to the next
/// owner, which resumes from status.
pub(super) fn paused(shared: &Shared) -> bool {
    let retired = (*lock(&shared.retire_after))
        .is_some_and(|limit| phase::unix_ms(jiff::Timestamp::now()) > limit);
    retired || gated(shared, Instant::now())
}

/// Whether probes may not start at `now` (see [`super::Scheduler::probe_until`]).
fn gated(shared: &Shared, now: Instant) -> bool {
    (*lock(&shared.probe_until)).is_some_and(|until| now >= until)
}

/// Ready turns Unknown (Reconciling) with the new observedGeneration right away when an
/// established check's spec changed, so `kubectl wait` never reads the old verdict as the new.
fn announce_new_generation(shared: &Shared, runner: &Runner) {
    let (spec, state) = (&runner.spec, &runner.state);
    {
        let state = lock(state);
        let changed = spec.generation.is_some()
            && state.status.observed_generation.is_some()
            && state.status.observed_generation != spec.generation;
        if !changed || state.status.ready().is_none() {
            return;
        }
    }
    let message = format!(
        "generation {} is waiting for its first run",
        spec.generation.unwrap_or_default()
    );
    let outcome = Outcome::not_run(Reason::Reconciling, message);
    report(shared, runner, outcome, Timing::default());
}

/// The next due time after a run that was due at `due`, and how many ticks were skipped:
/// a run that overran its interval is followed by the next tick in the future, never a burst.
pub(super) fn next_due_after(due: Instant, interval: Duration, now: Instant) -> (Instant, u64) {
    let next = due + interval;
    if next > now {
        return (next, 0);
    }
    let behind = now.duration_since(next);
    let missed = u32::try_from(behind.as_nanos() / interval.as_nanos().max(1))
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    match interval
        .checked_mul(missed)
        .and_then(|ahead| next.checked_add(ahead))
    {
        Some(due) => (due, u64::from(missed)),
        None => (now + interval, u64::from(missed)),
    }
}

/// When a run started relative to its due time, ticks skipped after it, and the run-now value
/// it handled.
#[derive(Clone, Default)]
pub(super) struct Timing {
    lag: Duration,
    slot_wait: Duration,
    skipped: u64,
    handled: Option<String>,
}

pub(super) fn report(shared: &Shared, runner: &Runner, outcome: Outcome, timing: Timing) {
    let (spec, state) = (&*runner.spec, &*runner.state);
    let prober_error = outcome.reason == Reason::ProberError;
    let (previous, next) = {
        let mut state = lock(state);
        let previous = state.status.clone();
        let in_maintenance = spec.schedule.maintenance.contains(outcome.started_at);
        let inputs = StatusInputs {
            generation: spec.generation,
            failure_threshold: spec.schedule.failure_threshold.get(),
            success_threshold: spec.schedule.success_threshold.get(),
            next_run: Some(wall_clock(state.next_due)),
            settled: state.settled,
            in_maintenance,
        };
        let mut next = next_status(&previous, &outcome, inputs);
        let target = &spec.info.target;
        next.status.target = (!target.is_empty()).then(|| target.clone());
        next.status.probed_by.clone_from(&shared.config.probed_by);
        if let Some(handled) = timing.handled {
            next.status.last_handled_run_now = Some(handled);
        }
        state.settled = next.settled;
        state.in_maintenance = in_maintenance;
        if outcome.ran() {
            state.history.record(&outcome);
        }
        if let Some(every) = shared.config.history_every {
            let now = jiff::Timestamp::now().as_second();
            let every = i64::try_from(every.as_secs()).unwrap_or(i64::MAX);
            if let Some(stored) = state.history.store_due(now, every) {
                next.status.history = Some(stored);
            }
        }
        if let Some(transition) = &next.transition {
            state
                .history
                .transition(outcome.started_at.as_second(), transition);
        }
        state.status = next.status.clone();
        state.runs += 1;
        state.last_cycle = Instant::now();
        // The prober's own fault is not progress: a process out of descriptors must go overdue.
        state.prober_failing = prober_error;
        if !prober_error {
            state.last_progress = Instant::now();
        }
        (previous, next)
    };
    shared.note_outcome(prober_error);
    let report = RunReport {
        key: &spec.key,
        spec,
        outcome: &outcome,
        previous: &previous,
        status: &next.status,
        transition: next.transition.as_ref(),
        lag: timing.lag,
        slot_wait: timing.slot_wait,
        in_maintenance: lock(state).in_maintenance,
        skipped: timing.skipped,
        registration: &runner.registration,
    };
    for sink in &shared.sinks {
        sink.on_run(&report);
    }
}

/// Converts a monotonic due time into wall-clock time for status.
fn wall_clock(at: Instant) -> jiff::Timestamp {
    let now = Instant::now();
    let wall = jiff::Timestamp::now();
    let ahead = at.saturating_duration_since(now);
    wall.checked_add(ahead).unwrap_or(wall)
}

impl Shared {
    fn note_outcome(&self, prober_error: bool) {
        let mut recent = lock(&self.recent);
        recent.push_back(prober_error);
        while recent.len() > self.config.prober_error_streak.max(1) {
            recent.pop_front();
        }
    }
}
