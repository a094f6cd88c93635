//! Unit tests of the next-status decision (thresholds, interlude states, conditions).

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
        ..StatusInputs::default()
    }
}

fn ready(status: &HealthCheckStatus) -> (&str, &str, i64) {
    let c = status.ready_condition().unwrap();
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
    )
    .status;
    assert_eq!(ready(&status), ("True", "Succeeded", 0));
    for at in 1..=2 {
        status = next_status(&status, &outcome(Reason::Timeout, at), inputs).status;
        assert_eq!(
            ready(&status),
            ("True", "Succeeded", 0),
            "failure {at} is tolerated"
        );
    }
    status = next_status(&status, &outcome(Reason::Timeout, 3), inputs).status;
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
    )
    .status;
    assert_eq!(ready(&status), ("False", "UnexpectedStatus", 0));
    status = next_status(&status, &outcome(Reason::Succeeded, 1), inputs).status;
    assert_eq!(ready(&status), ("False", "UnexpectedStatus", 0));
    status = next_status(&status, &outcome(Reason::Succeeded, 2), inputs).status;
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
    )
    .status;
    let next = next_status(&status, &outcome(Reason::ProberError, 1), inputs);
    assert_eq!(next.transition, None);
    let after = next.status;
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
    )
    .status;
    assert_eq!(ready(&status), ("Unknown", "Pending", 0));
}

#[test]
fn a_maintenance_window_makes_ready_unknown_and_its_end_announces_only_real_changes() {
    let ready_status = next_status(
        &HealthCheckStatus::default(),
        &outcome(Reason::Succeeded, 0),
        inputs(1, 1),
    )
    .status;
    let in_window = StatusInputs {
        in_maintenance: true,
        ..inputs(1, 1)
    };
    let next = next_status(&ready_status, &outcome(Reason::Timeout, 1), in_window);
    assert_eq!(ready(&next.status), ("Unknown", "Maintenance", 1));
    assert_eq!(
        next.settled,
        Some(ReadyStatus::True),
        "Ready before the window"
    );
    assert!(
        next.transition
            .as_ref()
            .is_none_or(|t| t.to != ReadyStatus::False),
        "no failure is announced in a window"
    );
    assert_eq!(
        next.status.consecutive_failures, 1,
        "failures are still counted"
    );
    let still_in = StatusInputs {
        settled: next.settled,
        ..in_window
    };
    let passing = next_status(&next.status, &outcome(Reason::Succeeded, 2), still_in);
    assert_eq!(ready(&passing.status), ("Unknown", "Maintenance", 1));
    assert_eq!(passing.transition, None);
    assert_eq!(
        passing.settled,
        Some(ReadyStatus::True),
        "carried through the window"
    );
    let after = StatusInputs {
        settled: passing.settled,
        ..inputs(1, 1)
    };
    let closed = next_status(&passing.status, &outcome(Reason::Succeeded, 3), after);
    assert_eq!(ready(&closed.status), ("True", "Succeeded", 3));
    assert_eq!(closed.transition, None, "passing before and after: no news");
    assert_eq!(closed.settled, None);
    let failed = next_status(&next.status, &outcome(Reason::Timeout, 3), after);
    assert_eq!(ready(&failed.status), ("False", "Timeout", 3));
    let transition = failed.transition.expect("failing after the window is news");
    assert_eq!(transition.from, Some(ReadyStatus::True));
}

#[test]
fn probed_is_true_with_its_generation_on_any_verdict_and_false_until_then() {
    let probed = |status: &HealthCheckStatus| {
        let c = status.probed_condition().expect("a Probed condition");
        (c.status.clone(), c.reason.clone(), c.observed_generation)
    };
    let failing = next_status(
        &HealthCheckStatus::default(),
        &outcome(Reason::ConnectionRefused, 0),
        inputs(3, 1),
    )
    .status;
    assert_eq!(ready(&failing).0, "Unknown", "below the failure threshold");
    assert_eq!(
        probed(&failing),
        ("True".into(), "ConnectionRefused".into(), Some(3))
    );
    let edited = StatusInputs {
        generation: Some(4),
        ..inputs(3, 1)
    };
    let reconciling = next_status(&failing, &outcome(Reason::Reconciling, 1), edited).status;
    assert_eq!(
        probed(&reconciling),
        ("False".into(), "Reconciling".into(), Some(4))
    );
    let again = next_status(&reconciling, &outcome(Reason::Succeeded, 2), edited).status;
    assert_eq!(probed(&again), ("True".into(), "Succeeded".into(), Some(4)));
    let since = again
        .probed_condition()
        .unwrap()
        .last_transition_time
        .clone();
    let later = next_status(&again, &outcome(Reason::Succeeded, 3), edited).status;
    assert_eq!(
        later.probed_condition().unwrap().last_transition_time,
        since
    );
    assert_eq!(
        later.probed_condition(),
        again.probed_condition(),
        "a second run of one verdict changes nothing"
    );
    let invalid = next_status(
        &HealthCheckStatus::default(),
        &outcome(Reason::InvalidSpec, 0),
        inputs(1, 1),
    )
    .status;
    assert_eq!(
        probed(&invalid),
        ("False".into(), "InvalidSpec".into(), Some(3))
    );
}

#[test]
fn an_edit_reconciles_without_re_announcing_a_failure() {
    let failing = next_status(
        &HealthCheckStatus::default(),
        &outcome(Reason::Timeout, 0),
        inputs(1, 1),
    )
    .status;
    let edited = StatusInputs {
        generation: Some(4),
        ..inputs(1, 1)
    };
    let reconciling = next_status(&failing, &outcome(Reason::Reconciling, 1), edited).status;
    assert_eq!(ready(&reconciling), ("Unknown", "Reconciling", 1));
    assert_eq!(reconciling.observed_generation, Some(4));
    assert_eq!(
        reconciling.last_result.as_ref().map(|r| r.reason),
        Some(Reason::Timeout),
        "the last real result stays"
    );
    let settled = StatusInputs {
        settled: Some(ReadyStatus::False),
        ..edited
    };
    let still = next_status(&reconciling, &outcome(Reason::Timeout, 2), settled);
    assert_eq!(still.transition, None, "still failing: no new Warning");
    let fixed = next_status(&reconciling, &outcome(Reason::Succeeded, 2), settled);
    let transition = fixed.transition.expect("a recovery");
    assert_eq!(
        (transition.from, transition.to),
        (Some(ReadyStatus::False), ReadyStatus::True)
    );
}

#[test]
fn stalled_marks_a_spec_that_needs_a_human_until_it_runs() {
    let invalid = next_status(
        &HealthCheckStatus::default(),
        &outcome(Reason::InvalidSpec, 0),
        inputs(1, 1),
    )
    .status;
    let stalled = invalid
        .conditions
        .iter()
        .find(|c| c.type_ == STALLED)
        .unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "InvalidSpec")
    );
    let fixed = next_status(&invalid, &outcome(Reason::Succeeded, 1), inputs(1, 1)).status;
    assert!(fixed.conditions.iter().all(|c| c.type_ != STALLED));
}
