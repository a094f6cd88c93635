//! The report writer: the spoke scheduler's sink that writes each hub check's result into the
//! hub as its location's [`crate::api::CheckReport`], the way the status writer writes status:
//! coalesced per check (latest wins, the status writer's queue), skipped when nothing but
//! timestamps changed until `--status-heartbeat` is due, spending the status writer's budgets,
//! retried with backoff. Probing never waits for it: with the hub down, runs go on and reports
//! resume when it answers.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use prometheus::IntCounterVec;
use tokio::{sync::Notify, time::Instant};

use super::report::{changed, report_object, report_status, status_patch};
use crate::{
    api::{CheckReport, CheckReportStatus, report_name},
    controller::writer::{
        StatusWriter, Written,
        queue::{self, Pending, Queue},
    },
    lock,
    runner::{CheckKey, RunReport, Sink},
};

/// Deadline of one apply.
const PATCH_TIMEOUT: Duration = Duration::from_secs(10);
/// First and last retry delay after a failed write.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// What was last written for a check.
struct LastWrite {
    /// The HealthCheck the report's ownerReference names (a recreated check gets a new one).
    uid: String,
    status: CheckReportStatus,
    at: Instant,
}

struct Shared {
    hub: Client,
    location: String,
    heartbeat: Duration,
    /// The status writer, for its budgets (reports share them with status writes).
    budget: StatusWriter,
    /// `canary_status_writes_total{result}`: report writes count as status writes.
    writes: IntCounterVec,
    pending: Mutex<Queue>,
    /// The uid of each queued check's HealthCheck in the hub (set with its run).
    uids: Mutex<HashMap<CheckKey, String>>,
    written: Mutex<HashMap<CheckKey, LastWrite>>,
    notify: Notify,
}

/// Handle to the report writer; also the spoke scheduler's sink feeding it.
#[derive(Clone)]
pub struct ReportWriter {
    shared: Arc<Shared>,
}

/// How one report write failed.
#[derive(Debug, thiserror::Error)]
enum WriteError {
    #[error(
        "applying CheckReport {name}: {}",
        crate::controller::api_error::describe(source)
    )]
    Apply {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("applying CheckReport {0}: no answer within {PATCH_TIMEOUT:?}")]
    Timeout(String),
}

impl WriteError {
    fn written(&self) -> Written {
        match self {
            Self::Apply {
                source: kube::Error::Api(s),
                ..
            } if s.code == 404 => Written::NotFound,
            Self::Apply {
                source: kube::Error::Api(s),
                ..
            } if s.code == 409 => Written::Conflict,
            Self::Apply { .. } => Written::Error,
            Self::Timeout(_) => Written::Timeout,
        }
    }
}

impl ReportWriter {
    /// A writer of `location`'s reports into `hub`; call [`ReportWriter::run`].
    pub fn new(
        hub: Client,
        location: String,
        heartbeat: Duration,
        budget: StatusWriter,
        writes: IntCounterVec,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                hub,
                location,
                heartbeat,
                budget,
                writes,
                pending: Mutex::new(Queue::default()),
                uids: Mutex::new(HashMap::new()),
                written: Mutex::new(HashMap::new()),
                notify: Notify::new(),
            }),
        }
    }

    /// Remembers a report found in the hub (a restart): runners resume from it
    /// ([`ReportWriter::last`]), and the first run writes it again once (its heartbeat is due).
    pub fn seed(&self, key: CheckKey, uid: String, status: CheckReportStatus) {
        let at = Instant::now().checked_sub(self.shared.heartbeat);
        let at = at.unwrap_or_else(Instant::now);
        let last = LastWrite { uid, status, at };
        lock(&self.shared.written).entry(key).or_insert(last);
    }

    /// The last report written (or found) for the check `key` with `uid`.
    pub fn last(&self, key: &CheckKey, uid: &str) -> Option<CheckReportStatus> {
        let written = lock(&self.shared.written);
        (written.get(key))
            .filter(|last| last.uid == uid)
            .map(|last| last.status.clone())
    }

    /// The field manager of this location's reports.
    pub fn field_manager(location: &str) -> String {
        format!("canary-spoke-{location}")
    }

    /// Writes queued reports, forever.
    pub async fn run(self) {
        loop {
            let notified = self.shared.notify.notified();
            let Some((key, pending)) = queue::next_due(&self.shared.pending, notified).await else {
                continue;
            };
            self.handle(key, pending).await;
        }
    }

    /// Writes what is still queued (retries included) until `deadline` passes; call once the
    /// writer task is stopped (shutdown: the last verdicts reach the hub).
    pub async fn flush(&self, deadline: Duration) {
        let until = Instant::now() + deadline;
        while Instant::now() < until {
            let next = lock(&self.shared.pending).pop_ready(until);
            let Some((key, pending)) = next else {
                break;
            };
            let _ = tokio::time::timeout_at(until, self.handle(key, pending)).await;
        }
    }

    /// One queued report: skipped, or written within the budget (retried on failure).
    async fn handle(&self, key: CheckKey, pending: Pending) {
        if pending.registration.removed() {
            return;
        }
        let Some(uid) = lock(&self.shared.uids).get(&key).cloned() else {
            return;
        };
        let report = report_status(&pending.status);
        let (first, due) = self.due(&key, &uid, &report, pending.clamp);
        if !due {
            return self.count(Written::Skipped);
        }
        self.shared.budget.budget(first).await;
        match self.write(&key, &uid, &report, first).await {
            Ok(()) => {
                self.count(Written::Success);
                let at = Instant::now();
                let last = LastWrite {
                    uid,
                    status: report,
                    at,
                };
                lock(&self.shared.written).insert(key, last);
            }
            Err(error) => {
                let result = error.written();
                self.count(result);
                if result == Written::NotFound {
                    // The report was deleted by hand: the retry creates it again.
                    lock(&self.shared.written).remove(&key);
                }
                tracing::warn!(check = %key, %error, "CheckReport write failed; retrying with backoff");
                self.retry(key, pending);
            }
        }
    }

    /// Whether the report is the first for this check (the object must be created), and
    /// whether it is worth a write (first, changed, or a heartbeat is due).
    fn due(
        &self,
        key: &CheckKey,
        uid: &str,
        report: &CheckReportStatus,
        clamp: i64,
    ) -> (bool, bool) {
        let written = lock(&self.shared.written);
        match written.get(key).filter(|last| last.uid == uid) {
            None => (true, true),
            Some(last) => {
                let stale = last.at.elapsed() >= self.shared.heartbeat;
                (false, stale || changed(&last.status, report, clamp))
            }
        }
    }

    /// Applies the report (its object first when it is new), then its status.
    async fn write(
        &self,
        key: &CheckKey,
        uid: &str,
        report: &CheckReportStatus,
        first: bool,
    ) -> Result<(), WriteError> {
        let location = &self.shared.location;
        let name = report_name(&key.name, location);
        let api: Api<CheckReport> = Api::namespaced(self.shared.hub.clone(), &key.namespace);
        // force: this location's spokes are the only writers of this report by design (one
        // field manager per location); a manual edit must not wedge them with a conflict.
        let params = PatchParams::apply(&Self::field_manager(location)).force();
        let failed = |source| WriteError::Apply {
            name: name.clone(),
            source,
        };
        if first {
            let heartbeat = self.shared.heartbeat.as_secs() as i64;
            let object = report_object(key, uid, location, heartbeat);
            let patch = Patch::Apply(object);
            let sent = api.patch(&name, &params, &patch);
            match tokio::time::timeout(PATCH_TIMEOUT, sent).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return Err(failed(error)),
                Err(_) => return Err(WriteError::Timeout(name)),
            }
        }
        let patch = Patch::Apply(status_patch(report));
        let sent = api.patch_status(&name, &params, &patch);
        match tokio::time::timeout(PATCH_TIMEOUT, sent).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(failed(error)),
            Err(_) => Err(WriteError::Timeout(name)),
        }
    }

    /// Queues `pending` again after a delay growing with its failures; a newer report queued
    /// meanwhile wins and inherits the backoff.
    fn retry(&self, key: CheckKey, pending: Pending) {
        let mut queue = lock(&self.shared.pending);
        if pending.registration.removed() {
            return;
        }
        let failures = pending.failures + 1;
        let delay = (RETRY_MIN * 2u32.saturating_pow(failures.min(10))).min(RETRY_MAX);
        if !queue.items.contains_key(&key) {
            let (status, clamp) = (pending.status.clone(), pending.clamp);
            queue.put(&key, status, clamp, &pending.registration, false);
        }
        if let Some(entry) = queue.items.get_mut(&key) {
            entry.failures = failures;
            entry.not_before = Some(Instant::now() + delay);
        }
    }

    fn count(&self, result: Written) {
        (self.shared.writes)
            .with_label_values(&[result.label()])
            .inc();
    }
}

impl Sink for ReportWriter {
    fn on_run(&self, report: &RunReport<'_>) {
        let Some(uid) = report.spec.uid.clone() else {
            return;
        };
        let schedule = &report.spec.schedule;
        let clamp = i64::from(
            (schedule.failure_threshold)
                .max(schedule.success_threshold)
                .get(),
        );
        let mut pending = lock(&self.shared.pending);
        // Checked under the lock on_remove takes (see [`crate::runner::Registration`]).
        if !report.registration.live() {
            return;
        }
        lock(&self.shared.uids).insert(report.key.clone(), uid);
        let status = report.status.clone();
        pending.put(report.key, status, clamp, report.registration, false);
        drop(pending);
        self.shared.notify.notify_one();
    }

    fn on_remove(&self, key: &CheckKey) {
        let mut pending = lock(&self.shared.pending);
        pending.remove(key);
        lock(&self.shared.uids).remove(key);
        lock(&self.shared.written).remove(key);
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
