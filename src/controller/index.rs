//! The reconcile index: the HealthChecks every watch reported and which of them this replica
//! runs, kept synchronously and without I/O (kubert's `IndexNamespacedResource { apply,
//! delete, reset }`). A watch event updates it and returns what changed; the effect step
//! ([`super::reconcile`]) starts, replaces and stops runners from that, and reads references
//! apart from the event loop.
//!
//! Each watch (one per namespace of `--namespaces`, or one for all) is its own relist scope, as a
//! kube-runtime `reflector` store per watch would be: the objects of a relist are buffered
//! from `Init` to `InitDone` and then replace that watch's objects and nothing else, so a 410
//! on one namespace's watch cannot drop another's checks. The index is synced once every
//! watch has listed.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use kube::runtime::watcher;

use super::{
    reconcile::Scope,
    shard::{Assignment, Standing, Watched},
};
use crate::api::{CheckKey, HealthCheck};

mod entry;

use entry::{Entry, Facts};

/// Annotation whose new value triggers one immediate run (like Flux's `requestedAt`).
pub const RUN_NOW: &str = "canary.dev/run-now";

/// kubectl's copy of the object as last applied (client-side apply).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What the index keeps of a HealthCheck: all but `managedFields` (who set each field; with
/// status written, as large as the rest of the object) and kubectl's last-applied copy, which
/// nothing in Canary reads. The watch applies it to every object before indexing, as
/// kube-runtime advises for reflector stores. Bytes per object: `cargo bench --features
/// jemalloc --bench index_memory` (docs/scaling.md).
pub fn slim(check: &mut HealthCheck) {
    check.metadata.managed_fields = None;
    if let Some(annotations) = check.metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
}

/// Which watch an event came from: one namespace, or every namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WatchScope(Option<String>);

impl WatchScope {
    /// The watch of every namespace.
    pub fn all() -> Self {
        Self(None)
    }

    /// The watch of one namespace.
    pub fn namespace(namespace: impl Into<String>) -> Self {
        Self(Some(namespace.into()))
    }

    /// The watches `--namespaces` asks for: one per namespace (each once), or one for all.
    pub fn of(namespaces: &[String]) -> Vec<Self> {
        let mut scopes: Vec<Self> = namespaces.iter().map(Self::namespace).collect();
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            scopes.push(Self::all());
        }
        scopes
    }

    /// The namespace watched, if only one.
    pub fn namespace_name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Whether this watch reports `key`.
    fn covers(&self, key: &CheckKey) -> bool {
        self.0.as_ref().is_none_or(|ns| *ns == key.namespace)
    }
}

impl std::fmt::Display for WatchScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(namespace) => write!(f, "namespace {namespace}"),
            None => f.write_str("all namespaces"),
        }
    }
}

/// What a watch event changed for one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New, or its spec, labels or page annotation changed: (re)build its runner if it runs
    /// here. `run_now`: the run-now annotation has a new value.
    Upsert { key: CheckKey, run_now: bool },
    /// Only the run-now annotation changed (to a new value): run it at once if it runs here.
    RunNow(CheckKey),
    /// Only status changed, and it records a new heartbeat ping (written by the replica that
    /// received it): hand it to the runner if it runs here.
    Pinged(CheckKey),
    /// The object is gone.
    Deleted(CheckKey),
}

/// One watch's relist state.
#[derive(Debug, Default)]
struct Watch {
    /// It completed a list at least once.
    listed: bool,
    /// A relist in progress: the objects seen since its `Init` (packed, as kept).
    relist: Option<HashMap<CheckKey, Entry>>,
}

/// The objects reported, per watch, and the checks this replica runs.
#[derive(Debug)]
pub struct Index {
    watches: HashMap<WatchScope, Watch>,
    objects: HashMap<CheckKey, Entry>,
    scope: Scope,
    /// The checks the ring gives this replica (a shard member only).
    owned: HashSet<CheckKey>,
    /// The last version given to an object ([`Self::version`]).
    versions: u64,
}

impl Index {
    /// An empty index fed by `watches`, running nothing until a scope is set.
    pub fn new(watches: &[WatchScope]) -> Self {
        Self {
            watches: (watches.iter().cloned())
                .map(|watch| (watch, Watch::default()))
                .collect(),
            objects: HashMap::new(),
            scope: Scope::Nothing,
            owned: HashSet::new(),
            versions: 0,
        }
    }

    /// Applies one event of `watch`; returns what changed.
    pub fn apply(&mut self, watch: &WatchScope, event: watcher::Event<HealthCheck>) -> Vec<Change> {
        let relisting = self.watches.entry(watch.clone()).or_default();
        match event {
            watcher::Event::Init => {
                relisting.relist = Some(HashMap::new());
                Vec::new()
            }
            watcher::Event::InitApply(object) => {
                if relisting.relist.is_none() {
                    return self.put(Arc::new(object)).into_iter().collect();
                }
                let key = CheckKey::of(&object);
                let entry = Entry::new(Arc::new(object), |facts| self.parsed_here(&key, facts));
                if let Some(seen) = (self.watches.get_mut(watch)).and_then(|w| w.relist.as_mut()) {
                    seen.insert(key, entry);
                }
                Vec::new()
            }
            watcher::Event::InitDone => self.relisted(watch),
            watcher::Event::Apply(object) => self.put(Arc::new(object)).into_iter().collect(),
            watcher::Event::Delete(object) => {
                self.remove(&CheckKey::of(&object)).into_iter().collect()
            }
        }
    }

    /// A relist of `watch` ended: its objects are those it listed, the others' are untouched.
    fn relisted(&mut self, watch: &WatchScope) -> Vec<Change> {
        let state = self.watches.entry(watch.clone()).or_default();
        state.listed = true;
        let listed = state.relist.take().unwrap_or_default();
        let gone: Vec<CheckKey> = (self.objects.keys())
            .filter(|key| watch.covers(key) && !listed.contains_key(*key))
            .cloned()
            .collect();
        let mut changes: Vec<Change> = gone.iter().filter_map(|key| self.remove(key)).collect();
        let mut listed: Vec<(CheckKey, Entry)> = listed.into_iter().collect();
        listed.sort_by(|a, b| a.0.cmp(&b.0));
        for (key, entry) in listed {
            // Unchanged since the last list (packed both times): nothing to parse or compare.
            if (self.objects.get(&key)).is_some_and(|previous| previous.packed_as(&entry)) {
                continue;
            }
            changes.extend(
                entry
                    .object()
                    .and_then(|object| self.put_keyed(key, object)),
            );
        }
        changes
    }

    /// Whether this replica keeps `key` parsed: only where a pass reads the whole object, i.e.
    /// it is `located` (every pass of the hub reads those) or it runs here and has references
    /// (the resync rebuilds its runner at every reference TTL). See [`entry::Kept`].
    fn parsed_here(&self, key: &CheckKey, facts: &Facts) -> bool {
        facts.located || (facts.references && self.runs_here(key))
    }

    /// Whether the scope gives `key` to this replica (located or not).
    fn runs_here(&self, key: &CheckKey) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Nothing => false,
            Scope::Share(assignment) => {
                assignment.standing == Standing::Member && self.owned.contains(key)
            }
        }
    }

    /// Stores `object`; a change when it is new or something a runner is built from changed
    /// (our own status writes come back as events that change nothing of that).
    fn put(&mut self, object: Arc<HealthCheck>) -> Option<Change> {
        self.put_keyed(CheckKey::of(&object), object)
    }

    fn put_keyed(&mut self, key: CheckKey, object: Arc<HealthCheck>) -> Option<Change> {
        if let Scope::Share(assignment) = &self.scope
            && assignment.keeps(&key)
        {
            self.owned.insert(key.clone());
        }
        let mut entry = Entry::new(object.clone(), |facts| self.parsed_here(&key, facts));
        let previous = (self.objects.get(&key))
            .and_then(|previous| Some((previous.version, previous.object()?)));
        let (change, version) = match previous {
            Some((version, previous)) => (changed(key.clone(), &previous, &object), version),
            None => (
                Some(Change::Upsert {
                    key: key.clone(),
                    run_now: false,
                }),
                0,
            ),
        };
        entry.version = match change {
            Some(Change::Upsert { .. }) => self.next_version(),
            _ => version,
        };
        self.objects.insert(key, entry);
        change
    }

    /// A version no object had: a runner built from an object of another version is stale.
    fn next_version(&mut self) -> u64 {
        self.versions += 1;
        self.versions
    }

    /// The version of `key`'s object as runners see it: it changes whenever the index reports
    /// an upsert, so a build compares it instead of parsing the object again.
    pub fn version(&self, key: &CheckKey) -> Option<u64> {
        self.objects.get(key).map(|entry| entry.version)
    }

    fn remove(&mut self, key: &CheckKey) -> Option<Change> {
        self.owned.remove(key);
        self.objects
            .remove(key)
            .map(|_| Change::Deleted(key.clone()))
    }

    /// Whether every watch has completed a list (readiness).
    pub fn synced(&self) -> bool {
        self.watches.values().all(|watch| watch.listed)
    }

    /// The object of `key`, as last reported (parsed again when kept packed: once per event).
    pub fn object(&self, key: &CheckKey) -> Option<Arc<HealthCheck>> {
        self.objects.get(key)?.object()
    }

    /// The scope this replica runs under.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Applies a new scope and recomputes which checks the ring gives this replica.
    pub fn set_scope(&mut self, scope: Scope) {
        self.scope = scope;
        self.owned = match &self.scope {
            Scope::Share(assignment) if assignment.standing == Standing::Member => {
                (self.objects.keys())
                    .filter(|key| assignment.keeps(key))
                    .cloned()
                    .collect()
            }
            _ => HashSet::new(),
        };
        let keys: Vec<CheckKey> = self.objects.keys().cloned().collect();
        for key in keys {
            let Some(facts) = self.objects.get(&key).map(|entry| entry.facts) else {
                continue;
            };
            let parsed = self.parsed_here(&key, &facts);
            if let Some(entry) = self.objects.get_mut(&key) {
                entry.keep(parsed);
            }
        }
    }

    /// Whether this replica runs `key` (once it may start it, see [`Self::may_start`]).
    pub fn keeps(&self, key: &CheckKey) -> bool {
        // A check with `spec.locations` is probed by the spokes it lists, never here: its
        // owner aggregates their reports instead ([`super::hub`]).
        let local = (self.objects.get(key)).is_some_and(|e| !e.facts.located);
        local && self.runs_here(key)
    }

    /// The checks with `spec.locations` (aggregated by their owner, probed by spokes).
    pub fn located(&self) -> impl Iterator<Item = &Arc<HealthCheck>> {
        (self.objects.values())
            .filter(|entry| entry.facts.located)
            .filter_map(Entry::parsed)
    }

    /// Whether `key` may run here now: kept, and either `running` already or (in a ring)
    /// every member has acknowledged the ring that gave it to this replica.
    pub fn may_start(&self, key: &CheckKey, running: bool) -> bool {
        self.keeps(key)
            && match &self.scope {
                Scope::Share(assignment) => assignment.may_gain || running,
                _ => true,
            }
    }

    /// The checks that should have a runner here now (`running` tells which have one).
    pub fn runnable<'a>(
        &'a self,
        running: impl Fn(&CheckKey) -> bool + 'a,
    ) -> impl Iterator<Item = &'a CheckKey> + 'a {
        (self.objects.keys()).filter(move |key| self.may_start(key, running(key)))
    }

    /// How many checks this replica is assigned (all of them without sharding, none on a
    /// standby).
    pub fn owned_count(&self) -> usize {
        match &self.scope {
            Scope::All => self.objects.len(),
            Scope::Nothing => 0,
            Scope::Share(_) => self.owned.len(),
        }
    }

    /// When peers promised to have stopped what this replica gains (`--sharding shards`).
    pub fn resume_after(&self) -> Option<jiff::Timestamp> {
        match &self.scope {
            Scope::Share(assignment) => assignment.quiet_after,
            _ => None,
        }
    }

    /// What the peer audit reads of every HealthCheck the watches reported that should be
    /// probing.
    pub fn watched(&self) -> impl Iterator<Item = (&CheckKey, Watched)> {
        (self.objects.iter()).filter_map(|(key, entry)| Some((key, entry.facts.watched?)))
    }

    /// Whether the self-audit expects `key`'s runner to complete runs ([`crate::runner::audit::probes`]),
    /// read without parsing the object.
    pub fn probes(&self, key: &CheckKey) -> bool {
        self.objects
            .get(key)
            .is_some_and(|entry| entry.facts.probes)
    }

    /// Whether `key`'s spec references Secrets or ConfigMaps, whose rotation the resync
    /// picks up (without references, a rebuild would build the same runner).
    pub fn has_references(&self, key: &CheckKey) -> bool {
        (self.objects.get(key)).is_some_and(|entry| entry.facts.references)
    }

    /// The ring assignment, when sharding.
    pub fn assignment(&self) -> Option<&Assignment> {
        match &self.scope {
            Scope::Share(assignment) => Some(assignment),
            _ => None,
        }
    }
}

/// What changed from `previous` to `object`, of `key`.
fn changed(key: CheckKey, previous: &HealthCheck, object: &HealthCheck) -> Option<Change> {
    // A run-now value seen first (after a restart) is taken as already handled.
    let run_now = run_now(previous) != run_now(object) && run_now(object).is_some();
    let pinged = last_ping(previous) != last_ping(object) && last_ping(object).is_some();
    match (same_runner(previous, object), run_now) {
        (true, true) => Some(Change::RunNow(key)),
        (true, false) if pinged => Some(Change::Pinged(key)),
        (true, false) => None,
        (false, run_now) => Some(Change::Upsert { key, run_now }),
    }
}

/// The run-now annotation's value.
pub fn run_now(object: &HealthCheck) -> Option<&String> {
    object.metadata.annotations.as_ref()?.get(RUN_NOW)
}

fn status_page(object: &HealthCheck) -> Option<&String> {
    (object.metadata.annotations.as_ref())?.get(crate::runner::STATUS_PAGE_ANNOTATION)
}

/// Whether two versions of an object build the same runner: same spec (generation), uid,
/// labels and status-page annotation. Rotated references are caught by the resync.
pub fn same_runner(a: &HealthCheck, b: &HealthCheck) -> bool {
    let (x, y) = (&a.metadata, &b.metadata);
    x.generation == y.generation
        && x.uid == y.uid
        && x.labels == y.labels
        && status_page(a) == status_page(b)
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;

/// The object's last heartbeat ping as its status records it (whole seconds, so what the
/// ping said tells two of one second apart).
fn last_ping(object: &HealthCheck) -> Option<(&jiff::Timestamp, &crate::api::LastPing)> {
    let status = object.status.as_ref()?;
    Some((
        &status.last_ping_time.as_ref()?.0,
        status.last_ping.as_ref()?,
    ))
}
