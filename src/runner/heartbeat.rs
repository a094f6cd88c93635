//! The heartbeat state machine: pure, over an explicit clock (every input carries its time, no
//! tokio time inside), so its tests run on a virtual clock. It turns pings and the passing of
//! deadlines into verdicts; the runner feeds each verdict through `readiness::next_status` like
//! any probe's outcome, so failureThreshold, successThreshold, maintenance windows, Events and
//! metrics apply unchanged.
//!
//! Rules (issue 27): a deadline is the next expected time (last completed run + period, or the
//! schedule's next firing after it) plus grace. A success, `/fail` or non-zero exit code is a
//! completed run: it resets the deadline (so a failure is never followed by a "missed" for the
//! same run). A passed deadline is one `HeartbeatMissed`, then one per further period. `/start`
//! does not move the deadline; with `maxRunDuration`, a started run holds a missed verdict back
//! until it finishes or overruns (`RunTooLong`, which counts as the run). A ping is judged by
//! the time it was received, and a deadline only `settle` after it passed, so a ping that was
//! received in time but delivered late (through the API server) never races its deadline.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::{
    api::{Expectation, HealthCheckStatus, LastPing, PingResult, Reason, ValidHeartbeat, fmt_go},
    probe::Outcome,
};

/// How long after a deadline the machine waits for pings received before it (delivery
/// through the API server's watch) before it calls the deadline missed.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);

/// What the machine judges by.
#[derive(Debug, Clone)]
pub struct Rules {
    pub expect: Expectation,
    pub grace: Duration,
    pub max_run: Option<Duration>,
    pub settle: Duration,
}

impl Rules {
    /// The rules of a valid heartbeat spec.
    pub fn of(spec: &ValidHeartbeat, settle: Duration) -> Self {
        Self {
            expect: spec.expect.clone(),
            grace: spec.grace,
            max_run: spec.max_run,
            settle,
        }
    }
}

impl Verdict {
    /// The verdict as a probe's outcome, dated when it applies.
    pub fn outcome(&self) -> Outcome {
        let mut outcome = Outcome::not_run(self.reason, self.message.clone());
        outcome.started_at = self.at;
        outcome
    }
}

/// One ping as the listener received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ping {
    pub result: PingResult,
    pub exit_code: Option<u8>,
    /// When the listener received it.
    pub at: Timestamp,
    pub message: String,
}

/// What the machine decided, at the time it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub reason: Reason,
    pub at: Timestamp,
    pub message: String,
}

/// Where a resumed check starts from: what status holds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resume {
    /// `status.lastPing.result` and `status.lastPingTime`.
    pub last_ping: Option<(PingResult, Timestamp)>,
    /// `status.lastRunTime`: deadlines up to then were judged already.
    pub judged_until: Option<Timestamp>,
}

impl Resume {
    /// What `status` holds of a heartbeat check.
    pub fn of(status: &HealthCheckStatus) -> Self {
        let last_ping = (status.last_ping.as_ref())
            .zip(status.last_ping_time.as_ref())
            .map(|(ping, at)| (ping.result, at.0));
        Self {
            last_ping,
            judged_until: status.last_run_time.as_ref().map(|t| t.0),
        }
    }
}

impl Ping {
    /// Writes this ping into `status` (`lastPingTime`, `lastPing`).
    pub fn record(&self, status: &mut HealthCheckStatus, run_id: Option<String>) {
        status.last_ping_time = Some(Time(self.at));
        status.last_ping = Some(Box::new(LastPing {
            result: self.result,
            exit_code: self.exit_code.map(i32::from),
            message: self.message.clone(),
            run_id,
        }));
    }

    /// The ping `status` records, if any (what the owner learns from its watch).
    pub fn recorded(status: &HealthCheckStatus) -> Option<Self> {
        let (ping, at) = (status.last_ping.as_ref()?, status.last_ping_time.as_ref()?);
        Some(Self {
            result: ping.result,
            exit_code: ping.exit_code.and_then(|c| u8::try_from(c).ok()),
            at: at.0,
            message: ping.message.clone(),
        })
    }
}

/// The state of one heartbeat check.
#[derive(Debug, Clone)]
pub struct Machine {
    rules: Rules,
    /// The last completed run, or the check's creation while it never ran.
    anchor: Timestamp,
    ran: bool,
    /// The expected time the next deadline belongs to (the deadline is `due + grace`).
    due: Timestamp,
    /// A run announced with `/start` that has not finished.
    started: Option<Timestamp>,
    /// The newest ping applied: older or repeated deliveries are ignored. Status keeps whole
    /// seconds, so two pings of one second are told apart by what they say.
    last_ping: Option<Ping>,
    /// Deadlines missed since the last completed run.
    misses: u64,
}

impl Machine {
    /// A machine for a check created at `created`, resuming from `resume`, at `now`.
    pub fn new(rules: Rules, created: Timestamp, resume: Resume, now: Timestamp) -> Self {
        let mut machine = Self {
            due: created,
            rules,
            anchor: created,
            ran: false,
            started: None,
            last_ping: None,
            misses: 0,
        };
        if let Some((result, at)) = resume.last_ping {
            (machine.anchor, machine.ran) = (at, true);
            machine.last_ping = Some(Ping {
                result,
                exit_code: None,
                at,
                message: String::new(),
            });
            // A run in progress at the restart; the run before it is not in status, so the
            // start stands in for it.
            machine.started = (result == PingResult::Start).then_some(at);
        }
        machine.due = machine.first_due();
        if let Some(judged) = resume.judged_until {
            machine.skip_until(judged.min(now));
        }
        machine
    }

    /// Applies a ping; a finished run is a verdict (`Succeeded` or `HeartbeatFailed`).
    pub fn ping(&mut self, ping: &Ping) -> Option<Verdict> {
        let seen = |last: &Ping| {
            let same = (last.result, last.exit_code, &last.message)
                == (ping.result, ping.exit_code, &ping.message);
            ping.at < last.at || (ping.at == last.at && same)
        };
        if self.last_ping.as_ref().is_some_and(seen) {
            return None;
        }
        self.last_ping = Some(ping.clone());
        let failed = ping.result == PingResult::Fail || ping.exit_code.is_some_and(|c| c != 0);
        if ping.result == PingResult::Start && !failed {
            self.started = Some(ping.at);
            return None;
        }
        let ran_for = (self.started.take()).map(|s| since(s, ping.at));
        self.complete(ping.at);
        Some(verdict_of(ping, ran_for))
    }

    /// The verdict of the ping `status` records when it was recorded after the last verdict
    /// (a replica received it while no runner judged this check: a restart, a handover). The
    /// machine, resumed from the same status, already counts from it.
    pub fn unjudged(&self, status: &HealthCheckStatus) -> Option<Verdict> {
        let ping = Ping::recorded(status)?;
        let judged = status.last_run_time.as_ref().map(|t| t.0);
        if judged.is_some_and(|judged| ping.at <= judged) || ping.result == PingResult::Start {
            return None;
        }
        Some(verdict_of(&ping, None))
    }
}

/// The verdict of a finished run's ping (`ran_for`: since its `/start`).
fn verdict_of(ping: &Ping, ran_for: Option<Duration>) -> Verdict {
    let failed = ping.result == PingResult::Fail || ping.exit_code.is_some_and(|c| c != 0);
    let mut message = match (failed, ping.exit_code) {
        (true, Some(code)) => format!("the job failed with exit code {code}"),
        (true, None) => "the job reported a failure".to_string(),
        (false, _) => "ping received".to_string(),
    };
    if let Some(took) = ran_for {
        message.push_str(&format!(" after running {}", fmt_go(took)));
    }
    if !ping.message.is_empty() {
        message.push_str(&format!(": {}", ping.message));
    }
    let reason = match failed {
        true => Reason::HeartbeatFailed,
        false => Reason::Succeeded,
    };
    Verdict {
        reason,
        at: ping.at,
        message,
    }
}

impl Machine {
    /// What the passing of time decided by `now`: a run that overran, or a missed deadline
    /// (several deadlines passed while nobody judged them are one verdict that says so).
    pub fn tick(&mut self, now: Timestamp) -> Option<Verdict> {
        if let Some(verdict) = self.overran(now) {
            return Some(verdict);
        }
        let deadline = self.deadline();
        if now < add(deadline, self.rules.settle) || self.run_in_time(now) {
            return None;
        }
        let missed = self.skip_until(sub(now, self.rules.settle));
        self.misses += missed;
        let last = match self.ran {
            false => "never pinged".to_string(),
            true => format!("no completed run since {}", self.anchor),
        };
        let more = match missed {
            0 | 1 => String::new(),
            n => format!(" ({n} deadlines passed)"),
        };
        Some(Verdict {
            reason: Reason::HeartbeatMissed,
            at: deadline,
            message: format!(
                "{last}; a ping was expected by {deadline} ({}, grace {}){more}",
                self.rules.expect,
                fmt_go(self.rules.grace)
            ),
        })
    }

    /// When [`Machine::tick`] may next decide something: the end of a bounded open run
    /// (which holds a missed deadline back until then), else the deadline plus `settle`.
    pub fn next_wake(&self) -> Timestamp {
        self.run_end()
            .unwrap_or_else(|| add(self.deadline(), self.rules.settle))
    }

    /// The deadline being waited for.
    pub fn deadline(&self) -> Timestamp {
        add(self.due, self.rules.grace)
    }

    /// While the check never ran and its first deadline has not passed: why it is Pending.
    pub fn pending(&self) -> Option<String> {
        (!self.ran && self.misses == 0).then(|| {
            format!(
                "waiting for the first ping, expected by {} ({}, grace {})",
                self.deadline(),
                self.rules.expect,
                fmt_go(self.rules.grace)
            )
        })
    }

    fn overran(&mut self, now: Timestamp) -> Option<Verdict> {
        let (start, end) = (self.started?, self.run_end()?);
        if now < end {
            return None;
        }
        self.started = None;
        // The run happened (at its start): no "missed" for it, and the next deadline is
        // counted from it, never already in the past.
        self.complete(start);
        self.skip_until(now);
        let max = self.rules.max_run.map(fmt_go).unwrap_or_default();
        Some(Verdict {
            reason: Reason::RunTooLong,
            at: end,
            message: format!("the run started at {start} has not finished within {max}"),
        })
    }

    /// When the open run overruns, if one is open and bounded.
    fn run_end(&self) -> Option<Timestamp> {
        Some(add(self.started?, self.rules.max_run?))
    }

    /// Whether a started run within maxRunDuration holds verdicts back at `now`.
    fn run_in_time(&self, now: Timestamp) -> bool {
        self.run_end().is_some_and(|end| now < end)
    }

    fn complete(&mut self, at: Timestamp) {
        (self.anchor, self.ran, self.misses) = (at, true, 0);
        self.due = self.first_due();
    }

    /// The first expected time after the anchor.
    fn first_due(&self) -> Timestamp {
        self.after(self.anchor)
    }

    /// The expected time after `from`: one period later, or the schedule's next firing.
    fn after(&self, from: Timestamp) -> Timestamp {
        match &self.rules.expect {
            Expectation::Every(period) => add(from, *period),
            // A schedule validated to fire within 400 years; a year stands in otherwise.
            Expectation::Schedule(schedule) => (schedule.next_after(from))
                .unwrap_or_else(|| add(from, Duration::from_secs(366 * 86_400))),
        }
    }

    /// Moves past every deadline at or before `until`; returns how many there were (counted
    /// up to [`MAX_COUNTED`]).
    fn skip_until(&mut self, until: Timestamp) -> u64 {
        if self.deadline() > until {
            return 0;
        }
        let mut passed = 0;
        match &self.rules.expect {
            Expectation::Every(period) => {
                let behind = since(self.deadline(), until).as_nanos();
                let steps = behind / period.as_nanos().max(1) + 1;
                passed = u64::try_from(steps).unwrap_or(u64::MAX);
                let ahead = period.saturating_mul(u32::try_from(steps).unwrap_or(u32::MAX));
                self.due = add(self.due, ahead);
            }
            Expectation::Schedule(_) => {
                while self.deadline() <= until && passed < MAX_COUNTED {
                    self.due = self.after(self.due);
                    passed += 1;
                }
                // Far behind (a long outage): the first firing whose deadline is still ahead.
                if self.deadline() <= until {
                    self.due = self.after(sub(until, self.rules.grace));
                }
            }
        }
        passed
    }
}

/// Most missed deadlines of a schedule counted one by one.
const MAX_COUNTED: u64 = 1000;

fn add(at: Timestamp, duration: Duration) -> Timestamp {
    SignedDuration::try_from(duration)
        .ok()
        .and_then(|d| at.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

fn sub(at: Timestamp, duration: Duration) -> Timestamp {
    SignedDuration::try_from(duration)
        .ok()
        .and_then(|d| at.checked_sub(d).ok())
        .unwrap_or(Timestamp::MIN)
}

fn since(start: Timestamp, end: Timestamp) -> Duration {
    Duration::try_from(end.duration_since(start)).unwrap_or_default()
}

#[cfg(test)]
#[path = "heartbeat_tests.rs"]
mod tests;
