//! What a check did lately, kept by the runner that probes it, for the status page: the last
//! 100 results, the last 50 transitions and hourly buckets for 30 days. Bounded by
//! construction (about 18 KiB per check at full history) and computed from the same runs that
//! feed the metrics, so the page and Prometheus agree. The hourly buckets are also stored in
//! `status.history` (see [`codec`]), at most once per `--status-history-interval`, so a
//! restarted runner or the replica that gains the check resumes them.

mod codec;

use std::collections::VecDeque;

use crate::{
    api::{CheckKey, HealthCheckStatus, ReadyStatus, Reason},
    probe::Outcome,
    readiness::Transition,
};

/// Results kept.
pub const RESULTS: usize = 100;
/// Transitions kept.
pub const TRANSITIONS: usize = 50;
/// Hourly buckets kept (30 days).
pub const HOURS: usize = 30 * 24;
/// Longest transition message kept.
const MESSAGE: usize = 120;

/// One run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunEntry {
    /// Unix seconds of the run's start.
    pub at: i64,
    pub success: bool,
    pub reason: Reason,
    pub latency_ms: u32,
}

impl RunEntry {
    /// The latency, when the run measured one (see [`Reason::measured`]).
    pub fn latency(&self) -> Option<u32> {
        self.reason.measured().then_some(self.latency_ms)
    }
}

/// One change of Ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionEntry {
    pub at: i64,
    pub from: Option<ReadyStatus>,
    pub to: ReadyStatus,
    pub reason: Reason,
    pub message: Box<str>,
}

/// Runs of one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bucket {
    /// Hours since the Unix epoch.
    hour: u32,
    runs: u16,
    successes: u16,
    /// Runs that measured a latency ([`RunEntry::latency`]); `latency_ms` sums theirs only.
    measured: u16,
    latency_ms: u32,
}

/// Uptime and latency over a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub runs: u64,
    pub successes: u64,
    /// `None` when nothing ran in the window.
    pub uptime: Option<f64>,
    /// Over the runs that measured one; `None` when none did.
    pub average_latency_ms: Option<f64>,
}

/// The runs of one hour, as the API shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hour {
    /// Unix seconds of the hour's start.
    pub start: i64,
    pub runs: u32,
    pub successes: u32,
    /// Runs that measured a latency.
    pub measured: u32,
    /// Sum of the latencies of the runs that measured one.
    pub latency_ms: u64,
}

/// The history of one check.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Unix seconds since which this history has data (the runner's start).
    pub since: i64,
    results: VecDeque<RunEntry>,
    transitions: VecDeque<TransitionEntry>,
    /// Hours with runs, oldest first, at most [`HOURS`] of them: a check that ran once holds
    /// one bucket, not 30 days of empty ones.
    hours: VecDeque<Bucket>,
    /// Unix seconds when the buckets were last handed to status (see [`History::store_due`]).
    stored_at: Option<i64>,
}

impl History {
    pub fn new(since: i64) -> Self {
        Self {
            since,
            ..Self::default()
        }
    }

    /// A history restored from what status holds after a restart or a move: the hourly
    /// buckets of `status.history` with the time they start (a forged or truncated one is
    /// ignored and logged: data then starts now), the last result and the Ready condition's
    /// last transition.
    pub fn resumed(key: &CheckKey, status: &HealthCheckStatus) -> Self {
        let now = jiff::Timestamp::now().as_second();
        let mut history = Self::new(now);
        if let Some(text) = &status.history {
            history.restore(key, text, now);
        }
        if let (Some(result), Some(at)) = (&status.last_result, &status.last_run_time) {
            let latency_ms = result
                .duration
                .trim_end_matches('s')
                .parse::<f64>()
                .map_or(0, |s| (s * 1000.0) as u32);
            let entry = RunEntry {
                at: at.0.as_second(),
                success: result.success,
                reason: result.reason,
                latency_ms,
            };
            history.results.push_back(entry);
        }
        if let (Some(ready), Some(condition)) = (status.ready(), status.ready_condition()) {
            history.transitions.push_back(TransitionEntry {
                at: condition.last_transition_time.0.as_second(),
                from: None,
                to: ready,
                reason: status.ready_reason().unwrap_or(Reason::Pending),
                message: condition
                    .message
                    .chars()
                    .take(MESSAGE)
                    .collect::<String>()
                    .into_boxed_str(),
            });
        }
        history
    }

    /// Takes the buckets of a stored history (see [`codec`]), keeping the 30 days up to `now`.
    fn restore(&mut self, key: &CheckKey, text: &str, now: i64) {
        match codec::decode(text) {
            Ok(stored) => {
                let current = u32::try_from(now.max(0) / 3600).unwrap_or(u32::MAX);
                let first = current.saturating_sub(HOURS as u32 - 1);
                self.hours = (stored.buckets.into_iter())
                    .filter(|b| (first..=current).contains(&b.hour))
                    .collect();
                self.since = stored.since.clamp(0, now);
                // Status holds these already: the next store is due an interval from now.
                self.stored_at = Some(now);
            }
            Err(error) => {
                tracing::warn!(check = %key, %error, "status.history ignored: history starts now");
            }
        }
    }

    /// The stored form of the buckets when `every` has passed since they were last stored (or
    /// they never were) at `now`, Unix seconds; `None` otherwise. Status carries it with the
    /// next write that happens anyway, so it costs no write of its own.
    pub fn store_due(&mut self, now: i64, every: i64) -> Option<String> {
        if self
            .stored_at
            .is_some_and(|at| (at..at + every).contains(&now))
        {
            return None;
        }
        self.stored_at = Some(now);
        Some(self.stored())
    }

    /// Whether the buckets are kept in status too (restored from it, or handed to it), so a
    /// restart or a move resumes them.
    pub fn stored_in_status(&self) -> bool {
        self.stored_at.is_some()
    }

    /// The buckets and `since` in their stored form (see [`codec`]).
    pub fn stored(&self) -> String {
        let hours: Vec<Bucket> = self.hours.iter().copied().collect();
        codec::encode(self.since, &hours)
    }

    /// Records a probe run (not a status-only report such as Suspended).
    pub fn record(&mut self, outcome: &Outcome) {
        let at = outcome.started_at.as_second();
        let latency_ms = u32::try_from(outcome.duration.as_millis()).unwrap_or(u32::MAX);
        let entry = RunEntry {
            at,
            success: outcome.success(),
            reason: outcome.reason,
            latency_ms,
        };
        if self.results.len() == RESULTS {
            self.results.pop_front();
        }
        self.results.push_back(entry);
        self.bucket(at, entry);
    }

    fn bucket(&mut self, at: i64, entry: RunEntry) {
        let hour = u32::try_from(at.max(0) / 3600).unwrap_or(u32::MAX);
        // Runs arrive in time order but for clock steps: find or insert the hour's bucket.
        let index = match self.hours.back() {
            Some(last) if last.hour == hour => self.hours.len() - 1,
            Some(last) if last.hour > hour => {
                match self.hours.binary_search_by_key(&hour, |b| b.hour) {
                    Ok(found) => found,
                    Err(place) => self.insert(place, hour),
                }
            }
            _ => self.insert(self.hours.len(), hour),
        };
        let slot = &mut self.hours[index];
        slot.runs = slot.runs.saturating_add(1);
        slot.successes = slot.successes.saturating_add(u16::from(entry.success));
        if let Some(latency) = entry.latency() {
            slot.measured = slot.measured.saturating_add(1);
            slot.latency_ms = slot.latency_ms.saturating_add(latency);
        }
        // Only 30 days are kept, counted back from the newest hour.
        let newest = self.hours.back().map_or(hour, |b| b.hour);
        while (self.hours.front()).is_some_and(|b| newest - b.hour >= HOURS as u32) {
            self.hours.pop_front();
        }
    }

    /// Inserts an empty bucket for `hour` at `place`, returning its index after the insertion.
    fn insert(&mut self, place: usize, hour: u32) -> usize {
        let bucket = Bucket {
            hour,
            ..Bucket::default()
        };
        // Grow by doubling, but never past 30 days (and the one popped right after).
        if self.hours.len() == self.hours.capacity() {
            let want = (self.hours.len() * 2).clamp(4, HOURS + 1);
            self.hours
                .reserve_exact(want.saturating_sub(self.hours.len()));
        }
        self.hours.insert(place, bucket);
        place
    }

    /// Records a change of Ready.
    pub fn transition(&mut self, at: i64, transition: &Transition) {
        if self.transitions.len() == TRANSITIONS {
            self.transitions.pop_front();
        }
        let message: String = transition.message.chars().take(MESSAGE).collect();
        self.transitions.push_back(TransitionEntry {
            at,
            from: transition.from,
            to: transition.to,
            reason: transition.reason,
            message: message.into_boxed_str(),
        });
    }

    /// The last results, oldest first.
    pub fn results(&self) -> impl DoubleEndedIterator<Item = &RunEntry> {
        self.results.iter()
    }

    /// The last transitions, oldest first.
    pub fn transitions(&self) -> impl DoubleEndedIterator<Item = &TransitionEntry> {
        self.transitions.iter()
    }

    /// Uptime and average latency over the `hours` up to and including the hour of `now`.
    pub fn window(&self, now: i64, hours: u32) -> Window {
        let current = u32::try_from(now.max(0) / 3600).unwrap_or(u32::MAX);
        let first = current.saturating_sub(hours.saturating_sub(1));
        let (mut runs, mut successes, mut measured, mut latency) = (0u64, 0u64, 0u64, 0u64);
        for bucket in self
            .hours
            .iter()
            .filter(|b| b.runs > 0 && (first..=current).contains(&b.hour))
        {
            runs += u64::from(bucket.runs);
            successes += u64::from(bucket.successes);
            measured += u64::from(bucket.measured);
            latency += u64::from(bucket.latency_ms);
        }
        let ratio = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
        Window {
            runs,
            successes,
            uptime: ratio(successes, runs),
            average_latency_ms: ratio(latency, measured),
        }
    }

    /// The hours with runs among the 30 days up to `now`, oldest first.
    pub fn hours(&self, now: i64) -> Vec<Hour> {
        let current = u32::try_from(now.max(0) / 3600).unwrap_or(u32::MAX);
        let first = current.saturating_sub(HOURS as u32 - 1);
        (self.hours.iter())
            .filter(|b| b.runs > 0 && (first..=current).contains(&b.hour))
            .map(|b| Hour {
                start: i64::from(b.hour) * 3600,
                runs: u32::from(b.runs),
                successes: u32::from(b.successes),
                measured: u32::from(b.measured),
                latency_ms: u64::from(b.latency_ms),
            })
            .collect()
    }

    /// Heap bytes this history holds (for the memory figure).
    pub fn heap_bytes(&self) -> usize {
        let messages: usize = self.transitions.iter().map(|t| t.message.len()).sum();
        self.results.capacity() * std::mem::size_of::<RunEntry>()
            + self.transitions.capacity() * std::mem::size_of::<TransitionEntry>()
            + messages
            + self.hours.capacity() * std::mem::size_of::<Bucket>()
    }
}

#[cfg(test)]
mod tests {
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
}
