//! The one status writer: runs report their status here, writes are coalesced per object
//! (latest wins), skipped when only timestamps changed (until a heartbeat is due), sent under
//! a global rate limit with a timeout each, retried with backoff, and counted. Probing never
//! waits for it. Fields an older installed CRD does not declare are left out ([`drift`]).
//!
//! Someone waits for two kinds of write: the first of an object or of a new generation, and
//! the one carrying a newly handled run-now (`status.lastHandledRunNow`). Those go ahead of the
//! queue and spend the first-write budget (`--status-first-write-qps`) before the steady one;
//! run-now writes are bounded by the run-now window of each check
//! ([`crate::runner::RUN_NOW_WINDOW`]).

mod drift;
pub(crate) mod queue;

use queue::{Pending, Queue};

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams},
};
use tokio::{sync::Notify, time::Instant};

use crate::{
    api::{HealthCheck, HealthCheckStatus, READY, fmt_go},
    lock,
    metrics::Metrics,
    runner::{CheckKey, Registration, RunReport, Sink, Vital},
};

/// Field manager of every status write.
pub const FIELD_MANAGER: &str = "canary-operator";
/// Deadline of one status patch.
const PATCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Undeclared fields one write learns at most (kube names one per object per answer).
const MAX_LEARNED: usize = 16;
/// First and last retry delay after a failed write.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// What one status patch got: the answer, or a timeout.
type Outcome = Result<Result<HealthCheck, kube::Error>, tokio::time::error::Elapsed>;

/// How one status write ended (the `result` label of `canary_status_writes_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Success,
    /// The object is gone: nothing to retry.
    NotFound,
    Conflict,
    Error,
    Timeout,
    /// Only timestamps changed and no heartbeat was due.
    Skipped,
}

impl Written {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Skipped => "skipped",
        }
    }

    /// Whether the write should be retried.
    fn retry(self) -> bool {
        matches!(self, Self::Conflict | Self::Error | Self::Timeout)
    }
}

/// Writer settings.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Steady-state writes per second and burst.
    pub qps: u32,
    pub burst: u32,
    /// A separate budget for the first write of an object or of a new generation.
    pub first_qps: u32,
    pub first_burst: u32,
    pub heartbeat: Duration,
    /// `status.history` is refreshed at most this often (`--status-history-interval`); it never
    /// causes a write of its own (see [`without_timestamps`]).
    pub history: Duration,
    /// `/healthz` fails when writes are pending and none succeeded for this long.
    pub stall: Duration,
}

/// The last status written for an object.
struct LastWrite {
    status: HealthCheckStatus,
    at: Instant,
}

struct Shared {
    client: Client,
    config: WriterConfig,
    metrics: Arc<Metrics>,
    pending: Mutex<Queue>,
    written: Mutex<HashMap<CheckKey, LastWrite>>,
    notify: Notify,
    /// Only the leader writes; a standby drops what it is given.
    enabled: AtomicBool,
    /// When a write last succeeded (or the writer started).
    last_success: Mutex<Instant>,
    /// Writes the writer task has taken from the queue and not finished.
    in_flight: AtomicUsize,
    /// Set by flush(): the writer task takes no more work.
    stopping: AtomicBool,
    /// The first-write and steady budgets (discovery's writes spend them too).
    first_writes: DefaultDirectRateLimiter,
    limiter: DefaultDirectRateLimiter,
    /// Status fields the installed CRD does not declare.
    drift: drift::Drift,
}

/// Counts a write taken from the queue until it is done (or cancelled).
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Handle to the writer task; also the scheduler sink feeding it.
#[derive(Clone)]
pub struct StatusWriter {
    shared: Arc<Shared>,
}

impl StatusWriter {
    /// Its rates and heartbeat.
    pub fn config(&self) -> &WriterConfig {
        &self.shared.config
    }

    /// Creates the writer; call [`StatusWriter::run`] on the main runtime.
    pub fn new(client: Client, config: WriterConfig, metrics: Arc<Metrics>) -> Self {
        let first_writes = limiter(config.first_qps, config.first_burst);
        let steady = limiter(config.qps, config.burst);
        Self {
            shared: Arc::new(Shared {
                client,
                config,
                pending: Mutex::new(Queue::default()),
                written: Mutex::new(HashMap::new()),
                notify: Notify::new(),
                enabled: AtomicBool::new(false),
                last_success: Mutex::new(Instant::now()),
                in_flight: AtomicUsize::new(0),
                stopping: AtomicBool::new(false),
                first_writes,
                limiter: steady,
                drift: drift::Drift::new(metrics.operator.status_fields_dropped.clone()),
                metrics,
            }),
        }
    }

    /// Starts or stops writing (leadership); stopping drops what is pending.
    pub fn set_enabled(&self, enabled: bool) {
        self.shared.enabled.store(enabled, Ordering::SeqCst);
        if !enabled {
            lock(&self.shared.pending).clear();
            lock(&self.shared.written).clear();
        }
    }

    /// Remembers the status an object already carries, so the first run after a restart does
    /// not rewrite an unchanged status.
    pub fn seed(&self, key: &CheckKey, status: &HealthCheckStatus) {
        let mut written = lock(&self.shared.written);
        written.entry(key.clone()).or_insert_with(|| LastWrite {
            status: status.clone(),
            at: Instant::now(),
        });
    }

    /// Forgets a deleted object.
    pub fn forget(&self, key: &CheckKey) {
        lock(&self.shared.pending).remove(key);
        lock(&self.shared.written).remove(key);
    }

    /// Writes pending statuses until `deadline` passes or nothing is pending.
    /// Stops the writer task taking new work, lets its write in flight finish (so writes
    /// land in order), then writes what is still queued, until `deadline` passes.
    pub async fn flush(&self, deadline: Duration) {
        let until = Instant::now() + deadline;
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.notify.notify_one();
        while self.shared.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let limiter = limiter(self.shared.config.qps, self.shared.config.burst);
        while Instant::now() < until {
            let next = lock(&self.shared.pending).pop_ready(Instant::now() + deadline);
            let Some((key, pending)) = next else {
                break;
            };
            let _ = tokio::time::timeout_at(until, limiter.until_ready()).await;
            let _ = tokio::time::timeout_at(until, self.write(&key, pending.status)).await;
        }
    }

    /// Waits for a write slot from the budgets status writes spend: the first-write budget
    /// when `first` (an object someone waits for) and it has room, else the steady one. The
    /// discovery controller's writes go through here, so a storm of generated checks shares
    /// the configured write rate with status instead of adding its own.
    pub async fn budget(&self, first: bool) {
        if !(first && self.shared.first_writes.check().is_ok()) {
            self.shared.limiter.until_ready().await;
        }
    }

    /// The writer loop; runs forever.
    pub async fn run(self) {
        let first_writes = &self.shared.first_writes;
        let limiter = &self.shared.limiter;
        loop {
            let notified = self.shared.notify.notified();
            if self.shared.stopping.load(Ordering::SeqCst) {
                // flush() finishes the queue; this task just stays out of its way.
                return std::future::pending().await;
            }
            let Some((key, pending)) = queue::next_due(&self.shared.pending, notified).await else {
                continue;
            };
            let _in_flight = InFlight::enter(&self.shared.in_flight);
            if self.skippable(&key, &pending.status, pending.clamp) {
                self.count(Written::Skipped);
                continue;
            }
            // The first write of an object or of a new generation (a check just applied or
            // edited: someone is waiting for its verdict), or a run-now's, spends its own
            // budget first.
            let awaited = pending.urgent || self.first_write(&key, &pending.status);
            if !(awaited && first_writes.check().is_ok()) {
                limiter.until_ready().await;
            }
            // A newer status may have been reported while waiting for a slot: write that one.
            let newer = lock(&self.shared.pending).remove(&key);
            let pending = match newer {
                Some(newer) => Pending {
                    failures: pending.failures,
                    since: pending.since.min(newer.since),
                    ..newer
                },
                None => pending,
            };
            if !self.shared.enabled.load(Ordering::SeqCst) || pending.registration.removed() {
                continue;
            }
            let result = self.write(&key, pending.status.clone()).await;
            if result.retry() {
                self.retry(key, pending, result);
            }
        }
    }

    /// Whether `status` is the first this writer writes for `key`, or for a new generation.
    fn first_write(&self, key: &CheckKey, status: &HealthCheckStatus) -> bool {
        (lock(&self.shared.written).get(key))
            .is_none_or(|last| last.status.observed_generation != status.observed_generation)
    }

    /// Whether `status` carries a handled run-now the last write did not.
    fn unwritten_run_now(&self, key: &CheckKey, status: &HealthCheckStatus) -> bool {
        let handled = &status.last_handled_run_now;
        handled.is_some()
            && (lock(&self.shared.written).get(key))
                .is_none_or(|last| last.status.last_handled_run_now != *handled)
    }

    /// True when the last write differs only in timestamps and no heartbeat is due.
    fn skippable(&self, key: &CheckKey, status: &HealthCheckStatus, clamp: i64) -> bool {
        let written = lock(&self.shared.written);
        let Some(last) = written.get(key) else {
            return false;
        };
        last.at.elapsed() < self.shared.config.heartbeat
            && without_timestamps(&last.status, clamp) == without_timestamps(status, clamp)
    }

    fn count(&self, result: Written) {
        (self.shared.metrics.operator.status_writes)
            .with_label_values(&[result.label()])
            .inc();
    }

    fn retry(&self, key: CheckKey, pending: Pending, result: Written) {
        let mut queue = lock(&self.shared.pending);
        // Checked under the lock on_remove takes, as in on_run.
        if pending.registration.removed() {
            return;
        }
        let failures = pending.failures + 1;
        let delay = (RETRY_MIN * 2u32.saturating_pow(failures.min(10))).min(RETRY_MAX);
        // A newer status reported meanwhile wins; it inherits the backoff.
        if !queue.items.contains_key(&key) {
            let urgent = pending.urgent;
            queue.put(
                &key,
                pending.status,
                pending.clamp,
                &pending.registration,
                urgent,
            );
        }
        if let Some(entry) = queue.items.get_mut(&key) {
            entry.failures = failures;
            entry.not_before = Some(Instant::now() + delay);
            entry.since = entry.since.min(pending.since);
        }
        tracing::debug!(check = %key, result = result.label(), ?delay, "status write will be retried");
    }

    /// One server-side-apply patch of `/status`, sent again at once without the fields the
    /// API server answers the installed CRD does not declare (each answer names some).
    async fn apply_status(&self, key: &CheckKey, status: &HealthCheckStatus) -> Outcome {
        let api: Api<HealthCheck> = Api::namespaced(self.shared.client.clone(), &key.namespace);
        // force: the operator is the only writer of status by design; a manual
        // `kubectl patch --subresource=status` must not wedge it with a field conflict.
        let params = PatchParams::apply(FIELD_MANAGER).force();
        // The last heartbeat ping is written by the replica that received it, under its own
        // field manager ([`super::pings`]): applying a copy here would take it over and could
        // write back an older ping.
        let status = &HealthCheckStatus {
            last_ping_time: None,
            last_ping: None,
            ..status.clone()
        };
        let drift = &self.shared.drift;
        let mut learned = Vec::new();
        let outcome = loop {
            let (status, full) = drift.prepare(serde_json::json!(status));
            let patch = Patch::Apply(serde_json::json!({
                "apiVersion": HealthCheck::api_version(&()),
                "kind": HealthCheck::kind(&()),
                "status": status,
            }));
            let sent = api.patch_status(&key.name, &params, &patch);
            let outcome = tokio::time::timeout(PATCH_TIMEOUT, sent).await;
            match &outcome {
                Ok(Ok(_)) if full => drift.full_write_succeeded(),
                Ok(Err(kube::Error::Api(s))) if s.code == 500 && learned.len() < MAX_LEARNED => {
                    let news = drift.learn(&s.message);
                    if !news.fresh.is_empty() || (full && news.named) {
                        self.count(Written::Error);
                        learned.extend(news.fresh);
                        continue;
                    }
                }
                _ => {}
            }
            break outcome;
        };
        drift.report(&learned);
        outcome
    }

    /// One status write, counted and logged.
    async fn write(&self, key: &CheckKey, status: HealthCheckStatus) -> Written {
        let outcome = self.apply_status(key, &status).await;
        let result = match &outcome {
            Ok(Ok(_)) => Written::Success,
            Ok(Err(kube::Error::Api(s))) if s.code == 404 => Written::NotFound,
            Ok(Err(kube::Error::Api(s))) if s.code == 409 => Written::Conflict,
            Ok(Err(_)) => Written::Error,
            Err(_) => Written::Timeout,
        };
        self.count(result);
        match outcome {
            Ok(Ok(_)) => {
                let now = Instant::now();
                *lock(&self.shared.last_success) = now;
                let last = LastWrite { status, at: now };
                lock(&self.shared.written).insert(key.clone(), last);
            }
            Ok(Err(error)) if result.retry() => {
                let error = super::api_error::describe(&error);
                tracing::warn!(check = %key, %error, "status write failed")
            }
            Err(_) => tracing::warn!(check = %key, "status write timed out"),
            Ok(Err(_)) => {}
        }
        result
    }
}

fn limiter(qps: u32, burst: u32) -> DefaultDirectRateLimiter {
    let qps = NonZeroU32::new(qps.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(qps).allow_burst(burst))
}

/// The status with every field that changes on every run blanked out, and counters capped at
/// the thresholds (beyond them a count changes nothing).
fn without_timestamps(status: &HealthCheckStatus, clamp: i64) -> HealthCheckStatus {
    let mut stripped = status.clone();
    stripped.consecutive_failures = stripped.consecutive_failures.min(clamp);
    stripped.consecutive_successes = stripped.consecutive_successes.min(clamp);
    stripped.last_run_time = None;
    stripped.last_success_time = None;
    stripped.last_failure_time = None;
    stripped.next_run_time = None;
    // Refreshed hourly, it rides on the next write that happens anyway.
    stripped.history = None;
    if let Some(result) = stripped.last_result.as_mut() {
        result.duration.clear();
        result.phases = None;
        result.message.clear();
        // A cache's TTLs count down and servers rotate answers: neither is a change of state.
        if let Some(dns) = result.dns.as_mut() {
            dns.min_ttl = None;
            dns.answers.sort();
        }
    }
    if let Some(ready) = stripped.conditions.iter_mut().find(|c| c.type_ == READY) {
        ready.message.clear();
    }
    // A location's last run moves with every report: state is its ready, reason and stale.
    for location in &mut stripped.locations {
        location.last_run_time = None;
    }
    stripped
}

impl Vital for StatusWriter {
    fn problems(&self, now: Instant) -> Vec<String> {
        let (oldest, pending) = {
            let queue = lock(&self.shared.pending);
            (queue.oldest(), queue.items.len())
        };
        let Some(oldest) = oldest else {
            return Vec::new();
        };
        let since = oldest.max(*lock(&self.shared.last_success));
        let quiet = now.saturating_duration_since(since);
        if quiet <= self.shared.config.stall {
            return Vec::new();
        }
        vec![format!(
            "no status write has succeeded for {} while {pending} are pending (--writer-stall {})",
            fmt_go(quiet),
            fmt_go(self.shared.config.stall)
        )]
    }
}

impl Sink for StatusWriter {
    fn on_run(&self, report: &RunReport<'_>) {
        if !self.shared.enabled.load(Ordering::SeqCst) {
            return;
        }
        let schedule = &report.spec.schedule;
        let clamp = i64::from(
            (schedule.failure_threshold)
                .max(schedule.success_threshold)
                .get(),
        );
        let urgent = self.unwritten_run_now(report.key, report.status);
        let mut pending = lock(&self.shared.pending);
        // Checked under the lock on_remove takes: a run reporting while its check is removed
        // must not queue a write for it, nor a replaced runner's late report (see
        // [`crate::runner::Registration`]).
        if !report.registration.live() {
            return;
        }
        pending.put(
            report.key,
            report.status.clone(),
            clamp,
            report.registration,
            urgent,
        );
        drop(pending);
        self.shared.notify.notify_one();
    }

    fn on_remove(&self, key: &CheckKey) {
        lock(&self.shared.pending).remove(key);
    }
}

impl StatusWriter {
    /// Queues a status decided outside a runner (the hub's aggregate of a check with
    /// locations), under the same coalescing, skipping and budgets; dropped once
    /// `registration` ends.
    pub fn put(&self, key: &CheckKey, status: HealthCheckStatus, registration: &Arc<Registration>) {
        if !self.shared.enabled.load(Ordering::SeqCst) {
            return;
        }
        let mut pending = lock(&self.shared.pending);
        if !registration.live() {
            return;
        }
        pending.put(key, status, 1, registration, false);
        drop(pending);
        self.shared.notify.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        api::{LastResult, Reason},
        probe::Outcome,
        runner::{Plan, Registration, RunnerSpec, Schedule},
    };

    fn status(successes: i64, duration: &str, reason: Reason) -> HealthCheckStatus {
        HealthCheckStatus {
            consecutive_successes: successes,
            last_run_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::now(),
            )),
            last_result: Some(Box::new(LastResult {
                http_status: Some(200),
                ..LastResult::new(
                    reason == Reason::Succeeded,
                    reason,
                    format!("answered in {duration}"),
                    duration.into(),
                )
            })),
            ..HealthCheckStatus::default()
        }
    }

    fn key(name: &str) -> CheckKey {
        CheckKey {
            namespace: "n".into(),
            name: name.into(),
        }
    }

    #[test]
    fn only_timestamps_and_counters_past_thresholds_are_not_worth_a_write() {
        let (a, b) = (
            status(5, "0.010s", Reason::Succeeded),
            status(6, "0.020s", Reason::Succeeded),
        );
        assert_eq!(without_timestamps(&a, 3), without_timestamps(&b, 3));
        assert_ne!(
            without_timestamps(&a, 10),
            without_timestamps(&b, 10),
            "counts below a threshold are state"
        );
        let failing = status(0, "0.020s", Reason::Timeout);
        assert_ne!(without_timestamps(&a, 3), without_timestamps(&failing, 3));
        // Issue 28: a refreshed history rides on the next write, never causes one.
        let refreshed = HealthCheckStatus {
            history: Some("1.AQ".into()),
            ..b.clone()
        };
        assert_eq!(without_timestamps(&a, 3), without_timestamps(&refreshed, 3));
    }

    fn writer() -> StatusWriter {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let config = WriterConfig {
            qps: 1,
            burst: 1,
            first_qps: 1,
            first_burst: 1,
            heartbeat: Duration::from_secs(60),
            history: Duration::from_secs(3600),
            stall: Duration::from_secs(60),
        };
        let writer = StatusWriter::new(client, config, Arc::new(Metrics::new().unwrap()));
        writer.set_enabled(true);
        writer
    }

    fn run(writer: &StatusWriter, spec: &RunnerSpec, registration: &Arc<Registration>) {
        let outcome = Outcome::not_run(Reason::InvalidSpec, "");
        let status = status(0, "0s", Reason::InvalidSpec);
        writer.on_run(&RunReport::of(spec, &outcome, &status, registration));
    }

    /// A check that cannot run: its runs report at once, with nothing to probe.
    fn blocked_spec() -> RunnerSpec {
        let plan = Plan::Blocked {
            reason: Reason::InvalidSpec,
            message: String::new(),
        };
        let schedule = Schedule::every(Duration::from_secs(1), Duration::ZERO);
        RunnerSpec::new(key("a"), schedule, plan)
    }

    fn queued(writer: &StatusWriter, key: &CheckKey) -> bool {
        lock(&writer.shared.pending).items.contains_key(key)
    }

    #[tokio::test]
    async fn a_run_reported_after_its_check_was_removed_queues_no_write() {
        let writer = writer();
        let spec = blocked_spec();
        let removed = Arc::new(Registration::default());
        run(&writer, &spec, &removed);
        assert!(queued(&writer, &spec.key));
        // What Scheduler::remove does, then the late report of a run already past its awaits.
        removed.end();
        writer.on_remove(&spec.key);
        run(&writer, &spec, &removed);
        assert!(
            !queued(&writer, &spec.key),
            "a removed check got a write queued"
        );
        run(&writer, &spec, &Arc::default());
        assert!(
            queued(&writer, &spec.key),
            "the check added again has no write queued"
        );
    }

    /// A replaced runner's report that arrives late (its run was past its last await) queues
    /// nothing, so it cannot overwrite the new runner's `Reconciling`; a write it queued before
    /// the replacement still goes out.
    #[tokio::test]
    async fn a_replaced_runners_late_report_queues_no_write() {
        let writer = writer();
        let spec = blocked_spec();
        let old = Arc::new(Registration::default());
        run(&writer, &spec, &old);
        let new = Arc::new(old.supersede());
        assert!(queued(&writer, &spec.key), "queued before the replacement");
        lock(&writer.shared.pending).remove(&spec.key);
        run(&writer, &spec, &old);
        assert!(
            !queued(&writer, &spec.key),
            "a replaced runner queued a write"
        );
        run(&writer, &spec, &new);
        assert!(queued(&writer, &spec.key));
    }

    /// A write taken off the queue (waiting for the rate limiter, or failed) when its check is
    /// removed or moved away is neither retried nor re-queued.
    #[tokio::test]
    async fn a_failed_write_of_a_check_removed_meanwhile_is_not_retried() {
        let writer = writer();
        let spec = blocked_spec();
        let registration = Arc::new(Registration::default());
        run(&writer, &spec, &registration);
        let taken = lock(&writer.shared.pending).pop_ready(Instant::now());
        let (key, pending) = taken.expect("a write queued");
        registration.end();
        writer.on_remove(&key);
        writer.retry(key.clone(), pending, Written::Error);
        assert!(!queued(&writer, &key), "a removed check's write came back");
    }
}
