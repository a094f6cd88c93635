//! The reconcile loop: the HealthChecks the watch reports, turned into runners (only those in
//! this replica's [`Scope`]: all, none on a standby, or its share of the ring), re-resolved
//! every `--reference-ttl` so rotated references apply, and dropped at once when they leave
//! the scope (leadership lost, a check moved to another replica).

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use kube::runtime::watcher;
use tokio::sync::{mpsc, watch};

use super::{
    refs::RefCache,
    shard::{Applied, Assignment, Standing},
    writer::StatusWriter,
};
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
    Share(Assignment),
}

impl Scope {
    /// Whether status writes go out (a standby or a replica out of the ring writes nothing).
    fn writes(&self) -> bool {
        match self {
            Self::All => true,
            Self::Nothing => false,
            Self::Share(assignment) => assignment.standing == Standing::Member,
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

/// The loop's state: the objects the watch reported, the relist in progress, the scope.
struct Reconciler {
    ctx: Context,
    objects: HashMap<CheckKey, HealthCheck>,
    initial: Option<BTreeSet<CheckKey>>,
    scope: Scope,
    /// The checks the ring assigns to this replica (a shard member only).
    owned: HashSet<CheckKey>,
    /// When this replica last stopped a check it no longer owns.
    quiet_after: Option<jiff::Timestamp>,
}

/// Runs until the watch goes away (a supervised task: its end ends the process).
pub async fn run(
    ctx: Context,
    mut events: mpsc::Receiver<watcher::Event<HealthCheck>>,
    mut scopes: watch::Receiver<Scope>,
    resync_every: Duration,
) {
    let scope = scopes.borrow_and_update().clone();
    ctx.writer.set_enabled(scope.writes());
    let mut reconciler = Reconciler {
        ctx,
        objects: HashMap::new(),
        initial: None,
        scope: Scope::Nothing,
        owned: HashSet::new(),
        quiet_after: None,
    };
    reconciler.set_scope(scope).await;
    let mut resync = tokio::time::interval(resync_every);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut scopes_open = true;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => reconciler.handle(event).await,
                None => return,
            },
            _ = resync.tick() => reconciler.reconcile_all().await,
            changed = scopes.changed(), if scopes_open => match changed {
                Ok(()) => {
                    let scope = scopes.borrow_and_update().clone();
                    reconciler.set_scope(scope).await;
                }
                // The elector or member task is gone: its supervisor ends the process.
                Err(_) => scopes_open = false,
            },
        }
    }
}

impl Reconciler {
    /// Whether this replica runs `key` (when it may start it, see [`Self::may_start`]).
    fn keeps(&self, key: &CheckKey) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Nothing => false,
            Scope::Share(assignment) => {
                assignment.standing == Standing::Member && self.owned.contains(key)
            }
        }
    }

    /// Whether `key` may run here now: kept, and either running already or (in a ring) every
    /// member has acknowledged the ring that gave it to this replica.
    fn may_start(&self, key: &CheckKey) -> bool {
        self.keeps(key)
            && match &self.scope {
                Scope::Share(assignment) => {
                    assignment.may_gain || self.ctx.scheduler.status(key).is_some()
                }
                _ => true,
            }
    }

    fn resume_after(&self) -> Option<jiff::Timestamp> {
        match &self.scope {
            Scope::Share(assignment) => assignment.quiet_after,
            _ => None,
        }
    }

    /// Applies a new scope: stop what left it at once, acknowledge the ring, then start what
    /// may start.
    async fn set_scope(&mut self, scope: Scope) {
        let rebalanced = matches!((&self.scope, &scope),
            (Scope::Share(a), Scope::Share(b)) if a.ring.hash() != b.ring.hash());
        self.scope = scope;
        let writes = self.scope.writes();
        self.ctx.writer.set_enabled(writes);
        self.ctx.metrics.operator.leader.set(i64::from(writes));
        self.place_all();
        let mut stopped = false;
        for key in self.ctx.scheduler.keys() {
            if !self.keeps(&key) {
                self.forget(&key);
                stopped = true;
            }
        }
        if stopped && matches!(self.scope, Scope::Share(_)) {
            self.quiet_after = Some(jiff::Timestamp::now());
        }
        if let (Scope::Share(assignment), Some(applied)) = (&self.scope, &self.ctx.applied) {
            if rebalanced {
                self.ctx.metrics.operator.shard_rebalances.inc();
            }
            applied.send_replace(Applied {
                ring: Some(assignment.ring.hash()),
                incarnations: Some(assignment.ring.incarnations_hash()),
                quiet_after: self.quiet_after,
            });
        }
        self.reconcile_all().await;
        self.count_owned();
    }

    /// Recomputes which checks the ring gives this replica.
    fn place_all(&mut self) {
        self.owned = match &self.scope {
            Scope::Share(assignment) if assignment.standing == Standing::Member => {
                (self.objects.keys())
                    .filter(|key| assignment.keeps(key))
                    .cloned()
                    .collect()
            }
            _ => HashSet::new(),
        };
    }

    fn place(&mut self, key: &CheckKey) {
        if let Scope::Share(assignment) = &self.scope
            && assignment.keeps(key)
        {
            self.owned.insert(key.clone());
        }
    }

    fn count_owned(&self) {
        let owned = match &self.scope {
            Scope::All => self.objects.len(),
            Scope::Nothing => 0,
            Scope::Share(_) => self.owned.len(),
        };
        (self.ctx.metrics.operator.shard_owned).set(owned as i64);
    }

    /// Reconciles every check this replica may run (rotated references, started gains).
    async fn reconcile_all(&self) {
        let resume_after = self.resume_after();
        for (key, object) in &self.objects {
            if self.may_start(key) {
                reconcile(object, &self.ctx, resume_after).await;
            }
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
                self.owned.remove(&key);
                self.forget(&key);
                self.count(Reconciled::Deleted);
                self.count_owned();
            }
            watcher::Event::InitDone => self.init_done(),
        }
    }

    async fn apply(&mut self, object: HealthCheck) {
        let key = CheckKey::of(&object);
        if let Some(seen) = self.initial.as_mut() {
            seen.insert(key.clone());
        }
        self.place(&key);
        if let Some(status) = &object.status
            && self.keeps(&key)
        {
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
        if !unchanged && self.may_start(&key) {
            reconcile(&object, &self.ctx, self.resume_after()).await;
        }
        if run_now && self.keeps(&key) && self.ctx.scheduler.run_now(&key) {
            tracing::info!(check = %key, "running now ({RUN_NOW})");
        }
        let new = self.objects.insert(key, object).is_none();
        if new {
            self.count_owned();
        }
    }

    /// After a relist, objects missed while the watch was down are gone.
    fn init_done(&mut self) {
        if let Some(seen) = self.initial.take() {
            self.objects.retain(|key, _| seen.contains(key));
            self.owned.retain(|key| seen.contains(key));
            for key in self.ctx.scheduler.keys() {
                if !seen.contains(&key) {
                    self.forget(&key);
                }
            }
        }
        self.ctx.synced.store(true, Ordering::SeqCst);
        self.count_owned();
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
/// loop: problems become the check's own status (InvalidSpec, ReferenceNotFound). A check
/// taken over from another replica first runs on its slot after `resume_after`.
pub async fn reconcile(object: &HealthCheck, ctx: &Context, resume_after: Option<jiff::Timestamp>) {
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
        resume_after,
    };
    let runner = RunnerSpec::build(origin, &object.spec, &valid, &resolved, &ctx.probe);
    count(if ctx.scheduler.upsert(runner) {
        Reconciled::Updated
    } else {
        Reconciled::Unchanged
    });
}
