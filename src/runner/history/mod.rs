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
mod tests;
