//! The runner's history: windows, buckets, bounds, and resuming from status.

use std::time::Duration;

use super::*;

fn outcome(at: i64, success: bool, ms: u64) -> Outcome {
    let reason = if success {
        Reason::Succeeded
    } else {
        Reason::Timeout
    };
    let mut outcome = Outcome::not_run(reason, "");
    outcome.started_at = jiff::Timestamp::from_second(at).unwrap();
    outcome.duration = Duration::from_millis(ms);
    outcome
}

/// Issue 24: a check that never connected showed "latency 0 ms": runs that measured no
/// latency (refused, denied, timed out) no longer count in the average.
#[test]
fn runs_that_measured_nothing_do_not_count_in_the_latency() {
    let mut history = History::new(T0);
    let mut refused = outcome(T0, false, 0);
    refused.reason = Reason::ConnectionRefused;
    history.record(&refused);
    let mut denied = outcome(T0 + 1, false, 0);
    denied.reason = Reason::TargetDenied;
    history.record(&denied);
    let window = history.window(T0 + 2, 24);
    assert_eq!((window.runs, window.average_latency_ms), (2, None));
    assert_eq!(history.results().next().unwrap().latency(), None);
    let mut answered = outcome(T0 + 2, false, 300);
    answered.reason = Reason::UnexpectedStatus;
    history.record(&answered);
    history.record(&outcome(T0 + 3, true, 100));
    history.record(&outcome(T0 + 4, false, 800));
    let window = history.window(T0 + 5, 24);
    assert_eq!((window.runs, window.average_latency_ms), (5, Some(200.0)));
    let hour = history.hours(T0 + 5)[0];
    assert_eq!((hour.runs, hour.measured, hour.latency_ms), (5, 2, 400));
}

const DAY: i64 = 86_400;
/// An hour boundary (2027-01-15 08:00 UTC).
const T0: i64 = 1_800_000_000;

#[test]
fn uptime_counts_the_runs_of_each_window() {
    let mut history = History::new(T0);
    // 10 days, one run an hour: success except every fourth hour of the last day.
    for h in 0..240 {
        let at = T0 + h * 3600;
        let failed = h >= 216 && h % 4 == 0;
        history.record(&outcome(at, !failed, 100));
    }
    let now = T0 + 239 * 3600 + 59;
    let day = history.window(now, 24);
    assert_eq!((day.runs, day.successes), (24, 18));
    assert_eq!(day.uptime, Some(0.75));
    assert_eq!(day.average_latency_ms, Some(100.0));
    let week = history.window(now, 7 * 24);
    assert_eq!((week.runs, week.successes), (168, 162));
    assert_eq!(history.window(now, 30 * 24).runs, 240);
    assert_eq!(
        history.window(now + 400 * DAY, 24).uptime,
        None,
        "old buckets age out"
    );
}

#[test]
fn buckets_roll_over_hours_and_are_reused_after_thirty_days() {
    let mut history = History::new(T0);
    history.record(&outcome(T0 + 10, true, 1));
    history.record(&outcome(T0 + 3599, false, 1));
    history.record(&outcome(T0 + 3600, true, 1));
    assert_eq!(
        history.window(T0 + 3600, 1).runs,
        1,
        "a new hour starts a new bucket"
    );
    assert_eq!(history.window(T0 + 3600, 2).runs, 3);
    // The same slot, 30 days later: the old bucket is replaced, not added to.
    history.record(&outcome(T0 + 30 * DAY + 5, true, 1));
    assert_eq!(history.window(T0 + 30 * DAY + 5, 1).runs, 1);
    // 30 days of hours: the second hour is the oldest still shown, the first was replaced.
    let hours = history.hours(T0 + 30 * DAY + 5);
    let shown: Vec<_> = hours.iter().map(|h| (h.start, h.runs)).collect();
    assert_eq!(shown, [(T0 + 3600, 1), (T0 + 30 * DAY, 1)]);
    let later = history.hours(T0 + 30 * DAY + 3600);
    assert_eq!(later.len(), 1, "the second hour ages out an hour later");
}

#[test]
fn a_clock_step_back_lands_in_its_own_hour_and_a_check_that_ran_once_holds_one_bucket() {
    let mut history = History::new(T0);
    history.record(&outcome(T0 + 5 * 3600, true, 1));
    assert_eq!(history.hours.len(), 1, "no 30 days of empty buckets");
    history.record(&outcome(T0 + 2 * 3600, false, 1));
    history.record(&outcome(T0 + 5 * 3600 + 1, true, 1));
    let shown: Vec<_> = (history.hours(T0 + 5 * 3600).iter())
        .map(|h| (h.start, h.runs, h.successes))
        .collect();
    assert_eq!(shown, [(T0 + 2 * 3600, 1, 0), (T0 + 5 * 3600, 2, 2)]);
}

/// Issue 28: a restart or a move resumes the hourly buckets from `status.history`.
#[test]
fn the_stored_buckets_resume_every_window_and_a_forged_history_is_ignored() {
    // Resuming keeps the 30 days up to the real clock: 20 days of runs up to now.
    let wall = jiff::Timestamp::now().as_second();
    let start = wall - 20 * DAY;
    let mut history = History::new(start);
    for i in 0..5760 {
        history.record(&outcome(start + i * 300, i % 7 != 0, 40 + (i % 13) as u64));
    }
    let now = wall;
    let first = history.store_due(now, 3600).expect("never stored");
    assert_eq!(history.store_due(now + 3599, 3600), None, "at most hourly");
    assert!(history.store_due(now + 3600, 3600).is_some());
    let status = HealthCheckStatus {
        history: Some(first),
        ..HealthCheckStatus::default()
    };
    let key = CheckKey {
        namespace: "ns".into(),
        name: "name".into(),
    };
    let resumed = History::resumed(&key, &status);
    assert_eq!(resumed.since, start);
    for hours in [24, 7 * 24, 30 * 24] {
        let (before, after) = (history.window(wall, hours), resumed.window(wall, hours));
        assert_eq!(
            (before.runs, before.successes),
            (after.runs, after.successes)
        );
    }
    let forged = HealthCheckStatus {
        history: Some("1.////".into()),
        ..HealthCheckStatus::default()
    };
    let ignored = History::resumed(&key, &forged);
    assert!(ignored.hours.is_empty() && ignored.since >= wall);
}

#[test]
fn results_and_transitions_stay_bounded_and_history_stays_small() {
    let mut history = History::new(T0);
    let message = "x".repeat(1000);
    for i in 0..10_000 {
        history.record(&outcome(T0 + i * 60, i % 2 == 0, 5));
        let to = if i % 2 == 0 {
            ReadyStatus::True
        } else {
            ReadyStatus::False
        };
        let transition = Transition {
            from: None,
            to,
            reason: Reason::Timeout,
            message: message.clone(),
        };
        history.transition(T0 + i * 60, &transition);
    }
    assert_eq!(history.results().count(), RESULTS);
    assert_eq!(history.transitions().count(), TRANSITIONS);
    let bytes = history.heap_bytes() + std::mem::size_of::<History>();
    assert!(bytes < 24 * 1024, "{bytes} bytes at full history");
}
