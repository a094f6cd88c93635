//! The heartbeat state machine on a virtual clock, its verdicts folded through
//! `readiness::next_status` as the runner does (thresholds, maintenance windows).

use std::time::Duration;

use jiff::Timestamp;

use super::*;
use crate::{
    api::{CronSchedule, GoDuration, MaintenanceWindow, MaintenanceWindows, ReadyStatus},
    readiness::{StatusInputs, next_status},
};

const SETTLE: Duration = Duration::from_secs(2);

fn t(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn every(period: u64, grace: u64, max_run: Option<u64>) -> Rules {
    Rules {
        expect: Expectation::Every(Duration::from_secs(period)),
        grace: Duration::from_secs(grace),
        max_run: max_run.map(Duration::from_secs),
        settle: SETTLE,
    }
}

fn cron(schedule: &str, zone: &str, grace: u64) -> Rules {
    let schedule = CronSchedule::parse("spec.heartbeat", schedule, Some(zone)).unwrap();
    Rules {
        expect: Expectation::Schedule(Box::new(schedule)),
        grace: Duration::from_secs(grace),
        max_run: None,
        settle: SETTLE,
    }
}

const H: u64 = 3600;
const M: u64 = 60;

/// A check driven on a virtual clock: the machine, the status it produces, every verdict.
struct Clock {
    machine: Machine,
    now: Timestamp,
    status: HealthCheckStatus,
    failure_threshold: u32,
    success_threshold: u32,
    maintenance: MaintenanceWindows,
    verdicts: Vec<Verdict>,
    /// Ready transitions (what Events and alerts see).
    transitions: Vec<(ReadyStatus, Reason)>,
}

impl Clock {
    fn new(rules: Rules, created: &str) -> Self {
        Self::resumed(rules, created, HealthCheckStatus::default(), created)
    }

    fn resumed(rules: Rules, created: &str, status: HealthCheckStatus, now: &str) -> Self {
        let resume = Resume::of(&status);
        Self {
            machine: Machine::new(rules, t(created), resume, t(now)),
            now: t(now),
            status,
            failure_threshold: 1,
            success_threshold: 1,
            maintenance: MaintenanceWindows::default(),
            verdicts: Vec::new(),
            transitions: Vec::new(),
        }
    }

    fn thresholds(mut self, failure: u32, success: u32) -> Self {
        (self.failure_threshold, self.success_threshold) = (failure, success);
        self
    }

    /// Lets time pass up to `to`, waking the machine whenever it asks to be woken.
    fn advance(&mut self, to: &str) {
        let to = t(to);
        loop {
            let wake = self.machine.next_wake();
            if wake > to {
                break;
            }
            let verdict = self.machine.tick(wake);
            assert!(
                verdict.is_some() || self.machine.next_wake() > wake,
                "the machine must make progress at {wake}"
            );
            self.apply(verdict);
        }
        self.now = to;
    }

    /// A ping received at `at` and delivered now (`at` may be before now: a late delivery).
    fn ping(&mut self, at: &str, result: PingResult, exit_code: Option<u8>) {
        let ping = Ping {
            result,
            exit_code,
            at: t(at),
            message: String::new(),
        };
        ping.record(&mut self.status, None);
        let verdict = self.machine.ping(&ping);
        self.apply(verdict);
    }

    fn ok(&mut self, at: &str) {
        self.advance(at);
        self.ping(at, PingResult::Success, None);
    }

    fn apply(&mut self, verdict: Option<Verdict>) {
        let Some(verdict) = verdict else { return };
        let inputs = StatusInputs {
            failure_threshold: self.failure_threshold,
            success_threshold: self.success_threshold,
            in_maintenance: self.maintenance.contains(verdict.at),
            ..StatusInputs::default()
        };
        let next = next_status(&self.status, &verdict.outcome(), inputs);
        if let Some(transition) = next.transition {
            self.transitions.push((transition.to, transition.reason));
        }
        self.status = next.status;
        self.verdicts.push(verdict);
    }

    fn ready(&self) -> (Option<ReadyStatus>, Option<Reason>) {
        (self.status.ready(), self.status.ready_reason())
    }

    fn reasons(&self) -> Vec<Reason> {
        self.verdicts.iter().map(|v| v.reason).collect()
    }
}

use Reason::{HeartbeatFailed, HeartbeatMissed, RunTooLong, Succeeded};

#[test]
fn a_period_passes_with_pings_and_misses_once_per_further_period() {
    let mut clock = Clock::new(every(H, 10 * M, None), "2026-01-01T00:00:00Z");
    clock.ok("2026-01-01T00:30:00Z");
    assert_eq!(clock.ready(), (Some(ReadyStatus::True), Some(Succeeded)));
    clock.advance("2026-01-01T01:40:01Z");
    assert_eq!(clock.reasons(), [Succeeded], "still within period + grace");
    clock.advance("2026-01-01T01:40:02Z");
    assert_eq!(
        clock.ready(),
        (Some(ReadyStatus::False), Some(HeartbeatMissed))
    );
    assert_eq!(clock.verdicts[1].at, t("2026-01-01T01:40:00Z"));
    clock.advance("2026-01-01T03:40:01Z");
    assert_eq!(
        clock.reasons(),
        [Succeeded, HeartbeatMissed, HeartbeatMissed]
    );
    assert_eq!(clock.status.consecutive_failures, 2);
    clock.ok("2026-01-01T03:45:00Z");
    assert_eq!(clock.ready(), (Some(ReadyStatus::True), Some(Succeeded)));
    assert_eq!(clock.machine.deadline(), t("2026-01-01T04:55:00Z"));
}

#[test]
fn a_check_never_pinged_is_pending_until_period_plus_grace_after_creation() {
    let mut clock = Clock::new(every(H, 10 * M, None), "2026-01-01T00:00:00Z");
    assert!(clock.machine.pending().unwrap().contains("01:10:00"));
    clock.advance("2026-01-01T01:10:01Z");
    assert!(clock.verdicts.is_empty());
    clock.advance("2026-01-01T01:10:02Z");
    assert_eq!(clock.reasons(), [HeartbeatMissed]);
    assert!(clock.verdicts[0].message.starts_with("never pinged"));
    assert!(clock.machine.pending().is_none());
}

#[test]
fn a_cron_schedule_follows_its_time_zone_across_a_daylight_saving_change() {
    // 03:00 in Berlin is 02:00 UTC in winter and 01:00 UTC in summer; clocks go forward on
    // 2026-03-29. A fixed 24h period would wait until 02:30 UTC: the schedule does not.
    let mut clock = Clock::new(
        cron("0 3 * * *", "Europe/Berlin", 30 * M),
        "2026-03-28T00:00:00Z",
    );
    clock.ok("2026-03-28T02:05:00Z");
    assert_eq!(clock.machine.deadline(), t("2026-03-29T01:30:00Z"));
    clock.advance("2026-03-29T01:30:02Z");
    assert_eq!(clock.reasons(), [Succeeded, HeartbeatMissed]);
    clock.ok("2026-03-29T01:40:00Z");
    assert_eq!(clock.machine.deadline(), t("2026-03-30T01:30:00Z"));
    // And back in autumn (2026-10-25): 03:00 CET is 02:00 UTC again.
    let mut autumn = Clock::new(
        cron("0 3 * * *", "Europe/Berlin", 30 * M),
        "2026-10-24T00:00:00Z",
    );
    autumn.ok("2026-10-24T01:05:00Z");
    assert_eq!(autumn.machine.deadline(), t("2026-10-25T02:30:00Z"));
}

#[test]
fn a_ping_at_the_deadline_is_in_time_and_grace_is_honoured() {
    let mut clock = Clock::new(every(H, 5 * M, None), "2026-01-01T00:00:00Z");
    clock.ok("2026-01-01T00:00:00Z");
    clock.ok("2026-01-01T01:05:00Z");
    clock.advance("2026-01-01T02:10:01Z");
    assert_eq!(clock.reasons(), [Succeeded, Succeeded]);
}

#[test]
fn start_then_finish_reports_the_run_and_an_unfinished_run_is_run_too_long() {
    let mut clock = Clock::new(every(H, 5 * M, Some(30 * M)), "2026-01-01T00:00:00Z");
    clock.advance("2026-01-01T00:10:00Z");
    clock.ping("2026-01-01T00:10:00Z", PingResult::Start, None);
    assert!(clock.verdicts.is_empty(), "a start is not a verdict");
    clock.ok("2026-01-01T00:30:00Z");
    assert!(clock.verdicts[0].message.contains("after running 20m"));
    clock.advance("2026-01-01T01:00:00Z");
    clock.ping("2026-01-01T01:00:00Z", PingResult::Start, None);
    clock.advance("2026-01-01T01:29:59Z");
    assert_eq!(clock.reasons(), [Succeeded]);
    clock.advance("2026-01-01T01:30:00Z");
    assert_eq!(clock.reasons(), [Succeeded, RunTooLong]);
    assert_eq!(clock.ready(), (Some(ReadyStatus::False), Some(RunTooLong)));
    // The overrun counts as the run: the next deadline is from its start, no missed at 01:35.
    clock.advance("2026-01-01T02:05:01Z");
    assert_eq!(clock.reasons(), [Succeeded, RunTooLong]);
}

#[test]
fn a_run_in_progress_within_max_run_duration_holds_a_missed_deadline_back() {
    let mut clock = Clock::new(every(H, 5 * M, Some(H)), "2026-01-01T00:00:00Z");
    clock.ok("2026-01-01T00:00:00Z");
    clock.advance("2026-01-01T00:50:00Z");
    clock.ping("2026-01-01T00:50:00Z", PingResult::Start, None);
    clock.advance("2026-01-01T01:30:00Z");
    clock.ping("2026-01-01T01:30:00Z", PingResult::Success, None);
    assert_eq!(clock.reasons(), [Succeeded, Succeeded]);
}

#[test]
fn without_max_run_duration_a_start_does_not_move_the_deadline() {
    let mut clock = Clock::new(every(H, 5 * M, None), "2026-01-01T00:00:00Z");
    clock.ok("2026-01-01T00:00:00Z");
    clock.advance("2026-01-01T00:50:00Z");
    clock.ping("2026-01-01T00:50:00Z", PingResult::Start, None);
    clock.advance("2026-01-01T01:05:02Z");
    assert_eq!(clock.reasons(), [Succeeded, HeartbeatMissed]);
}

#[test]
fn exit_codes_zero_succeeds_and_non_zero_fails_as_a_run() {
    let mut clock = Clock::new(every(H, 5 * M, None), "2026-01-01T00:00:00Z");
    clock.advance("2026-01-01T00:10:00Z");
    clock.ping("2026-01-01T00:10:00Z", PingResult::Success, Some(0));
    clock.advance("2026-01-01T00:20:00Z");
    clock.ping("2026-01-01T00:20:00Z", PingResult::Fail, Some(3));
    assert_eq!(clock.reasons(), [Succeeded, HeartbeatFailed]);
    assert!(clock.verdicts[1].message.contains("exit code 3"));
    assert_eq!(
        clock.ready(),
        (Some(ReadyStatus::False), Some(HeartbeatFailed))
    );
    assert_eq!(clock.machine.deadline(), t("2026-01-01T01:25:00Z"));
}

#[test]
fn a_miss_inside_a_maintenance_window_is_not_an_alert() {
    let mut clock = Clock::new(every(H, 10 * M, None), "2026-01-01T00:00:00Z");
    let window = MaintenanceWindow {
        schedule: "0 1 * * *".into(),
        duration: GoDuration::new("1h"),
        timezone: None,
    };
    clock.maintenance = MaintenanceWindows::parse(&[window]).unwrap();
    clock.ok("2026-01-01T00:00:00Z");
    clock.advance("2026-01-01T01:10:02Z");
    assert_eq!(
        clock.ready(),
        (Some(ReadyStatus::Unknown), Some(Reason::Maintenance))
    );
    assert!(
        !clock
            .transitions
            .iter()
            .any(|(s, _)| *s == ReadyStatus::False)
    );
    clock.advance("2026-01-01T02:10:02Z");
    assert_eq!(
        clock.ready(),
        (Some(ReadyStatus::False), Some(HeartbeatMissed))
    );
}

#[test]
fn a_restart_resumes_from_the_last_ping_in_status_without_a_false_alarm() {
    let mut before = Clock::new(every(H, 10 * M, None), "2026-01-01T00:00:00Z");
    before.ok("2026-01-01T00:30:00Z");
    // Restarted 50 minutes later: the deadline is still 01:40, nothing is reported now.
    let mut after = Clock::resumed(
        every(H, 10 * M, None),
        "2026-01-01T00:00:00Z",
        before.status.clone(),
        "2026-01-01T01:20:00Z",
    );
    assert_eq!(after.machine.deadline(), t("2026-01-01T01:40:00Z"));
    assert!(
        after.machine.pending().is_none(),
        "a pinged check is not Pending again"
    );
    after.advance("2026-01-01T01:40:01Z");
    assert!(after.verdicts.is_empty());
    after.advance("2026-01-01T01:40:02Z");
    assert_eq!(after.reasons(), [HeartbeatMissed]);
    // Restarted again after that miss was recorded: it is not reported a second time.
    let mut again = Clock::resumed(
        every(H, 10 * M, None),
        "2026-01-01T00:00:00Z",
        after.status.clone(),
        "2026-01-01T02:00:00Z",
    );
    again.advance("2026-01-01T02:40:01Z");
    assert!(again.verdicts.is_empty());
    assert_eq!(again.status.consecutive_failures, 1);
}

#[test]
fn a_restart_during_a_started_run_keeps_judging_it() {
    let mut before = Clock::new(every(H, 10 * M, Some(20 * M)), "2026-01-01T00:00:00Z");
    before.advance("2026-01-01T00:30:00Z");
    before.ping("2026-01-01T00:30:00Z", PingResult::Start, None);
    let rules = every(H, 10 * M, Some(20 * M));
    let (created, now) = ("2026-01-01T00:00:00Z", "2026-01-01T00:40:00Z");
    let mut after = Clock::resumed(rules, created, before.status.clone(), now);
    after.advance("2026-01-01T00:50:00Z");
    assert_eq!(after.reasons(), [RunTooLong]);
}

/// Uptime Kuma #3208: an explicit "down" push skipped the retries. Here it is one failure
/// against failureThreshold, like any other.
#[test]
fn uptime_kuma_3208_an_explicit_failure_does_not_skip_the_failure_threshold() {
    let mut clock = Clock::new(every(H, 5 * M, None), "2026-01-01T00:00:00Z").thresholds(3, 1);
    clock.ok("2026-01-01T00:00:00Z");
    clock.advance("2026-01-01T00:10:00Z");
    clock.ping("2026-01-01T00:10:00Z", PingResult::Fail, None);
    assert_eq!(clock.ready().0, Some(ReadyStatus::True));
    assert_eq!(clock.status.consecutive_failures, 1);
    for at in ["2026-01-01T00:20:00Z", "2026-01-01T00:30:00Z"] {
        clock.advance(at);
        clock.ping(at, PingResult::Fail, Some(1));
    }
    assert_eq!(
        clock.ready(),
        (Some(ReadyStatus::False), Some(HeartbeatFailed))
    );
}

/// Uptime Kuma #5639: an explicit "down" was followed by a spurious "no heartbeat". Here a
/// failure is a run: the next deadline counts from it.
#[test]
fn uptime_kuma_5639_a_failure_is_not_followed_by_a_spurious_missed() {
    let mut clock = Clock::new(every(H, 10 * M, None), "2026-01-01T00:00:00Z");
    clock.ok("2026-01-01T00:00:00Z");
    clock.advance("2026-01-01T00:50:00Z");
    clock.ping("2026-01-01T00:50:00Z", PingResult::Fail, None);
    clock.advance("2026-01-01T02:00:01Z");
    assert_eq!(clock.reasons(), [Succeeded, HeartbeatFailed]);
    assert_eq!(clock.machine.deadline(), t("2026-01-01T02:00:00Z"));
}

/// Uptime Kuma #6586: a push did not reset the retry count, so misses spread over days added
/// up to "down". Here a success resets the failure count and the deadline.
#[test]
fn uptime_kuma_6586_a_ping_resets_the_failure_count() {
    let mut clock = Clock::new(every(H, 5 * M, None), "2026-01-01T00:00:00Z").thresholds(3, 1);
    clock.ok("2026-01-01T00:00:00Z");
    clock.advance("2026-01-01T02:05:02Z");
    assert_eq!(clock.status.consecutive_failures, 2);
    clock.ok("2026-01-01T02:10:00Z");
    assert_eq!(clock.status.consecutive_failures, 0);
    clock.advance("2026-01-01T04:15:02Z");
    assert_eq!(clock.status.consecutive_failures, 2);
    assert!(
        !clock
            .transitions
            .iter()
            .any(|(s, _)| *s == ReadyStatus::False)
    );
}

/// Uptime Kuma #2045: a push arriving as the timer fired raced it and the monitor flapped
/// down. Here a ping is judged by when it was received, and a deadline only after `settle`:
/// a ping received in time but delivered after the deadline still counts, and a late
/// delivery of an old ping never counts twice.
#[test]
fn uptime_kuma_2045_a_ping_received_before_the_deadline_never_races_it() {
    let mut clock = Clock::new(every(H, 5 * M, None), "2026-01-01T00:00:00Z");
    clock.ok("2026-01-01T00:00:00Z");
    clock.advance("2026-01-01T01:05:01Z");
    clock.ping("2026-01-01T01:04:59Z", PingResult::Success, None);
    clock.advance("2026-01-01T02:00:00Z");
    assert_eq!(clock.reasons(), [Succeeded, Succeeded]);
    // The same ping seen again (a watch relist) is ignored.
    clock.ping("2026-01-01T01:04:59Z", PingResult::Success, None);
    assert_eq!(clock.reasons(), [Succeeded, Succeeded]);
}

#[test]
fn a_long_outage_is_one_missed_verdict_that_counts_the_deadlines() {
    let mut clock = Clock::new(every(10, 5, None), "2026-01-01T00:00:00Z");
    clock.ok("2026-01-01T00:00:00Z");
    let verdict = clock.machine.tick(t("2026-01-01T01:00:00Z")).unwrap();
    assert_eq!(verdict.reason, HeartbeatMissed);
    assert!(
        verdict.message.contains("(359 deadlines passed)"),
        "{}",
        verdict.message
    );
    assert!(clock.machine.deadline() > t("2026-01-01T01:00:00Z"));
}

#[test]
fn a_ping_recorded_while_no_runner_judged_it_is_judged_on_resume() {
    let mut before = Clock::new(every(H, 10 * M, None), "2026-01-01T00:00:00Z");
    before.ok("2026-01-01T00:30:00Z");
    let mut status = before.status.clone();
    // Another replica recorded a failure after the last verdict.
    let late = Ping {
        result: PingResult::Fail,
        exit_code: Some(2),
        at: t("2026-01-01T00:50:00Z"),
        message: String::new(),
    };
    late.record(&mut status, None);
    let rules = every(H, 10 * M, None);
    let machine = Machine::new(
        rules,
        t("2026-01-01T00:00:00Z"),
        Resume::of(&status),
        t("2026-01-01T00:55:00Z"),
    );
    assert_eq!(
        machine.unjudged(&status).map(|v| v.reason),
        Some(HeartbeatFailed)
    );
    assert_eq!(machine.deadline(), t("2026-01-01T02:00:00Z"));
    assert!(
        machine.unjudged(&before.status).is_none(),
        "a judged ping is not judged again"
    );
}

#[test]
fn two_pings_of_one_second_are_both_judged_and_a_repeat_is_not() {
    let mut clock = Clock::new(every(H, 10 * M, None), "2026-01-01T00:00:00Z");
    clock.ok("2026-01-01T00:30:00Z");
    clock.ping("2026-01-01T00:30:00Z", PingResult::Fail, None);
    clock.ping("2026-01-01T00:30:00Z", PingResult::Fail, None);
    assert_eq!(clock.reasons(), [Succeeded, HeartbeatFailed]);
}

#[test]
fn a_restart_does_not_count_again_a_miss_of_a_check_never_pinged() {
    let mut before = Clock::new(every(H, 10 * M, None), "2026-01-01T00:00:00Z");
    before.advance("2026-01-01T01:10:02Z");
    assert_eq!(before.reasons(), [HeartbeatMissed]);
    let rules = every(H, 10 * M, None);
    let (created, now) = ("2026-01-01T00:00:00Z", "2026-01-01T01:30:00Z");
    let mut after = Clock::resumed(rules, created, before.status.clone(), now);
    after.advance("2026-01-01T02:10:01Z");
    assert!(after.verdicts.is_empty(), "{:?}", after.verdicts);
    after.advance("2026-01-01T02:10:02Z");
    assert_eq!(after.reasons(), [HeartbeatMissed]);
    assert_eq!(after.status.consecutive_failures, 2);
}
