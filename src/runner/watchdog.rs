//! The watchdog's verdict, computed from runner state under std locks so the admin thread can
//! answer even when the main runtime is wedged.
//!
//! Stalled means the engine stopped, not that targets are slow or slots are short: a check
//! waiting for a probe slot is fine while the queue moves (every probe ends by its deadline,
//! so slots come free); the engine is stalled when a started run outlives its timeout, the slot
//! queue stops moving, the scheduler loop stops ticking, or runs keep ending in the prober's own
//! errors. A check overdue while not queued (its runner did not wake) is counted as overdue and
//! left to the self-audit, which restarts it ([`super::audit`]); it fails `/healthz` itself only
//! when the scheduler loop stopped too (the audit runs on that runtime). Capacity
//! shortage is measured (`canary_probe_slot_wait_seconds`, `canary_checks_late`) and alerted,
//! never answered with a restart.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::{LATE_AFTER, RunPhase, RunnerState, Shared, StateCounts};
use crate::{api::fmt_go, lock};

/// Watchdog thresholds beyond the per-check rules.
#[derive(Debug, Clone)]
pub struct WatchdogConfig {
    /// The scheduler loop must tick at least this often.
    pub tick_threshold: Duration,
}

/// A part of the service beyond the scheduler that `/healthz` and `/readyz` judge (the status
/// writer, the HealthCheck watch). Read from the admin thread, so it must not block.
pub trait Vital: Send + Sync {
    /// What is stuck, if anything (each line fails `/healthz`).
    fn problems(&self, now: Instant) -> Vec<String>;
    /// Why the service should not receive traffic, if it should not (fails `/readyz`).
    fn not_ready(&self, _now: Instant) -> Option<String> {
        None
    }
    /// Why the checks are not loaded yet, if this part knows (`/readyz` says it until then).
    fn not_synced(&self) -> Option<String> {
        None
    }
}

/// What `/healthz` answers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Health {
    pub healthy: bool,
    pub checks: usize,
    pub active: usize,
    /// Checks by state, in the names the metrics and the page use.
    pub states: StateCounts,
    /// What is stuck, naming checks; empty when healthy.
    pub problems: Vec<String>,
}

/// How one runner is stalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Stall {
    /// Past its due time and not queued: its task did not wake. Counted as overdue; the
    /// self-audit restarts it (see [`super::audit`]), and `/healthz` fails only if that does
    /// not take, or when the scheduler loop stopped ticking too (the runtime that runs the
    /// audit is wedged: nothing there can restart it).
    NotWoken(String),
    /// A run outlived its timeout, or every run ends in ProberError: `/healthz` fails.
    Stuck(String),
}

impl Stall {
    /// Whether `/healthz` fails for it at once.
    fn fails_healthz(&self) -> bool {
        matches!(self, Self::Stuck(_))
    }

    fn message(&self) -> &str {
        match self {
            Self::NotWoken(why) | Self::Stuck(why) => why,
        }
    }
}

/// Why one runner is stalled, if it is (`grace` is the operator's `--stall-grace`).
pub(super) fn stalled(state: &RunnerState, now: Instant, grace: Duration) -> Option<Stall> {
    if !state.active {
        return None;
    }
    let since = |at: Instant| now.saturating_duration_since(at);
    match state.phase {
        RunPhase::Idle if since(state.next_due) > grace => Some(Stall::NotWoken(format!(
            "is {} past its due time and not queued: its runner did not wake",
            fmt_go(since(state.next_due))
        ))),
        RunPhase::Running { since: started } if since(started) > state.timeout + grace => {
            Some(Stall::Stuck(format!(
                "has a run that started {} ago, past its timeout {} + grace {}",
                fmt_go(since(started)),
                fmt_go(state.timeout),
                fmt_go(grace)
            )))
        }
        _ if state.prober_failing
            && since(state.last_progress) > state.interval + state.timeout + grace =>
        {
            Some(Stall::Stuck(format!(
                "has not completed a run for {}: every run ends in ProberError",
                fmt_go(since(state.last_progress))
            )))
        }
        _ => None,
    }
}

/// Whether a runner is due for longer than [`LATE_AFTER`] without having started.
pub(super) fn late(state: &RunnerState, now: Instant) -> bool {
    match state.phase {
        RunPhase::Queued { since } => now.saturating_duration_since(since) > LATE_AFTER,
        RunPhase::Idle => {
            state.active && now.saturating_duration_since(state.next_due) > LATE_AFTER
        }
        RunPhase::Running { .. } => false,
    }
}

pub(super) fn assess(shared: &Shared, now: Instant, config: &WatchdogConfig) -> Health {
    let grace = shared.config.stall_grace;
    let mut problems = Vec::new();
    let since_tick = now.saturating_duration_since(*lock(&shared.last_tick));
    // A wedged runtime wedges the self-audit too: then runners that did not wake are named here.
    let wedged = since_tick > config.tick_threshold;
    if wedged {
        problems.push(format!(
            "scheduler loop has not ticked for {} (threshold {})",
            fmt_go(since_tick),
            fmt_go(config.tick_threshold)
        ));
    }
    let (mut checks, mut active, mut longest_timeout) = (0, 0, Duration::ZERO);
    let (mut stalled_checks, mut states) = (Vec::new(), StateCounts::default());
    for (key, handle) in lock(&shared.runners).iter() {
        checks += 1;
        let state = lock(&handle.state);
        states.add(state.check_state());
        if state.active {
            active += 1;
            longest_timeout = longest_timeout.max(state.timeout);
        }
        if let Some(stall) = stalled(&state, now, grace).filter(|s| wedged || s.fails_healthz()) {
            stalled_checks.push(format!("check {key} {}", stall.message()));
        }
    }
    stalled_checks.sort();
    problems.extend(stalled_checks);
    problems.extend(queue_stall(shared, now, longest_timeout + grace));
    let recent = lock(&shared.recent);
    let streak = shared.config.prober_error_streak.max(1);
    if recent.len() >= streak && recent.iter().all(|e| *e) {
        problems.push(format!(
            "the last {streak} runs ended in ProberError: the prober itself is failing (descriptors or memory)"
        ));
    }
    Health {
        healthy: problems.is_empty(),
        checks,
        active,
        states,
        problems,
    }
}

/// Checks wait for slots, yet their queue did not move for longer than any probe may run (a
/// namespace holding slots got none back; one holding none saw no slot come free anywhere).
/// Slots kept free as another namespace's headroom do not count as movement.
fn queue_stall(shared: &Shared, now: Instant, limit: Duration) -> Option<String> {
    let usage = shared.slots.usage();
    let still = now.saturating_duration_since(usage.moved?);
    (still > limit).then(|| {
        format!(
            "the probe-slot queue has not moved for {} with {} checks waiting and {} of {} slots in use",
            fmt_go(still),
            usage.waiting,
            usage.in_use,
            usage.capacity
        )
    })
}
