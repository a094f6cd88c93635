//! The pure decision of what a HealthCheck's status becomes after a probe: thresholds decide
//! `Ready`, counters follow, and the Ready condition only transitions when its status changes.
//! Shared by `canary check`, the scheduler and the controller's status writer.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{
    HealthCheckStatus, LastResult, PhaseDurations, Reason, TlsFacts as StatusTlsFacts,
};
use crate::probe::{Outcome, TlsFacts};

/// The condition type Canary maintains.
pub const READY: &str = "Ready";

/// What besides the outcome decides the next status.
#[derive(Debug, Clone, Copy)]
pub struct StatusInputs {
    pub generation: Option<i64>,
    pub failure_threshold: u32,
    pub success_threshold: u32,
    pub next_run: Option<jiff::Timestamp>,
}

/// The status after `outcome`, starting from `prev` (default when the check never ran).
pub fn next_status(
    prev: &HealthCheckStatus,
    outcome: &Outcome,
    inputs: StatusInputs,
) -> HealthCheckStatus {
    let mut next = prev.clone();
    let now = Time(outcome.started_at);
    next.observed_generation = inputs.generation;
    next.next_run_time = inputs.next_run.map(Time);
    next.last_result = Some(last_result(outcome));
    if let Some(facts) = &outcome.tls {
        next.tls = Some(status_tls_facts(facts));
    }
    let (status, reason, message) = match outcome.reason {
        // The prober's own fault says nothing about the target: keep state and counters.
        Reason::ProberError => return next,
        Reason::InvalidSpec | Reason::ReferenceNotFound => {
            next.consecutive_failures = 0;
            next.consecutive_successes = 0;
            ("False", outcome.reason, outcome.message.clone())
        }
        Reason::Suspended => ("Unknown", Reason::Suspended, outcome.message.clone()),
        _ => {
            next.last_run_time = Some(now.clone());
            count(&mut next, outcome, &now);
            ready_from_counts(&next, prev, outcome, inputs)
        }
    };
    set_ready(
        &mut next.conditions,
        status,
        reason,
        &message,
        inputs.generation,
        &now,
    );
    next
}

fn count(next: &mut HealthCheckStatus, outcome: &Outcome, now: &Time) {
    if outcome.success() {
        next.consecutive_successes += 1;
        next.consecutive_failures = 0;
        next.last_success_time = Some(now.clone());
    } else {
        next.consecutive_failures += 1;
        next.consecutive_successes = 0;
        next.last_failure_time = Some(now.clone());
    }
}

fn ready_from_counts(
    next: &HealthCheckStatus,
    prev: &HealthCheckStatus,
    outcome: &Outcome,
    inputs: StatusInputs,
) -> (&'static str, Reason, String) {
    let previous = ready_condition(&prev.conditions).map(|c| c.status.as_str());
    if outcome.success() {
        if next.consecutive_successes >= i64::from(inputs.success_threshold) {
            return ("True", Reason::Succeeded, outcome.message.clone());
        }
        let waiting = format!(
            "{} of {} successes needed: {}",
            next.consecutive_successes, inputs.success_threshold, outcome.message
        );
        return hold(previous, waiting, prev);
    }
    if next.consecutive_failures >= i64::from(inputs.failure_threshold) {
        return ("False", outcome.reason, outcome.message.clone());
    }
    let waiting = format!(
        "{} of {} failures tolerated ({}): {}",
        next.consecutive_failures, inputs.failure_threshold, outcome.reason, outcome.message
    );
    hold(previous, waiting, prev)
}

/// Keeps the previous Ready status (and reason) while a threshold is not yet reached.
fn hold(
    previous: Option<&str>,
    message: String,
    prev: &HealthCheckStatus,
) -> (&'static str, Reason, String) {
    let reason = (ready_condition(&prev.conditions))
        .and_then(|c| Reason::ALL.iter().copied().find(|r| r.as_str() == c.reason))
        .unwrap_or(Reason::Pending);
    match previous {
        Some("True") => ("True", reason, message),
        Some("False") => ("False", reason, message),
        _ => ("Unknown", Reason::Pending, message),
    }
}

/// The Ready condition, if any.
pub fn ready_condition(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == READY)
}

/// Sets Ready, moving lastTransitionTime only when the status value changes.
fn set_ready(
    conditions: &mut Vec<Condition>,
    status: &str,
    reason: Reason,
    message: &str,
    generation: Option<i64>,
    now: &Time,
) {
    let transition = match ready_condition(conditions) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => now.clone(),
    };
    conditions.retain(|c| c.type_ != READY);
    conditions.push(Condition {
        type_: READY.into(),
        status: status.into(),
        reason: reason.as_str().into(),
        message: message.chars().take(1024).collect(),
        observed_generation: generation,
        last_transition_time: transition,
    });
}

/// Seconds with millisecond precision, as status writes durations (`0.183s`).
pub fn seconds(d: std::time::Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

fn last_result(outcome: &Outcome) -> LastResult {
    let phases = &outcome.phases;
    LastResult {
        success: outcome.success(),
        reason: outcome.reason,
        message: outcome.message.chars().take(1024).collect(),
        duration: seconds(outcome.duration),
        http_status: outcome.http_status.map(i32::from),
        phases: (phases.iter().next().is_some()).then(|| PhaseDurations {
            dns: phases.dns.map(seconds),
            connect: phases.connect.map(seconds),
            tls: phases.tls.map(seconds),
            first_byte: phases.first_byte.map(seconds),
            transfer: phases.transfer.map(seconds),
        }),
    }
}

/// The status form of TLS facts (leaf details plus the chain's earliest expiry).
pub fn status_tls_facts(facts: &TlsFacts) -> StatusTlsFacts {
    let leaf = facts.leaf();
    StatusTlsFacts {
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
mod tests {
    use super::*;
    use std::time::Duration;

    fn outcome(reason: Reason, at: i64) -> Outcome {
        let mut outcome = Outcome::not_run(reason, format!("{reason} at {at}"));
        outcome.started_at = jiff::Timestamp::from_second(1_800_000_000 + at).unwrap();
        outcome.duration = Duration::from_millis(183);
        outcome
    }

    fn inputs(failure_threshold: u32, success_threshold: u32) -> StatusInputs {
        StatusInputs {
            generation: Some(3),
            failure_threshold,
            success_threshold,
            next_run: None,
        }
    }

    fn ready(status: &HealthCheckStatus) -> (&str, &str, i64) {
        let c = ready_condition(&status.conditions).unwrap();
        (
            c.status.as_str(),
            c.reason.as_str(),
            c.last_transition_time.0.as_second() - 1_800_000_000,
        )
    }

    #[test]
    fn failure_threshold_holds_ready_until_reached() {
        let inputs = inputs(3, 1);
        let mut status = next_status(
            &HealthCheckStatus::default(),
            &outcome(Reason::Succeeded, 0),
            inputs,
        );
        assert_eq!(ready(&status), ("True", "Succeeded", 0));
        for at in 1..=2 {
            status = next_status(&status, &outcome(Reason::Timeout, at), inputs);
            assert_eq!(
                ready(&status),
                ("True", "Succeeded", 0),
                "failure {at} is tolerated"
            );
        }
        status = next_status(&status, &outcome(Reason::Timeout, 3), inputs);
        assert_eq!(ready(&status), ("False", "Timeout", 3));
        assert_eq!(status.consecutive_failures, 3);
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(status.last_result.as_ref().unwrap().duration, "0.183s");
    }

    #[test]
    fn success_threshold_and_transition_time() {
        let inputs = inputs(1, 2);
        let mut status = next_status(
            &HealthCheckStatus::default(),
            &outcome(Reason::UnexpectedStatus, 0),
            inputs,
        );
        assert_eq!(ready(&status), ("False", "UnexpectedStatus", 0));
        status = next_status(&status, &outcome(Reason::Succeeded, 1), inputs);
        assert_eq!(ready(&status), ("False", "UnexpectedStatus", 0));
        status = next_status(&status, &outcome(Reason::Succeeded, 2), inputs);
        assert_eq!(ready(&status), ("True", "Succeeded", 2));
        assert_eq!(status.consecutive_successes, 2);
        assert_eq!(
            status.last_failure_time.as_ref().unwrap().0.as_second(),
            1_800_000_000
        );
    }

    #[test]
    fn prober_error_changes_neither_ready_nor_counters() {
        let inputs = inputs(1, 1);
        let status = next_status(
            &HealthCheckStatus::default(),
            &outcome(Reason::Succeeded, 0),
            inputs,
        );
        let after = next_status(&status, &outcome(Reason::ProberError, 1), inputs);
        assert_eq!(ready(&after), ("True", "Succeeded", 0));
        assert_eq!(after.consecutive_successes, 1);
        assert_eq!(after.last_run_time, status.last_run_time);
        assert_eq!(after.last_result.unwrap().reason, Reason::ProberError);
    }

    #[test]
    fn first_failure_below_threshold_is_pending() {
        let status = next_status(
            &HealthCheckStatus::default(),
            &outcome(Reason::Timeout, 0),
            inputs(2, 1),
        );
        assert_eq!(ready(&status), ("Unknown", "Pending", 0));
    }
}
