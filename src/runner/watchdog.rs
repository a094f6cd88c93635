//! The watchdog's verdict, computed from runner state under std locks so the admin thread can
//! answer even when the main runtime is wedged.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::Shared;
use crate::api::fmt_go;
use crate::lock;

/// Watchdog thresholds beyond the per-check stall threshold.
#[derive(Debug, Clone)]
pub struct WatchdogConfig {
    /// The scheduler loop must tick at least this often.
    pub tick_threshold: Duration,
}

/// What `/healthz` answers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Health {
    pub healthy: bool,
    pub checks: usize,
    pub active: usize,
    /// What is stuck, naming checks; empty when healthy.
    pub problems: Vec<String>,
}

pub(super) fn assess(shared: &Shared, now: Instant, config: &WatchdogConfig) -> Health {
    let mut problems = Vec::new();
    let since_tick = now.saturating_duration_since(*lock(&shared.last_tick));
    if since_tick > config.tick_threshold {
        problems.push(format!(
            "scheduler loop has not ticked for {} (threshold {})",
            fmt_go(since_tick),
            fmt_go(config.tick_threshold)
        ));
    }
    let (mut checks, mut active) = (0, 0);
    {
        let runners = lock(&shared.runners);
        let mut overdue = Vec::new();
        for (key, handle) in runners.iter() {
            checks += 1;
            let state = lock(&handle.state);
            if !state.active {
                continue;
            }
            active += 1;
            let quiet = now.saturating_duration_since(state.last_progress);
            if quiet > state.stall_threshold {
                overdue.push(format!(
                    "check {key} has not completed a run for {} (stall threshold {})",
                    fmt_go(quiet),
                    fmt_go(state.stall_threshold)
                ));
            }
        }
        overdue.sort();
        problems.extend(overdue);
    }
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
        problems,
    }
}
