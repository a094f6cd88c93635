//! The reconcile loop: the HealthChecks the watch reports, turned into runners (only while
//! this replica is active), re-resolved every `--reference-ttl` so rotated references apply,
//! and dropped at once when leadership is lost.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use kube::runtime::watcher;
use tokio::sync::{mpsc, watch};

use super::{leader::Leadership, refs::RefCache, writer::StatusWriter};
use crate::{
    api::{CheckKey, HealthCheck, validate},
    metrics::Metrics,
    probe::ProbeContext,
    runner::{Origin, RunnerSpec, Scheduler},
};

/// Annotation whose new value triggers one immediate run (like Flux's `requestedAt`).
pub const RUN_NOW: &str = "canary.dev/run-now";

fn run_now(object: &HealthCheck) -> Option<&String> {
    object.metadata.annotations.as_ref()?.get(RUN_NOW)
}

fn status_page(meta: &kube::api::ObjectMeta) -> Option<&String> {
    meta.annotations
        .as_ref()?
        .get(crate::runner::STATUS_PAGE_ANNOTATION)
}

/// What reconcile needs.
pub struct Context {
    pub scheduler: Scheduler,
    pub writer: StatusWriter,
    pub refs: RefCache,
    pub probe: Arc<ProbeContext>,
    pub metrics: Arc<Metrics>,
    /// Set once the watch's first list is complete.
    pub synced: Arc<AtomicBool>,
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

/// The loop's state: the objects the watch reported, and the relist in progress.
struct Reconciler {
    ctx: Context,
    objects: HashMap<CheckKey, HealthCheck>,
    initial: Option<BTreeSet<CheckKey>>,
    active: bool,
}

/// Runs until the watch goes away (a supervised task: its end ends the process).
pub async fn run(
    ctx: Context,
    mut events: mpsc::Receiver<watcher::Event<HealthCheck>>,
    mut leadership: watch::Receiver<Leadership>,
    resync_every: Duration,
) {
    let active = leadership.borrow().active();
    ctx.writer.set_enabled(active);
    let mut reconciler = Reconciler {
        ctx,
        objects: HashMap::new(),
        initial: None,
        active,
    };
    let mut resync = tokio::time::interval(resync_every);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut elections_open = true;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => reconciler.handle(event).await,
                None => return,
            },
            _ = resync.tick(), if reconciler.active => reconciler.reconcile_all().await,
            changed = leadership.changed(), if elections_open => match changed {
                Ok(()) => {
                    let now = leadership.borrow().active();
                    reconciler.set_active(now).await;
                }
                // The elector is gone: its supervisor ends the process; stop listening.
                Err(_) => elections_open = false,
            },
        }
    }
}

impl Reconciler {
    async fn set_active(&mut self, active: bool) {
        if active == self.active {
            return;
        }
        self.active = active;
        self.ctx.writer.set_enabled(active);
        if active {
            self.reconcile_all().await;
        } else {
            // A replica that lost the Lease must stop probing and writing at once.
            self.ctx.scheduler.clear();
        }
    }

    async fn reconcile_all(&self) {
        for object in self.objects.values() {
            reconcile(object, &self.ctx).await;
        }
    }

    async fn handle(&mut self, event: watcher::Event<HealthCheck>) {
        match event {
            watcher::Event::Init => self.initial = Some(BTreeSet::new()),
            watcher::Event::InitApply(object) | watcher::Event::Apply(object) => {
                self.apply(object).await
            }
            watcher::Event::Delete(object) => {
                let key = CheckKey::of(&object);
                self.objects.remove(&key);
                self.forget(&key);
                self.count(Reconciled::Deleted);
            }
            watcher::Event::InitDone => self.init_done(),
        }
    }

    async fn apply(&mut self, object: HealthCheck) {
        let key = CheckKey::of(&object);
        if let Some(seen) = self.initial.as_mut() {
            seen.insert(key.clone());
        }
        if let Some(status) = &object.status {
            self.ctx.writer.seed(&key, status);
        }
        // Our own status writes come back as watch events: the spec (generation), uid and
        // labels are unchanged, so there is nothing to rebuild; rotations are caught by resync.
        let known = self.objects.get(&key);
        let unchanged = known.is_some_and(|known| {
            let (a, b) = (&known.metadata, &object.metadata);
            a.generation == b.generation
                && a.uid == b.uid
                && a.labels == b.labels
                && status_page(a) == status_page(b)
        }) && self.ctx.scheduler.status(&key).is_some();
        // A new value of the run-now annotation asks for one run at once (seen first after a
        // restart, it is taken as already handled).
        let run_now = known.is_some_and(|known| run_now(known) != run_now(&object))
            && run_now(&object).is_some();
        if self.active && !unchanged {
            reconcile(&object, &self.ctx).await;
        }
        if self.active && run_now && self.ctx.scheduler.run_now(&key) {
            tracing::info!(check = %key, "running now ({RUN_NOW})");
        }
        self.objects.insert(key, object);
    }

    /// After a relist, objects missed while the watch was down are gone.
    fn init_done(&mut self) {
        if let Some(seen) = self.initial.take() {
            self.objects.retain(|key, _| seen.contains(key));
            for key in self.ctx.scheduler.keys() {
                if !seen.contains(&key) {
                    self.forget(&key);
                }
            }
        }
        self.ctx.synced.store(true, Ordering::SeqCst);
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
}

/// Turns one HealthCheck into a runner: resolve references, build, upsert. Never fails the
/// loop: problems become the check's own status (InvalidSpec, ReferenceNotFound).
pub async fn reconcile(object: &HealthCheck, ctx: &Context) {
    let key = CheckKey::of(object);
    let valid = validate(&object.spec);
    let references = valid.as_ref().map(|v| v.references()).unwrap_or_default();
    let count = |result: Reconciled| {
        (ctx.metrics.operator.reconciles)
            .with_label_values(&[result.label()])
            .inc()
    };
    let resolved = match ctx.refs.resolve(&key.namespace, &references).await {
        Ok(resolved) => resolved,
        Err(error) => {
            // The API server did not answer: keep the current runner and retry on the next resync.
            tracing::warn!(check = %key, %error, "cannot read references; keeping the current runner");
            count(Reconciled::Error);
            return;
        }
    };
    let origin = Origin {
        key,
        uid: object.metadata.uid.clone(),
        generation: object.metadata.generation,
        status: object.status.clone().unwrap_or_default(),
        labels: object.metadata.labels.clone().unwrap_or_default(),
        annotations: object.metadata.annotations.clone().unwrap_or_default(),
    };
    let runner = RunnerSpec::build(origin, &object.spec, &valid, &resolved, &ctx.probe);
    count(if ctx.scheduler.upsert(runner) {
        Reconciled::Updated
    } else {
        Reconciled::Unchanged
    });
}
