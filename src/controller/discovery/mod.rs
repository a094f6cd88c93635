//! The discovery controller (`--discovery`): for every CheckDiscovery of the watched
//! namespaces that this replica owns, runs the pure [`crate::discovery::derive`] over the
//! source objects in the reflector stores ([`sources`]), decides the writes without I/O
//! ([`plan`]), sends them through the status writer's budgets ([`write`]) and writes the
//! discovery's status ([`status`]). Changes are coalesced: a burst of watch events (hundreds of
//! Ingresses applied at once) becomes one pass per namespace after [`DEBOUNCE`] of quiet
//! gathering. Ownership follows the HealthCheck scope: all (no election, or the leader),
//! nothing (a standby), or the ring's owner of the discovery's namespace/name (`--sharding
//! shards`, the hash used for checks).

mod plan;
mod sources;
mod status;
mod write;

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Client, ResourceExt, api::ObjectMeta};
use tokio::{
    sync::{mpsc, watch},
    task::JoinSet,
    time::Instant,
};

pub use plan::MANAGED_ANNOTATION;
pub use write::FIELD_MANAGER;

use self::{
    plan::{Action, Applied, Given},
    sources::{GATEWAY, GRPC_ROUTE, HTTP_ROUTE, Sources, Trigger},
    status::{Derived, Outcome},
    write::Writes,
};
use super::{Scope, index::WatchScope, writer::StatusWriter};
use crate::{
    api::{CheckDiscovery, CheckDiscoveryStatus, CheckKey},
    discovery::{self as derive, Settings},
    metrics::DiscoveryMetrics,
};

/// How long changes are gathered before a pass (a storm of events is one pass).
pub const DEBOUNCE: Duration = Duration::from_secs(1);
/// A pass with failed writes is repeated after this long.
const RETRY: Duration = Duration::from_secs(5);
/// Every discovery is passed over this often, changes or not.
const RESYNC: Duration = Duration::from_secs(300);
/// Writes in flight at once per pass.
const PARALLEL_WRITES: usize = 8;

/// What the controller is configured with.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// Namespaces watched; all when empty (as for HealthChecks).
    pub namespaces: Vec<String>,
    /// Completes Service names (`--cluster-domain`).
    pub cluster_domain: String,
    /// The Event reporter's instance.
    pub identity: String,
}

/// Namespaces with changes (`all`: everything).
#[derive(Debug, Default)]
struct Dirty {
    all: bool,
    namespaces: BTreeSet<String>,
}

impl Dirty {
    fn add(&mut self, trigger: Trigger) {
        match trigger {
            Some(namespace) => {
                self.namespaces.insert(namespace);
            }
            None => self.all = true,
        }
    }

    fn is_empty(&self) -> bool {
        !self.all && self.namespaces.is_empty()
    }

    fn covers(&self, namespace: &str) -> bool {
        self.all || self.namespaces.contains(namespace)
    }
}

/// Runs until a source watch ends (a bug; the supervisor then ends the operator).
pub async fn run(
    client: Client,
    config: DiscoveryConfig,
    budget: StatusWriter,
    metrics: DiscoveryMetrics,
    mut scopes: watch::Receiver<Scope>,
) {
    let (triggers, mut changes) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    let watches = WatchScope::of(&config.namespaces);
    let sources = Sources::start(&client, &watches, &mut tasks, triggers);
    let writes = Writes::new(client, budget, metrics.clone(), config.identity.clone());
    let mut controller = Controller::new(sources, writes, metrics, &config);
    let mut dirty = Dirty::default();
    let mut retry_at: Option<Instant> = None;
    let mut scopes_open = true;
    let mut resync = tokio::time::interval(RESYNC);
    loop {
        tokio::select! {
            ended = tasks.join_next() => {
                let kind = ended.map(|e| e.map_or("?", |k| k));
                tracing::error!(?kind, "a discovery watch ended");
                return;
            }
            trigger = changes.recv() => {
                let Some(trigger) = trigger else { return };
                dirty.add(trigger);
                let until = Instant::now() + DEBOUNCE;
                while let Ok(Some(more)) = tokio::time::timeout_at(until, changes.recv()).await {
                    dirty.add(more);
                }
            }
            changed = scopes.changed(), if scopes_open => {
                scopes_open = changed.is_ok();
                dirty.all = true;
            }
            () = super::sleep_until(retry_at) => {
                retry_at = None;
                dirty.all = true;
            }
            _ = resync.tick() => dirty.all = true,
        }
        if dirty.is_empty() || !controller.sources.synced() {
            continue;
        }
        let scope = scopes.borrow().clone();
        if controller.pass(&std::mem::take(&mut dirty), &scope).await {
            retry_at = Some(Instant::now() + RETRY);
        }
    }
}

/// The state kept between passes.
struct Controller {
    sources: Sources,
    writes: Writes,
    metrics: DiscoveryMetrics,
    settings: Settings,
    /// What was last applied of each generated check, by namespace and name.
    applied: HashMap<String, HashMap<String, Applied>>,
    /// Discoveries with metric series.
    known: BTreeSet<CheckKey>,
}

/// Whether this replica generates for the discovery `key`.
fn owns(scope: &Scope, key: &CheckKey) -> bool {
    match scope {
        Scope::All => true,
        Scope::Nothing => false,
        Scope::Share(assignment) => assignment.keeps(key),
    }
}

impl Controller {
    fn new(
        sources: Sources,
        writes: Writes,
        metrics: DiscoveryMetrics,
        config: &DiscoveryConfig,
    ) -> Self {
        Self {
            sources,
            writes,
            metrics,
            settings: Settings {
                cluster_domain: config.cluster_domain.clone(),
                // In a cluster, route status is read, never assumed.
                assume_accepted: false,
            },
            applied: HashMap::new(),
            known: BTreeSet::new(),
        }
    }

    /// One pass over the discoveries of the dirty namespaces; whether a write failed.
    async fn pass(&mut self, dirty: &Dirty, scope: &Scope) -> bool {
        let discoveries: Vec<Arc<CheckDiscovery>> = (self.sources.discoveries.iter())
            .flat_map(|s| s.state())
            .collect();
        let mut failed = false;
        let mut present = BTreeSet::new();
        for discovery in discoveries {
            let key = CheckKey {
                namespace: discovery.namespace().unwrap_or_default(),
                name: discovery.name_any(),
            };
            if !owns(scope, &key) {
                continue;
            }
            present.insert(key.clone());
            if dirty.covers(&key.namespace) {
                failed |= self.reconcile(&discovery).await;
            }
        }
        for gone in self.known.difference(&present) {
            self.metrics.forget(&gone.namespace, &gone.name);
        }
        self.known = present;
        failed
    }

    /// Derives, writes and reports one discovery; whether a write failed.
    async fn reconcile(&mut self, discovery: &CheckDiscovery) -> bool {
        let namespace = discovery.namespace().unwrap_or_default();
        let inputs = self.sources.inputs(&namespace);
        let outcome = match derive::derive(discovery, &inputs, &self.settings) {
            Err(error) => Outcome::Invalid(error.to_string()),
            Ok(found) => Outcome::Derived(self.converge(discovery, found).await),
        };
        let failed = matches!(&outcome, Outcome::Derived(d) if d.failed > 0);
        let reported = self.report(discovery, &outcome).await;
        failed || !reported
    }

    /// Writes the status when it changed, the Warning Event of a new problem, and the
    /// metrics; whether the status write (if any) succeeded.
    async fn report(&self, discovery: &CheckDiscovery, outcome: &Outcome) -> bool {
        let namespace = discovery.namespace().unwrap_or_default();
        let name = discovery.name_any();
        let second = jiff::Timestamp::now().as_second();
        let now = Time(jiff::Timestamp::from_second(second).unwrap_or_default());
        let prev = discovery.status.as_ref();
        let next = status::next_status(prev, discovery.metadata.generation, outcome, &now);
        let mut written = true;
        if prev != Some(&next)
            && let Err(error) = self.writes.status(discovery, &next).await
        {
            tracing::warn!(%namespace, discovery = %name, %error, "discovery status write failed");
            written = false;
        }
        match outcome {
            Outcome::Invalid(message) => {
                if ready(prev) != ready(Some(&next)) {
                    tracing::warn!(%namespace, discovery = %name, %message, "CheckDiscovery is invalid");
                    self.writes
                        .warn(discovery, status::INVALID_SPEC, message)
                        .await;
                }
            }
            Outcome::Derived(derived) => {
                (self.metrics).record(&namespace, &name, derived.generated, &derived.skips);
            }
        }
        written
    }

    /// Brings the namespace's generated checks to `found`.
    async fn converge(&mut self, discovery: &CheckDiscovery, found: derive::Discovered) -> Derived {
        let namespace = discovery.namespace().unwrap_or_default();
        let unavailable = unavailable_for(discovery, &self.sources.unavailable());
        let held = held(&unavailable);
        let checks = sources::in_namespace(&self.sources.checks, &namespace);
        let existing: Vec<&ObjectMeta> = checks.iter().map(|c| &c.metadata).collect();
        let uid = discovery.uid().unwrap_or_default();
        let applied = self.applied.entry(namespace.clone()).or_default();
        // Forget checks that are gone (collected with their discovery, or deleted by hand).
        let names: BTreeSet<&str> = existing.iter().filter_map(|m| m.name.as_deref()).collect();
        applied.retain(|name, _| names.contains(name.as_str()));
        let plan = plan::plan(&Given {
            uid: &uid,
            policy: discovery.spec.policy,
            desired: &found.checks,
            existing: &existing,
            applied,
            held: &held,
        });
        let (failed, first_error) = execute(&self.writes, &namespace, plan.actions, applied).await;
        Derived {
            generated: found.checks.len(),
            skips: found.skips,
            truncated: found.truncated,
            max_checks: discovery.spec.max_checks,
            unavailable,
            failed,
            first_error,
            foreign: plan.foreign,
        }
    }
}

/// Sends the actions (a few at a time) and remembers what was applied; the failures and the
/// first error.
async fn execute(
    writes: &Writes,
    namespace: &str,
    actions: Vec<Action>,
    applied: &mut HashMap<String, Applied>,
) -> (usize, Option<String>) {
    let results: Vec<_> = futures::stream::iter(actions)
        .map(|action| async move {
            let result = writes.act(namespace, &action).await;
            (action, result)
        })
        .buffer_unordered(PARALLEL_WRITES)
        .collect()
        .await;
    let mut failed = 0;
    let mut first_error = None;
    for (action, result) in results {
        match (action, result) {
            (Action::Apply { check, .. }, Ok(answer)) => {
                let generation = answer.and_then(|a| a.metadata.generation);
                let hash = plan::hash(&check);
                applied.insert(check.name_any(), Applied { hash, generation });
            }
            (Action::Delete { name, .. } | Action::Detach { name, .. }, Ok(_)) => {
                applied.remove(&name);
            }
            (_, Err(error)) => {
                tracing::warn!(%namespace, %error, "discovery write failed; retrying");
                failed += 1;
                first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    (failed, first_error)
}

/// The reason and message of a status's Ready condition.
fn ready(status: Option<&CheckDiscoveryStatus>) -> Option<(String, String)> {
    let conditions = status.map(|s| s.conditions.as_slice()).unwrap_or_default();
    (conditions.iter())
        .find(|c| c.type_ == status::READY)
        .map(|c| (c.reason.clone(), c.message.clone()))
}

/// The Gateway API kinds `discovery` reads whose API is not served.
fn unavailable_for(
    discovery: &CheckDiscovery,
    unavailable: &BTreeSet<&'static str>,
) -> BTreeSet<&'static str> {
    let sources = &discovery.spec.sources;
    let mut wanted = BTreeSet::new();
    if sources.http_route.is_some() {
        wanted.extend([HTTP_ROUTE, GATEWAY]);
    }
    if sources.grpc_route.is_some() {
        wanted.extend([GRPC_ROUTE, GATEWAY]);
    }
    unavailable.intersection(&wanted).copied().collect()
}

/// The source kinds whose checks are kept while their API (or their Gateways') is not served.
fn held(unavailable: &BTreeSet<&'static str>) -> BTreeSet<&'static str> {
    let mut held = unavailable.clone();
    if unavailable.contains(GATEWAY) {
        held.extend([HTTP_ROUTE, GRPC_ROUTE]);
    }
    held
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
