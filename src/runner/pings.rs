//! The runner of a heartbeat check: no probe and no probe slot; it sleeps until the state
//! machine ([`super::heartbeat`]) asks to be woken or a ping arrives in its inbox
//! ([`super::Scheduler::ping`]), and reports each verdict like a probe's outcome, so
//! thresholds, maintenance windows, Events, metrics and the status writer apply unchanged.

use std::{sync::Arc, time::Duration};

use jiff::Timestamp;
use tokio::{sync::Notify, time::Instant};

use super::{
    Shared,
    heartbeat::{Machine, Ping, Resume, Rules, Verdict},
    task::{Runner, Timing, paused, report},
};
use crate::{api::Reason, lock, probe::KindFacts, probe::Outcome};

/// Pings a runner holds between two wake-ups at most; older ones are dropped first (only the
/// newest can move the machine once it has caught up).
pub const INBOX: usize = 16;
/// How often a paused runner (see [`paused`]) looks again.
const PAUSED_POLL: Duration = Duration::from_secs(1);
/// The longest sleep between two looks at the wall clock (it may be stepped meanwhile).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// What a heartbeat runner runs.
pub struct HeartbeatPlan {
    pub rules: Rules,
    /// The token pings must carry, read from the check's Secret.
    pub token: Arc<[u8]>,
    /// The check's creation (`Pending` until its first deadline); `None`: the runner's start.
    pub created: Option<Timestamp>,
}

impl std::fmt::Debug for HeartbeatPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeartbeatPlan")
            .field("rules", &self.rules)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// The heartbeat runner task; ends only when aborted.
pub(super) async fn run(
    shared: Arc<Shared>,
    runner: Runner,
    wake: Arc<Notify>,
    plan: Arc<HeartbeatPlan>,
) {
    let now = Timestamp::now();
    let (mut machine, fresh, unjudged) = {
        let state = lock(&runner.state);
        let resume = Resume::of(&state.status);
        let machine = Machine::new(plan.rules.clone(), plan.created.unwrap_or(now), resume, now);
        let unjudged = machine.unjudged(&state.status);
        (machine, state.status.ready().is_none(), unjudged)
    };
    if let Some(verdict) = unjudged {
        publish(&shared, &runner, &machine, outcome_of(&verdict));
    } else if let Some(message) = machine.pending().filter(|_| fresh) {
        let outcome = Outcome::not_run(Reason::Pending, message);
        publish(&shared, &runner, &machine, outcome);
    }
    loop {
        let wake_at = machine.next_wake();
        tokio::select! {
            () = tokio::time::sleep_until(instant_of(wake_at).min(Instant::now() + MAX_SLEEP)) => {}
            () = wake.notified() => {}
        }
        let pings = std::mem::take(&mut lock(&runner.state).inbox);
        if paused(&shared) {
            // A deadline past stays past: look again a second later, not in a busy loop.
            tokio::time::sleep(PAUSED_POLL).await;
            continue;
        }
        for ping in pings {
            let verdict = machine.ping(&ping);
            if let Some(verdict) = verdict {
                publish(&shared, &runner, &machine, outcome_of(&verdict));
            }
        }
        if let Some(verdict) = machine.tick(Timestamp::now()) {
            publish(&shared, &runner, &machine, outcome_of(&verdict));
        }
    }
}

fn outcome_of(verdict: &Verdict) -> Outcome {
    verdict.outcome()
}

/// Reports `outcome` with the machine's next wake-up as the next run and the last ping as the
/// kind's facts.
fn publish(shared: &Shared, runner: &Runner, machine: &Machine, mut outcome: Outcome) {
    {
        let mut state = lock(&runner.state);
        state.next_due = instant_of(machine.next_wake());
        state.last_cycle = Instant::now();
        let last_ping = state.status.last_ping_time.as_ref().map(|t| t.0);
        outcome.facts.kind = KindFacts::Heartbeat { last_ping };
    }
    report(shared, runner, outcome, Timing::default());
}

/// The monotonic instant of a wall-clock time (now when it has passed).
fn instant_of(at: Timestamp) -> Instant {
    let ahead = at.duration_since(Timestamp::now());
    let ahead = Duration::try_from(ahead).unwrap_or_default();
    Instant::now() + ahead.min(Duration::from_secs(366 * 86_400))
}

/// Puts `ping` in a runner's inbox (recording it in status at once, so the page and the
/// status writer show it), dropping the oldest beyond [`INBOX`].
pub(super) fn deliver(state: &mut super::RunnerState, ping: Ping, run_id: Option<String>) {
    if state
        .status
        .last_ping_time
        .as_ref()
        .is_none_or(|last| last.0 <= ping.at)
    {
        ping.record(&mut state.status, run_id);
    }
    if state.inbox.len() >= INBOX {
        state.inbox.remove(0);
    }
    state.inbox.push(ping);
}
