//! The CronJob runner: at each scheduled time of the CronJob plus `startGrace`, it asks a
//! [`CronJobSource`] (the operator's reads of the CronJob and its Job, `controller/cronjob.rs`)
//! for a verdict, reads again every minute while that run is active, and reports each verdict
//! through `readiness` like any probe's outcome (thresholds, maintenance, Events, metrics). The
//! engine sees only this narrow interface: nothing here knows Kubernetes.

use std::{sync::Arc, time::Duration};

use futures::future::BoxFuture;
use jiff::Timestamp;
use tokio::{sync::Notify, time::Instant};

use super::{
    Shared,
    task::{Runner, Timing, paused, report},
};
use crate::{
    api::{Reason, ValidCronJob},
    lock,
    probe::{NEEDS_OPERATOR, Outcome},
};

/// How often an active run, or a CronJob that cannot be read, is read again.
const REREAD: Duration = Duration::from_secs(60);
/// Runs judged at most when the runner starts after a long pause (the latest ones).
const CATCH_UP: usize = 3;
/// How often a paused runner looks again.
const PAUSED_POLL: Duration = Duration::from_secs(1);

/// The reads a CronJob check needs, as the operator provides them.
pub trait CronJobSource: Send + Sync + std::fmt::Debug {
    /// The CronJob's scheduled times after `after`, from one read of it.
    fn runs<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        after: Timestamp,
        until: Timestamp,
    ) -> BoxFuture<'a, Result<Runs, Unreadable>>;

    /// Reads the CronJob and the Job of its run scheduled at `scheduled`, and judges it.
    fn judge<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        scheduled: Timestamp,
        max_run: Option<Duration>,
    ) -> BoxFuture<'a, Result<Judged, Unreadable>>;
}

/// A CronJob's scheduled times after some moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runs {
    /// Those up to `until`, oldest first, at most [`MAX_PAST`].
    pub past: Vec<Timestamp>,
    /// The first after `until` (or after `after`, when it is later), if the schedule fires again.
    pub next: Option<Timestamp>,
}

/// Past runs a source lists at most (the CronJob controller's own limit on missed starts).
pub const MAX_PAST: usize = 100;

/// A verdict on one scheduled run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    pub reason: Reason,
    pub message: String,
    /// The run is over (else: active, read again).
    pub done: bool,
}

/// Why the CronJob or its Job could not be read or judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// What the check reports (not found, forbidden, a schedule that cannot be judged);
    /// `None`: transient (the API server unreachable), logged and read again.
    pub reason: Option<Reason>,
    pub message: String,
}

/// What a CronJob runner runs.
#[derive(Debug)]
pub struct CronJobPlan {
    pub spec: ValidCronJob,
    /// The check's creation: runs scheduled before it are not judged.
    pub created: Option<Timestamp>,
}

/// The CronJob runner task; ends only when aborted.
pub(super) async fn run(
    shared: Arc<Shared>,
    runner: Runner,
    wake: Arc<Notify>,
    plan: Arc<CronJobPlan>,
) {
    let Some(source) = shared.config.cronjobs.clone() else {
        let outcome = Outcome::not_run(
            Reason::InvalidSpec,
            format!("spec.cronJob: {NEEDS_OPERATOR}"),
        );
        report(&shared, &runner, outcome, Timing::default());
        return std::future::pending().await;
    };
    let key = runner.spec.key.clone();
    let (namespace, name) = (key.namespace.as_str(), plan.spec.name.as_str());
    // Resume after the last run judged (status.lastRunTime is its scheduled time).
    let resumed = lock(&runner.state)
        .status
        .last_run_time
        .as_ref()
        .map(|t| t.0);
    let mut after = resumed.or(plan.created).unwrap_or_else(Timestamp::now);
    let mut announced = false;
    loop {
        let grace = plan.spec.start_grace;
        let due = match next_run(&*source, namespace, name, after, grace).await {
            Ok(Some(due)) => due,
            Ok(None) => {
                let why = format!("CronJob {namespace}/{name}'s schedule never fires again");
                report_once(&shared, &runner, Reason::Pending, why, &mut announced);
                sleep_or_wake(REREAD, &wake).await;
                continue;
            }
            Err(error) => {
                unreadable(&shared, &runner, error);
                sleep_or_wake(REREAD, &wake).await;
                continue;
            }
        };
        if !announced && lock(&runner.state).status.ready().is_none() {
            let message = format!("awaiting the run of CronJob {name} scheduled at {due}");
            report_once(&shared, &runner, Reason::Pending, message, &mut announced);
        }
        wait_until(&runner, due + grace, &wake).await;
        if paused(&shared) {
            tokio::time::sleep(PAUSED_POLL).await;
            continue;
        }
        judge_run(&shared, &runner, &*source, &plan, due, &wake).await;
        after = due;
    }
}

/// The next run to judge after `after`: the oldest of the last [`CATCH_UP`] already past their
/// grace, else the next scheduled time.
async fn next_run(
    source: &dyn CronJobSource,
    namespace: &str,
    name: &str,
    after: Timestamp,
    grace: Duration,
) -> Result<Option<Timestamp>, Unreadable> {
    let grace = jiff::SignedDuration::try_from(grace).unwrap_or(jiff::SignedDuration::ZERO);
    let until = Timestamp::now().checked_sub(grace).unwrap_or(after);
    let runs = source.runs(namespace, name, after, until).await?;
    let past = &runs.past;
    Ok(past
        .get(past.len().saturating_sub(CATCH_UP))
        .copied()
        .or(runs.next))
}

/// Reads the run scheduled at `due` until it is over, then reports its verdict.
async fn judge_run(
    shared: &Shared,
    runner: &Runner,
    source: &dyn CronJobSource,
    plan: &CronJobPlan,
    due: Timestamp,
    wake: &Notify,
) {
    let namespace = runner.spec.key.namespace.as_str();
    loop {
        match source
            .judge(namespace, &plan.spec.name, due, plan.spec.max_run)
            .await
        {
            Ok(judged) if judged.done => {
                let mut outcome = Outcome::not_run(judged.reason, judged.message);
                outcome.started_at = due;
                lock(&runner.state).last_cycle = Instant::now();
                return report(shared, runner, outcome, Timing::default());
            }
            Ok(_) => {}
            Err(error) => unreadable(shared, runner, error),
        }
        lock(&runner.state).next_due = Instant::now() + REREAD;
        sleep_or_wake(REREAD, wake).await;
    }
}

/// Reports why the CronJob cannot be judged, so the check never waits silently; a transient
/// failure is only logged (the next read, a minute later, may succeed).
fn unreadable(shared: &Shared, runner: &Runner, error: Unreadable) {
    match error.reason {
        Some(reason) => {
            let outcome = Outcome::not_run(reason, error.message);
            report(shared, runner, outcome, Timing::default());
        }
        None => {
            let (check, error) = (&runner.spec.key, error.message);
            tracing::warn!(%check, %error, "cannot read the CronJob or its Job; reading again in a minute");
        }
    }
}

/// Reports a status-only outcome (Pending) once per runner.
fn report_once(shared: &Shared, runner: &Runner, reason: Reason, message: String, done: &mut bool) {
    if !*done {
        *done = true;
        report(
            shared,
            runner,
            Outcome::not_run(reason, message),
            Timing::default(),
        );
    }
}

/// Sleeps until the wall-clock time `at` (looking at the clock at least every minute: it may
/// be stepped), recording it as the runner's next due time for the watchdog and the page.
async fn wait_until(runner: &Runner, at: Timestamp, wake: &Notify) {
    loop {
        let ahead = Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or_default();
        if ahead.is_zero() {
            return;
        }
        lock(&runner.state).next_due = Instant::now() + ahead;
        sleep_or_wake(ahead.min(REREAD), wake).await;
    }
}

async fn sleep_or_wake(pause: Duration, wake: &Notify) {
    tokio::select! {
        () = tokio::time::sleep(pause) => {}
        () = wake.notified() => {}
    }
}
