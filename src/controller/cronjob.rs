//! CronJob checks: did the run a CronJob scheduled start, finish, and succeed in time? Judged
//! from the CronJob and the Job its controller must have created for one scheduled time, over
//! an explicit clock, without watches: the reads live behind [`BatchReader`] (kube's API in the
//! operator, maps in tests), so this module stays pure and the probe engine free of Kubernetes.
//!
//! The CronJob controller names the Job of the run scheduled at `T` `<cronjob>-<T in Unix
//! minutes>` and annotates it `batch.kubernetes.io/cronjob-scheduled-timestamp: T`
//! (`pkg/controller/cronjob/utils.go`); the annotation is cross-checked when present. A Job
//! already removed (`ttlSecondsAfterFinished`, history limits) is judged from the CronJob's
//! `status.lastScheduleTime` and `lastSuccessfulTime`, never as missed.

use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::{Api, Client};

use crate::{
    api::{CronSchedule, Reason},
    runner::{CronJobSource, Judged, MAX_PAST, Runs, Unreadable},
};

/// The annotation the CronJob controller puts on each Job: the run's scheduled time (RFC 3339).
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Missed start times past which the CronJob controller stops trying (`tooManyMissed`, without
/// `startingDeadlineSeconds`).
pub const TOO_MANY_MISSED: usize = 100;

/// Why a CronJob's schedule cannot be judged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronJobError {
    #[error("schedule {0:?} is not a cron expression: {1}")]
    Schedule(String, String),
    #[error("schedule {0:?}: @every is not judged (it has no fixed times)")]
    Every(String),
    #[error("time zone {0:?} is not an IANA time zone")]
    TimeZone(String),
    #[error("the CronJob has no spec.schedule")]
    NoSchedule,
    #[error("CronJob {0} not found")]
    NotFound(String),
    #[error("cannot read {what}: {message}")]
    Read {
        what: String,
        /// The API server's HTTP status, when it answered.
        code: Option<u16>,
        message: String,
    },
}

impl CronJobError {
    /// What the check reports for it: a reason the user must act on, or `None` for a
    /// transient failure (the API server unreachable), which is logged and read again.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Self::Schedule(..) | Self::Every(_) | Self::TimeZone(_) | Self::NoSchedule => {
                Some(Reason::InvalidSpec)
            }
            Self::NotFound(_) => Some(Reason::ReferenceNotFound),
            Self::Read {
                code: Some(401 | 403),
                ..
            } => Some(Reason::ReferenceForbidden),
            Self::Read { .. } => None,
        }
    }
}

/// The two reads a CronJob check makes: RBAC `get` on `cronjobs` and `jobs`, no watch.
pub trait BatchReader: Send + Sync {
    fn cronjob<'a>(&'a self, namespace: &'a str, name: &'a str) -> Read<'a, CronJob>;
    fn job<'a>(&'a self, namespace: &'a str, name: &'a str) -> Read<'a, Job>;
}

/// One read: the object, `None` when it does not exist.
pub type Read<'a, T> = BoxFuture<'a, Result<Option<T>, CronJobError>>;

/// [`BatchReader`] through the API server.
#[derive(Clone)]
pub struct KubeBatch(pub Client);

impl std::fmt::Debug for KubeBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KubeBatch")
    }
}

/// The runner's interface, answered by reading the CronJob (and its Job) each time: no watch,
/// no cache, `get` only.
impl CronJobSource for KubeBatch {
    fn runs<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        after: Timestamp,
        until: Timestamp,
    ) -> BoxFuture<'a, Result<Runs, Unreadable>> {
        Box::pin(async move {
            let schedule = self.schedule(namespace, name).await?;
            Ok(Runs {
                past: schedule.between(after, until, MAX_PAST),
                next: schedule.next_after(until.max(after)),
            })
        })
    }

    fn judge<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        scheduled: Timestamp,
        max_run: Option<std::time::Duration>,
    ) -> BoxFuture<'a, Result<Judged, Unreadable>> {
        Box::pin(async move {
            let max_run = max_run
                .and_then(|d| SignedDuration::try_from(d).ok())
                .unwrap_or(SignedDuration::MAX);
            let verdict = observe(self, namespace, name, scheduled, Timestamp::now(), max_run);
            verdict.await.map(judged).map_err(|e| unreadable(&e))
        })
    }
}

impl KubeBatch {
    async fn schedule(&self, namespace: &str, name: &str) -> Result<Schedule, Unreadable> {
        let cronjob = self
            .cronjob(namespace, name)
            .await
            .map_err(|e| unreadable(&e))?;
        let not_found = || CronJobError::NotFound(format!("{namespace}/{name}"));
        let cronjob = cronjob.ok_or_else(|| unreadable(&not_found()))?;
        Schedule::of(&cronjob).map_err(|e| unreadable(&e))
    }
}

/// An error as the runner reports it.
fn unreadable(error: &CronJobError) -> Unreadable {
    Unreadable {
        reason: error.reason(),
        message: error.to_string(),
    }
}

/// A verdict as the runner reports it.
fn judged(verdict: Verdict) -> Judged {
    let (reason, message, done) = match verdict {
        Verdict::Succeeded(m) => (Reason::Succeeded, m, true),
        Verdict::Running(m) => (Reason::Pending, m, false),
        Verdict::RunTooLong(m) => (Reason::RunTooLong, m, true),
        Verdict::JobFailed(m) => (Reason::JobFailed, m, true),
        Verdict::MissedSchedule(m) => (Reason::MissedSchedule, m, true),
        Verdict::Suspended(m) => (Reason::Suspended, m, true),
    };
    Judged {
        reason,
        message,
        done,
    }
}

impl BatchReader for KubeBatch {
    fn cronjob<'a>(&'a self, namespace: &'a str, name: &'a str) -> Read<'a, CronJob> {
        let api = Api::<CronJob>::namespaced(self.0.clone(), namespace);
        Box::pin(async move { read(api.get_opt(name).await, "CronJob", namespace, name) })
    }

    fn job<'a>(&'a self, namespace: &'a str, name: &'a str) -> Read<'a, Job> {
        let api = Api::<Job>::namespaced(self.0.clone(), namespace);
        Box::pin(async move { read(api.get_opt(name).await, "Job", namespace, name) })
    }
}

fn read<T>(
    result: Result<Option<T>, kube::Error>,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<Option<T>, CronJobError> {
    result.map_err(|e| CronJobError::Read {
        what: format!("{kind} {namespace}/{name}"),
        code: match &e {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        },
        message: e.to_string(),
    })
}

/// Reads the CronJob `name` and the Job of its run scheduled at `scheduled`, and judges it.
pub async fn observe(
    reader: &dyn BatchReader,
    namespace: &str,
    name: &str,
    scheduled: Timestamp,
    now: Timestamp,
    max_run: SignedDuration,
) -> Result<Verdict, CronJobError> {
    let cronjob = (reader.cronjob(namespace, name).await?)
        .ok_or_else(|| CronJobError::NotFound(format!("{namespace}/{name}")))?;
    let job = reader.job(namespace, &job_name(name, scheduled)).await?;
    Ok(judge(&cronjob, job.as_ref(), scheduled, now, max_run))
}

/// A CronJob's schedule in its time zone, as the CronJob controller reads it.
#[derive(Debug, Clone)]
pub struct Schedule(CronSchedule);

impl Schedule {
    /// Parses `spec.schedule`: five fields (`?` reads as `*`), or a macro (`@yearly`,
    /// `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`), with an optional
    /// `CRON_TZ=` or `TZ=` prefix; else in `spec.timeZone`; else UTC (kube-controller-manager's
    /// zone in nearly every cluster). The five fields are read as maintenance windows and
    /// heartbeat schedules read theirs ([`CronSchedule`]).
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Self, CronJobError> {
        let text = schedule.trim();
        let (zone, fields) = match text.split_once(char::is_whitespace) {
            Some((prefix, rest)) if prefix.starts_with("CRON_TZ=") || prefix.starts_with("TZ=") => {
                (prefix.split_once('=').map(|p| p.1), rest.trim())
            }
            _ => (time_zone, text),
        };
        let fields = match fields {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            every if every.starts_with("@every") => {
                return Err(CronJobError::Every(schedule.into()));
            }
            fields => fields,
        };
        CronSchedule::parse("spec", &fields.replace('?', "*"), zone)
            .map(Self)
            .map_err(|e| match e.field.as_str() {
                "spec.timezone" => CronJobError::TimeZone(zone.unwrap_or("UTC").into()),
                _ => CronJobError::Schedule(schedule.into(), e.message),
            })
    }

    /// The CronJob's own schedule.
    pub fn of(cronjob: &CronJob) -> Result<Self, CronJobError> {
        let spec = cronjob.spec.as_ref().ok_or(CronJobError::NoSchedule)?;
        Self::parse(&spec.schedule, spec.time_zone.as_deref())
    }

    /// The first scheduled time strictly after `at`.
    pub fn next_after(&self, at: Timestamp) -> Option<Timestamp> {
        self.0.next_after(at)
    }

    /// Scheduled times in `(from, to]`, at most `limit` of them.
    pub fn between(&self, from: Timestamp, to: Timestamp, limit: usize) -> Vec<Timestamp> {
        let mut times = Vec::new();
        let mut at = from;
        while times.len() < limit {
            match self.next_after(at) {
                Some(next) if next <= to => {
                    times.push(next);
                    at = next;
                }
                _ => break,
            }
        }
        times
    }
}

/// The name of the Job the CronJob controller creates for the run scheduled at `scheduled`.
pub fn job_name(cronjob: &str, scheduled: Timestamp) -> String {
    format!("{cronjob}-{}", scheduled.as_second().div_euclid(60))
}

/// What a CronJob check found for one scheduled run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The Job completed (or, removed, the CronJob records a success since).
    Succeeded(String),
    /// Still running within `maxRunDuration`: read again in a minute.
    Running(String),
    /// Running past `maxRunDuration`.
    RunTooLong(String),
    /// The Job failed: its Failed condition's reason and message.
    JobFailed(String),
    /// No Job for the scheduled time, and the CronJob never scheduled it: why, where known.
    MissedSchedule(String),
    /// The CronJob is suspended: nothing was expected.
    Suspended(String),
}

impl Verdict {
    /// Whether the run is over: a verdict to record, not a state to read again.
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Running(_))
    }
}

/// Judges the run scheduled at `scheduled` from the CronJob and the Job read for it (`None`:
/// not found), at `now`.
pub fn judge(
    cronjob: &CronJob,
    job: Option<&Job>,
    scheduled: Timestamp,
    now: Timestamp,
    max_run: SignedDuration,
) -> Verdict {
    let name = cronjob.metadata.name.as_deref().unwrap_or("?");
    if cronjob.spec.as_ref().and_then(|s| s.suspend) == Some(true) {
        return Verdict::Suspended(format!("CronJob {name} is suspended"));
    }
    let job = job.filter(|job| scheduled_at(job).is_none_or(|at| at == scheduled));
    match job {
        Some(job) => judge_job(job, scheduled, now, max_run),
        None => judge_without_job(cronjob, scheduled, now),
    }
}

/// The scheduled time a Job's annotation names.
fn scheduled_at(job: &Job) -> Option<Timestamp> {
    let annotations = job.metadata.annotations.as_ref()?;
    annotations.get(SCHEDULED_TIMESTAMP)?.parse().ok()
}

fn judge_job(job: &Job, scheduled: Timestamp, now: Timestamp, max_run: SignedDuration) -> Verdict {
    let name = job.metadata.name.as_deref().unwrap_or("?");
    let status = job.status.clone().unwrap_or_default();
    let condition = |kind: &str| {
        (status.conditions.iter().flatten()).find(|c| c.type_ == kind && c.status == "True")
    };
    if let Some(done) = condition("Complete").or(condition("SuccessCriteriaMet")) {
        let at = status
            .completion_time
            .as_ref()
            .map_or(done.last_transition_time.as_ref(), Some);
        let took = at.map(|t| (t.0.duration_since(scheduled)).round(jiff::Unit::Second));
        return Verdict::Succeeded(match took {
            Some(Ok(took)) => format!("Job {name} completed {took:#} after its scheduled time"),
            _ => format!("Job {name} completed"),
        });
    }
    if let Some(failed) = condition("Failed").or(condition("FailureTarget")) {
        let reason = failed.reason.as_deref().unwrap_or("Failed");
        let message = failed.message.as_deref().unwrap_or("");
        return Verdict::JobFailed(format!("Job {name} failed: {reason}: {message}"));
    }
    let started = status.start_time.as_ref().map_or(scheduled, |t| t.0);
    let running = now.duration_since(started);
    if running > max_run {
        return Verdict::RunTooLong(format!(
            "Job {name} has run for {:#} (maxRunDuration {max_run:#})",
            running.round(jiff::Unit::Second).unwrap_or(running)
        ));
    }
    Verdict::Running(format!("Job {name} is running"))
}

fn judge_without_job(cronjob: &CronJob, scheduled: Timestamp, now: Timestamp) -> Verdict {
    let name = cronjob.metadata.name.as_deref().unwrap_or("?");
    let status = cronjob.status.clone().unwrap_or_default();
    let time =
        |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| t.as_ref().map(|t| t.0);
    let (last_scheduled, last_success) = (
        time(&status.last_schedule_time),
        time(&status.last_successful_time),
    );
    if last_success.is_some_and(|at| at >= scheduled) {
        return Verdict::Succeeded(format!(
            "the Job of {scheduled} is gone; CronJob {name} records a success since"
        ));
    }
    if last_scheduled.is_some_and(|at| at >= scheduled) {
        return Verdict::JobFailed(format!(
            "the Job of {scheduled} was removed unfinished or failed: CronJob {name} records no success since"
        ));
    }
    Verdict::MissedSchedule(missed_why(cronjob, last_scheduled, scheduled, now))
}

/// Why the CronJob controller did not create the Job, where its spec and status say.
fn missed_why(
    cronjob: &CronJob,
    last_scheduled: Option<Timestamp>,
    scheduled: Timestamp,
    now: Timestamp,
) -> String {
    let name = cronjob.metadata.name.as_deref().unwrap_or("?");
    let spec = cronjob.spec.clone().unwrap_or_default();
    let active = (cronjob.status.as_ref().and_then(|s| s.active.as_ref()))
        .and_then(|a| a.first())
        .and_then(|r| r.name.clone());
    let head = format!("no Job for the run of CronJob {name} scheduled at {scheduled}");
    if let (Some(job), Some("Forbid")) = (&active, spec.concurrency_policy.as_deref()) {
        return format!("{head}: concurrencyPolicy Forbid while Job {job} still runs");
    }
    let since = last_scheduled.or(cronjob.metadata.creation_timestamp.as_ref().map(|t| t.0));
    if let (Some(since), Ok(schedule)) = (since, Schedule::of(cronjob)) {
        let missed = schedule.between(since, now, TOO_MANY_MISSED + 1).len();
        if missed > TOO_MANY_MISSED {
            return format!(
                "{head}: more than {TOO_MANY_MISSED} start times missed since {since} (the CronJob controller was down or its clock is skewed; it warns TooManyMissedTimes)"
            );
        }
    }
    match spec.starting_deadline_seconds {
        Some(deadline) => format!(
            "{head}: the CronJob controller did not create it within startingDeadlineSeconds ({deadline}s); is kube-controller-manager running?"
        ),
        None => format!(
            "{head}: the CronJob controller did not create it (is kube-controller-manager running?)"
        ),
    }
}

#[cfg(test)]
#[path = "cronjob_tests.rs"]
mod tests;
