//! Reconcile: watch events go into the [`Index`] (synchronous, no I/O), and its changes become
//! effects. Stops happen at once, under the index lock, in the event loop (a check that left
//! this replica's [`Scope`] stops before the ring is acknowledged); starts and replacements
//! go to a work queue whose worker reads references apart from the event loop and upserts the
//! runner under the same lock, only if the object it read is still current and still runs
//! here. So a deleted or moved check can never be started again by a slow reference read.
//!
//! The same lock lets the self-audit ([`crate::runner::audit`]) compare what should run with
//! the runners without racing either task.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use kube::runtime::watcher;
use tokio::sync::{Notify, mpsc, watch};

use super::{
    index::{Change, Index, WatchScope, run_now},
    refs::RefCache,
    shard::{self, Applied},
    writer::StatusWriter,
};
use crate::{
    api::{CheckKey, HealthCheck, fmt_go, validate},
    lock,
    metrics::Metrics,
    probe::ProbeContext,
    runner::{Expectations, Expected, Origin, RUN_NOW_WINDOW, RunNow, RunnerSpec, Scheduler},
};

pub use super::index::RUN_NOW;

/// A watch event and the watch it came from.
pub type WatchEvent = (WatchScope, watcher::Event<HealthCheck>);

/// What reconcile needs.
pub struct Context {
    pub scheduler: Scheduler,
    pub writer: StatusWriter,
    pub refs: RefCache,
    pub probe: Arc<ProbeContext>,
    pub metrics: Arc<Metrics>,
    /// Set once every watch has listed.
    pub synced: Arc<AtomicBool>,
    /// Where a shard member reports the rings it applied (`--sharding shards`).
    pub applied: Option<watch::Sender<Applied>>,
}

/// Which checks this replica runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    /// Every check: no election, or this replica leads.
    All,
    /// None: a standby.
    Nothing,
    /// Its share of the ring (`--sharding shards`).
    Share(super::shard::Assignment),
}

impl Scope {
    /// Whether status writes go out (a standby or a replica out of the ring writes nothing).
    fn writes(&self) -> bool {
        match self {
            Self::All => true,
            Self::Nothing => false,
            Self::Share(assignment) => assignment.standing == super::shard::Standing::Member,
        }
    }
}

/// How one reconciliation ended (the `result` label of `canary_reconcile_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconciled {
    /// A runner was started or replaced.
    Updated,
    /// The runner already matched the spec and its references.
    Unchanged,
    /// References could not be read; the current runner keeps running.
    Error,
    /// The HealthCheck was deleted and its runner stopped.
    Deleted,
}

impl Reconciled {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
            Self::Error => "error",
            Self::Deleted => "deleted",
        }
    }
}

/// Work queued for one check: (re)build its runner, then run it now if asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Job {
    run_now: bool,
}

/// The checks waiting for the worker, and the one it is on.
#[derive(Debug, Default)]
struct Work {
    queued: BTreeMap<CheckKey, Job>,
    in_flight: Option<CheckKey>,
}

impl Work {
    fn pending(&self, key: &CheckKey) -> bool {
        self.queued.contains_key(key) || self.in_flight.as_ref() == Some(key)
    }
}

/// The index and the state of its effects.
struct State {
    index: Index,
    /// When this replica last stopped a check it no longer owns (`--sharding shards`).
    quiet_after: Option<jiff::Timestamp>,
}

/// Reconcile's shared core: the event loop, the reference worker and the audit use it.
pub struct Core {
    ctx: Context,
    state: Mutex<State>,
    work: Mutex<Work>,
    wake: Notify,
}

impl Core {
    /// A core fed by `watches`, running nothing until a scope is set.
    pub fn new(ctx: Context, watches: &[WatchScope]) -> Arc<Self> {
        Arc::new(Self {
            ctx,
            state: Mutex::new(State {
                index: Index::new(watches),
                quiet_after: None,
            }),
            work: Mutex::new(Work::default()),
            wake: Notify::new(),
        })
    }

    /// Applies one watch event: stops what is gone at once, queues what must be (re)built.
    pub fn on_event(&self, watch: &WatchScope, event: watcher::Event<HealthCheck>) {
        let mut state = lock(&self.state);
        let changes = state.index.apply(watch, event);
        for change in changes {
            self.effect(&state.index, change);
        }
        let synced = state.index.synced();
        self.ctx.synced.store(synced, Ordering::SeqCst);
        self.count_owned(&state.index);
    }

    /// The effect of one change, decided under the index lock.
    fn effect(&self, index: &Index, change: Change) {
        match change {
            Change::Deleted(key) => {
                self.forget(&key);
                self.count(Reconciled::Deleted);
            }
            Change::Upsert { key, run_now } => {
                if !index.keeps(&key) {
                    // Edited to be probed from locations: its local runner stops.
                    if self.running(&key) {
                        self.forget(&key);
                    }
                    return;
                }
                // Parsed once for both (it may be kept packed).
                if let Some(object) = index.object(&key) {
                    if let Some(status) = object.status.as_ref() {
                        self.ctx.writer.seed(&key, status);
                    }
                    self.deliver_ping(&key, &object);
                }
                if index.may_start(&key, self.running(&key)) {
                    self.enqueue(key, Job { run_now });
                }
            }
            Change::Pinged(key) => {
                if let Some(object) = index.object(&key) {
                    self.deliver_ping(&key, &object);
                }
            }
            Change::RunNow(key) => {
                if let Some(object) = index.object(&key).filter(|_| index.keeps(&key)) {
                    self.run_now(&key, &object);
                }
            }
        }
    }

    /// Hands the ping `key`'s status records to its heartbeat runner, if it runs here (the
    /// runner ignores a ping it has seen).
    fn deliver_ping(&self, key: &CheckKey, object: &HealthCheck) {
        let Some(status) = object.status.as_ref() else {
            return;
        };
        if let Some(ping) = crate::runner::heartbeat::Ping::recorded(status) {
            let run_id = status.last_ping.as_ref().and_then(|p| p.run_id.clone());
            self.ctx.scheduler.ping(key, ping, run_id);
        }
    }

    /// The HealthCheck `key` as the watch last reported it (this replica runs it or not).
    pub(super) fn object(&self, key: &CheckKey) -> Option<Arc<HealthCheck>> {
        lock(&self.state).index.object(key)
    }

    /// The checks with `spec.locations`, and whether every watch has listed.
    pub(super) fn located(&self) -> (Vec<Arc<HealthCheck>>, bool) {
        let state = lock(&self.state);
        (
            state.index.located().cloned().collect(),
            state.index.synced(),
        )
    }

    /// What reconcile works with (the scheduler, the reference cache).
    pub(super) fn context(&self) -> &Context {
        &self.ctx
    }

    /// Applies a new scope: stop what left it at once, acknowledge the ring, then queue what
    /// may start.
    pub fn set_scope(&self, scope: Scope) {
        let mut state = lock(&self.state);
        let rebalanced = matches!((state.index.scope(), &scope),
            (Scope::Share(a), Scope::Share(b)) if a.ring.hash() != b.ring.hash());
        let writes = scope.writes();
        state.index.set_scope(scope);
        self.ctx.writer.set_enabled(writes);
        self.ctx.metrics.operator.leader.set(i64::from(writes));
        let mut stopped = false;
        for key in self.ctx.scheduler.keys() {
            if !state.index.keeps(&key) {
                self.forget(&key);
                stopped = true;
            }
        }
        if stopped && state.index.assignment().is_some() {
            state.quiet_after = Some(jiff::Timestamp::now());
        }
        if let (Some(assignment), Some(applied)) = (state.index.assignment(), &self.ctx.applied) {
            if rebalanced {
                self.ctx.metrics.operator.shard_rebalances.inc();
            }
            applied.send_replace(Applied {
                ring: Some(assignment.ring.hash()),
                incarnations: Some(assignment.ring.incarnations_hash()),
                quiet_after: state.quiet_after,
            });
        }
        self.enqueue_runnable(&state.index, false);
        self.count_owned(&state.index);
    }

    /// Queues every check that may run here and has no runner (gains), and with `all` those
    /// with references too, so rotated references are read again. A running check without
    /// references would be rebuilt the same (a runner whose task ended is the audit's), and
    /// it is kept packed: the resync neither parses nor rebuilds it.
    fn enqueue_runnable(&self, index: &Index, all: bool) {
        let keys: Vec<CheckKey> = index
            .runnable(|key| self.running(key))
            .filter(|key| !self.running(key) || (all && index.has_references(key)))
            .cloned()
            .collect();
        for key in keys {
            self.enqueue(key, Job::default());
        }
    }

    /// Re-reads every running check's references (the resync).
    pub fn resync(&self) {
        let state = lock(&self.state);
        self.enqueue_runnable(&state.index, true);
    }

    fn enqueue(&self, key: CheckKey, job: Job) {
        let mut work = lock(&self.work);
        let queued = work.queued.entry(key).or_default();
        queued.run_now |= job.run_now;
        drop(work);
        self.wake.notify_one();
    }

    /// Counts the checks other ring members own and do not probe (at each self-audit).
    fn audit_peers(&self, index: &Index) {
        let gauge = &self.ctx.metrics.operator.shard_unprobed;
        let Some(assignment) = index.assignment() else {
            return gauge.set(0);
        };
        let config = self.ctx.writer.config();
        let silence = shard::Silence {
            heartbeat: config.heartbeat,
            write_qps: config.qps,
        };
        let silent =
            shard::unprobed_elsewhere(assignment, index.watched(), jiff::Timestamp::now(), silence);
        let total: usize = silent.values().sum();
        gauge.set(total as i64);
        if total > 0 {
            tracing::warn!(
                ?silent,
                "checks other ring members own show no run: nobody probes them"
            );
        }
    }

    fn running(&self, key: &CheckKey) -> bool {
        self.ctx.scheduler.contains(key)
    }

    fn forget(&self, key: &CheckKey) {
        self.ctx.scheduler.remove(key);
        self.ctx.writer.forget(key);
    }

    fn count(&self, result: Reconciled) {
        (self.ctx.metrics.operator.reconciles)
            .with_label_values(&[result.label()])
            .inc();
    }

    fn count_owned(&self, index: &Index) {
        (self.ctx.metrics.operator.shard_owned).set(index.owned_count() as i64);
    }

    /// The worker: builds queued checks one at a time, forever.
    pub async fn work(self: Arc<Self>) {
        loop {
            let next = {
                let mut work = lock(&self.work);
                let next = work.queued.pop_first();
                work.in_flight = next.as_ref().map(|(key, _)| key.clone());
                next
            };
            match next {
                Some((key, job)) => self.build(&key, job).await,
                None => self.wake.notified().await,
            }
        }
    }

    /// Processes queued work until none is left (tests drive the worker with it).
    #[cfg(test)]
    pub(crate) async fn settle(&self) {
        loop {
            let next = lock(&self.work).queued.pop_first();
            match next {
                Some((key, job)) => self.build(&key, job).await,
                None => return,
            }
        }
    }

    /// Resolves references and upserts the runner of `key`, if it still may run here.
    async fn build(&self, key: &CheckKey, job: Job) {
        let snapshot = {
            let state = lock(&self.state);
            let index = &state.index;
            (index.may_start(key, self.running(key)))
                .then(|| Some((index.object(key)?, index.version(key)?)))
                .flatten()
                .map(|(object, version)| (object, version, index.resume_after()))
        };
        let Some((object, version, resume_after)) = snapshot else {
            lock(&self.work).in_flight = None;
            return;
        };
        let runner = self.runner(&object, resume_after).await;
        let state = lock(&self.state);
        lock(&self.work).in_flight = None;
        let Some(runner) = runner else { return };
        // Only the object that was read, and only while it still runs here: a newer version
        // queued itself again; a deleted or moved check was stopped meanwhile. (The version
        // tells without parsing the object again.)
        if state.index.version(key) != Some(version)
            || !state.index.may_start(key, self.running(key))
        {
            if job.run_now {
                self.enqueue(key.clone(), job);
            }
            return;
        }
        let updated = self.ctx.scheduler.upsert(runner);
        self.count(if updated {
            Reconciled::Updated
        } else {
            Reconciled::Unchanged
        });
        if job.run_now {
            self.run_now(key, &object);
        }
    }

    /// Asks the scheduler for the run the run-now annotation of `object` requests; counted,
    /// and logged once per run and once per burst coalesced.
    fn run_now(&self, key: &CheckKey, object: &HealthCheck) {
        let Some(value) = run_now(object) else {
            return;
        };
        let result = self.ctx.scheduler.run_now(key, value);
        (self.ctx.metrics.operator.run_now)
            .with_label_values(&[result.label()])
            .inc();
        match result {
            RunNow::Now => tracing::info!(check = %key, "running now ({RUN_NOW})"),
            RunNow::Coalesced { first: true, at } => {
                let wait = at.saturating_duration_since(tokio::time::Instant::now());
                tracing::info!(
                    check = %key,
                    run_in = %fmt_go(wait),
                    "{RUN_NOW} asked again within {}: coalescing requests into one run",
                    fmt_go(RUN_NOW_WINDOW)
                );
            }
            RunNow::Coalesced { first: false, .. } => {}
            RunNow::Ignored => {
                tracing::debug!(check = %key, "{RUN_NOW} ignored: the check does not probe")
            }
        }
    }

    /// The runner of one HealthCheck: references read, spec built. Never fails the loop:
    /// problems become the check's own status (InvalidSpec, ReferenceNotFound). A check taken
    /// over from another replica first runs on its slot after `resume_after`.
    async fn runner(
        &self,
        object: &HealthCheck,
        resume_after: Option<jiff::Timestamp>,
    ) -> Option<RunnerSpec> {
        let key = CheckKey::of(object);
        let valid = validate(&object.spec);
        let references = valid.as_ref().map(|v| v.references()).unwrap_or_default();
        let resolved = match self.ctx.refs.resolve(&key.namespace, &references).await {
            Ok(resolved) => resolved,
            Err(error) => {
                // The API server did not answer: keep the current runner, retry on the resync.
                tracing::warn!(check = %key, %error, "cannot read references; keeping the current runner");
                self.count(Reconciled::Error);
                return None;
            }
        };
        let origin = Origin {
            key,
            uid: object.metadata.uid.clone(),
            generation: object.metadata.generation,
            status: object.status.clone().unwrap_or_default(),
            labels: object.metadata.labels.clone().unwrap_or_default(),
            annotations: object.metadata.annotations.clone().unwrap_or_default(),
            resume_after,
            created: (object.metadata.creation_timestamp.as_ref()).map(|t| t.0),
        };
        let spec = &object.spec;
        Some(RunnerSpec::build(
            origin,
            spec,
            &valid,
            &resolved,
            &self.ctx.probe,
        ))
    }
}

impl Expectations for Core {
    fn with_expected(&self, judge: &mut dyn FnMut(&[Expected])) {
        let state = lock(&self.state);
        let work = lock(&self.work);
        let expected: Vec<Expected> = (state.index.runnable(|key| self.running(key)))
            .filter(|key| !work.pending(key))
            .map(|key| Expected {
                key: key.clone(),
                probes: state.index.probes(key),
            })
            .collect();
        drop(work);
        self.audit_peers(&state.index);
        judge(&expected);
    }

    fn pending(&self, key: &CheckKey) -> bool {
        lock(&self.work).pending(key)
    }

    fn restore(&self, key: &CheckKey) {
        self.enqueue(key.clone(), Job::default());
    }
}

/// The event loop: watch events and scope changes into the core, and the resync. Runs until
/// the watch goes away (a supervised task: its end ends the process).
pub async fn run(
    core: Arc<Core>,
    mut events: mpsc::Receiver<WatchEvent>,
    mut scopes: watch::Receiver<Scope>,
    resync_every: Duration,
) {
    let scope = scopes.borrow_and_update().clone();
    core.set_scope(scope);
    let mut resync = tokio::time::interval(resync_every);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut scopes_open = true;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some((watch, event)) => core.on_event(&watch, event),
                None => return,
            },
            _ = resync.tick() => core.resync(),
            changed = scopes.changed(), if scopes_open => match changed {
                Ok(()) => {
                    let scope = scopes.borrow_and_update().clone();
                    core.set_scope(scope);
                }
                // The elector or member task is gone: its supervisor ends the process.
                Err(_) => scopes_open = false,
            },
        }
    }
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
