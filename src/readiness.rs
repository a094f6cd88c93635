//! The pure decision of what a HealthCheck's status becomes after a probe: thresholds decide
//! `Ready`, counters follow, and this is the one place that decides a transition of Ready,
//! which then travels to Events, logs, metrics and the status writer.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{
    HealthCheckStatus, LastResult, PROBED, PhaseDurations, READY, ReadyStatus, Reason, STALLED,
    TlsFacts,
};
use crate::probe::{Outcome, TlsCapture};

/// Longest condition and result message written to status (the API convention's limit).
const MAX_MESSAGE: usize = 1024;

/// What besides the outcome decides the next status.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusInputs {
    pub generation: Option<i64>,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub next_run: Option<jiff::Timestamp>,
    /// Ready before an interlude (Reconciling after an edit, Maintenance during a window):
    /// transitions and held states are judged against it, so neither re-announces a failure.
    pub settled: Option<ReadyStatus>,
    /// Inside a maintenance window: Ready is Unknown (Maintenance); runs are still counted.
    pub in_maintenance: bool,
}

/// A change of the Ready condition's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// `None` when the condition did not exist before.
    pub from: Option<ReadyStatus>,
    pub to: ReadyStatus,
    pub reason: Reason,
    pub message: String,
}

/// The status after a run, and the transition it made, if any.
#[derive(Debug, Clone)]
pub struct NextStatus {
    pub status: HealthCheckStatus,
    pub transition: Option<Transition>,
    /// What [`StatusInputs::settled`] is for the next run: Ready before the interlude this
    /// status is in, if it is in one.
    pub settled: Option<ReadyStatus>,
}

/// Whether a Ready reason says Ready is Unknown for a while, not for what the target did.
fn interlude(reason: Option<Reason>) -> bool {
    matches!(reason, Some(Reason::Reconciling | Reason::Maintenance))
}

/// The status after `outcome`, starting from `prev` (default when the check never ran).
pub fn next_status(
    prev: &HealthCheckStatus,
    outcome: &Outcome,
    inputs: StatusInputs,
) -> NextStatus {
    let mut next = prev.clone();
    let now = Time(outcome.started_at);
    next.observed_generation = inputs.generation;
    next.next_run_time = inputs.next_run.map(Time);
    if outcome.reason != Reason::Reconciling {
        next.last_result = Some(Box::new(last_result(outcome)));
    }
    if let Some(facts) = &outcome.facts.tls {
        next.tls = Some(Box::new(status_tls_facts(facts)));
    }
    let (status, reason, message) = match outcome.reason {
        // The prober's own fault says nothing about the target: keep state and counters.
        Reason::ProberError => {
            let settled = interlude(prev.ready_reason())
                .then(|| effective_ready(prev, inputs))
                .flatten();
            return NextStatus {
                status: next,
                transition: None,
                settled,
            };
        }
        Reason::InvalidSpec | Reason::ReferenceNotFound | Reason::ReferenceForbidden => {
            next.consecutive_failures = 0;
            next.consecutive_successes = 0;
            (ReadyStatus::False, outcome.reason, outcome.message.clone())
        }
        // Pending: a heartbeat check waiting for its first deadline.
        Reason::Suspended | Reason::Reconciling | Reason::Pending => (
            ReadyStatus::Unknown,
            outcome.reason,
            outcome.message.clone(),
        ),
        _ => {
            next.last_run_time = Some(now.clone());
            count(&mut next, outcome, &now);
            ready_from_counts(&next, prev, outcome, inputs)
        }
    };
    let from = effective_ready(prev, inputs);
    let transition = set_ready(&mut next, status, reason, &message, inputs.generation, &now);
    set_stalled(&mut next, outcome, inputs.generation, &now);
    set_probed(&mut next, outcome, inputs.generation, &now);
    NextStatus {
        status: next,
        // A change against the settled state: an interlude in between is not a transition.
        transition: transition
            .filter(|t| from != Some(t.to))
            .map(|t| Transition { from, ..t }),
        settled: interlude(Some(reason)).then_some(from).flatten(),
    }
}

/// Ready as it stood before any interlude (Reconciling, Maintenance).
fn effective_ready(prev: &HealthCheckStatus, inputs: StatusInputs) -> Option<ReadyStatus> {
    match interlude(prev.ready_reason()) {
        true => inputs.settled,
        false => prev.ready(),
    }
}

/// Probed: True with the verdict's reason once a run of this generation judged the target
/// (pass or fail, inside a maintenance window too); False while the generation has none
/// (Reconciling, Suspended, or a spec that cannot run). Its message never changes between runs
/// of one verdict, so it is not a change worth a status write.
fn set_probed(
    status: &mut HealthCheckStatus,
    outcome: &Outcome,
    generation: Option<i64>,
    now: &Time,
) {
    let (probed, message) = match outcome.ran() {
        true => ("True", "a probe of this generation has a verdict"),
        false => ("False", "no verdict for this generation yet"),
    };
    let reason = outcome.reason.as_str();
    let previous = status.probed_condition();
    let since = previous
        .filter(|c| c.status == probed)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    status.conditions.retain(|c| c.type_ != PROBED);
    status.conditions.push(Condition {
        type_: PROBED.into(),
        status: probed.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: since,
    });
}

/// kstatus' Stalled: True while the spec or a reference needs a human, absent otherwise.
fn set_stalled(
    status: &mut HealthCheckStatus,
    outcome: &Outcome,
    generation: Option<i64>,
    now: &Time,
) {
    let stalled = matches!(
        outcome.reason,
        Reason::InvalidSpec | Reason::ReferenceNotFound | Reason::ReferenceForbidden
    );
    if !stalled {
        if outcome.reason != Reason::Reconciling {
            status.conditions.retain(|c| c.type_ != STALLED);
        }
        return;
    }
    let since = (status.conditions.iter())
        .find(|c| c.type_ == STALLED && c.reason == outcome.reason.as_str())
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    status.conditions.retain(|c| c.type_ != STALLED);
    status.conditions.push(Condition {
        type_: STALLED.into(),
        status: "True".into(),
        reason: outcome.reason.as_str().into(),
        message: truncate_chars(&outcome.message, MAX_MESSAGE),
        observed_generation: generation,
        last_transition_time: since,
    });
}

fn count(next: &mut HealthCheckStatus, outcome: &Outcome, now: &Time) {
    if outcome.success() {
        next.consecutive_successes = next.consecutive_successes.saturating_add(1);
        next.consecutive_failures = 0;
        next.last_success_time = Some(now.clone());
    } else {
        next.consecutive_failures = next.consecutive_failures.saturating_add(1);
        next.consecutive_successes = 0;
        next.last_failure_time = Some(now.clone());
    }
}

fn ready_from_counts(
    next: &HealthCheckStatus,
    prev: &HealthCheckStatus,
    outcome: &Outcome,
    inputs: StatusInputs,
) -> (ReadyStatus, Reason, String) {
    if inputs.in_maintenance {
        let message = match outcome.success() {
            true => format!("in a maintenance window, passing: {}", outcome.message),
            false => format!(
                "in a maintenance window, failing ({}): {}",
                outcome.reason, outcome.message
            ),
        };
        return (ReadyStatus::Unknown, Reason::Maintenance, message);
    }
    if outcome.success() {
        if next.consecutive_successes >= i64::from(inputs.success_threshold) {
            return (
                ReadyStatus::True,
                Reason::Succeeded,
                outcome.message.clone(),
            );
        }
        let waiting = format!(
            "{} of {} successes needed: {}",
            next.consecutive_successes, inputs.success_threshold, outcome.message
        );
        return hold(prev, inputs, waiting);
    }
    if next.consecutive_failures >= i64::from(inputs.failure_threshold) {
        return (ReadyStatus::False, outcome.reason, outcome.message.clone());
    }
    let waiting = format!(
        "{} of {} failures tolerated ({}): {}",
        next.consecutive_failures, inputs.failure_threshold, outcome.reason, outcome.message
    );
    hold(prev, inputs, waiting)
}

/// Keeps the previous Ready status (and reason) while a threshold is not yet reached.
fn hold(
    prev: &HealthCheckStatus,
    inputs: StatusInputs,
    message: String,
) -> (ReadyStatus, Reason, String) {
    let reason = match prev.ready_reason() {
        Some(Reason::Reconciling | Reason::Maintenance) | None => Reason::Pending,
        Some(reason) => reason,
    };
    match effective_ready(prev, inputs) {
        Some(ReadyStatus::True) if reason == Reason::Pending => {
            (ReadyStatus::True, Reason::Succeeded, message)
        }
        Some(status @ (ReadyStatus::True | ReadyStatus::False)) => (status, reason, message),
        _ => (ReadyStatus::Unknown, Reason::Pending, message),
    }
}

/// Sets Ready, moving lastTransitionTime only when the status value changes; returns that
/// change.
fn set_ready(
    status: &mut HealthCheckStatus,
    ready: ReadyStatus,
    reason: Reason,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) -> Option<Transition> {
    let message = truncate_chars(message, MAX_MESSAGE);
    let previous = status.ready_condition().cloned();
    let from = previous.as_ref().map(|c| ReadyStatus::parse(&c.status));
    let (last_transition_time, transition) = match previous {
        Some(c) if from == Some(ready) => (c.last_transition_time, None),
        _ => {
            let transition = Transition {
                from,
                to: ready,
                reason,
                message: message.clone(),
            };
            (now.clone(), Some(transition))
        }
    };
    status.conditions.retain(|c| c.type_ != READY);
    status.conditions.push(Condition {
        type_: READY.into(),
        status: ready.as_str().into(),
        reason: reason.as_str().into(),
        message,
        observed_generation: generation,
        last_transition_time,
    });
    transition
}

fn truncate_chars(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Seconds with millisecond precision, as status writes durations (`0.183s`).
pub fn seconds(d: std::time::Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

fn last_result(outcome: &Outcome) -> LastResult {
    let phases = &outcome.phases;
    let mut result = LastResult::new(
        outcome.success(),
        outcome.reason,
        truncate_chars(&outcome.message, MAX_MESSAGE),
        seconds(outcome.duration),
    );
    result.phases = (phases.iter().next().is_some()).then(|| PhaseDurations {
        auth: phases.auth.map(seconds),
        dns: phases.dns.map(seconds),
        connect: phases.connect.map(seconds),
        tls: phases.tls.map(seconds),
        first_byte: phases.first_byte.map(seconds),
        transfer: phases.transfer.map(seconds),
        request: phases.request.map(seconds),
    });
    outcome.facts.kind.write_status(&mut result);
    result
}

/// The status form of TLS facts (leaf details plus the chain's earliest expiry).
pub fn status_tls_facts(facts: &TlsCapture) -> TlsFacts {
    let leaf = facts.leaf();
    TlsFacts {
        version: facts.version.clone(),
        cipher_suite: facts.cipher_suite.clone(),
        subject: leaf.map(|l| l.subject.clone()),
        issuer: leaf.map(|l| l.issuer.clone()),
        serial_number: leaf.map(|l| l.serial_number.clone()),
        dns_names: leaf.map(|l| l.dns_names.clone()).unwrap_or_default(),
        not_before: leaf.map(|l| Time(l.not_before)),
        not_after: leaf.map(|l| Time(l.not_after)),
        chain_earliest_not_after: facts.chain_earliest_not_after().map(Time),
        verified: facts.verified,
    }
}

#[cfg(test)]
#[path = "readiness/tests.rs"]
mod tests;
