//! The hub (issue 29): for every HealthCheck with `spec.locations` this replica owns (its
//! [`Scope`], as for local checks), aggregates the CheckReports spokes write into a status
//! ([`aggregate`], [`status`]), written through the status writer's budgets, with Events on
//! aggregate Ready transitions only. Such checks are never probed here ([`super::Index::keeps`]).
//!
//! It runs with `--locations-hub` (chart value `locations.enabled`, which brings the CheckReport
//! CRD and the RBAC to list and watch CheckReports), once the API server serves CheckReports
//! (until then it asks again every [`CRD_RETRY`]). Reports are watched like HealthChecks (every
//! watched namespace); staleness is timed on this process's monotonic clock from when it first
//! saw each report's version.

pub mod aggregate;
mod reports;
pub mod status;
#[cfg(test)]
mod tests;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt, stream::select_all};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Api, Client, ResourceExt, api::ListParams, runtime::watcher};
use tokio::{sync::watch, time::Instant};

pub use reports::{Entry, Ignored, Reports};

use self::aggregate::{Aggregate, LocationState, Observed};
use super::{
    Scope, events::EventSink, index::WatchScope, reconcile::Core, watch::with_backoff,
    writer::StatusWriter,
};
use crate::{
    api::{CheckKey, CheckReport, HealthCheck, HealthCheckStatus, ReadyStatus, validate},
    metrics::LocationMetrics,
    runner::Registration,
};

/// How often every owned check is judged again (staleness needs no event to appear).
pub const PASS_EVERY: Duration = Duration::from_millis(500);
/// How long the hub waits before asking again whether the CheckReport CRD is served.
pub const CRD_RETRY: Duration = Duration::from_secs(60);

/// What the hub works with.
pub struct HubContext {
    pub client: Client,
    pub watches: Vec<WatchScope>,
    pub core: Arc<Core>,
    pub writer: StatusWriter,
    pub events: EventSink,
    pub metrics: LocationMetrics,
    /// What the status page shows of the checks aggregated here.
    pub shown: Arc<crate::ui::Located>,
}

/// Runs forever: waits for the CRD, then watches reports and aggregates.
pub async fn run(ctx: HubContext, mut scopes: watch::Receiver<Scope>) {
    let mut attempts = 0;
    while !served(&ctx.client, &ctx.watches, attempts == 0).await {
        attempts += 1;
        tokio::time::sleep(CRD_RETRY).await;
    }
    tracing::info!("CheckReports are served: aggregating the checks with spec.locations");
    let mut stream = select_all(ctx.watches.iter().map(|scope| {
        let api = match scope.namespace_name() {
            Some(namespace) => Api::<CheckReport>::namespaced(ctx.client.clone(), namespace),
            None => Api::<CheckReport>::all(ctx.client.clone()),
        };
        with_backoff(watcher(api, watcher::Config::default())).boxed()
    }));
    let mut hub = Hub::new(ctx);
    let mut tick = tokio::time::interval(PASS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scopes_open = true;
    loop {
        tokio::select! {
            item = stream.next() => match item {
                Some(Ok(event)) => hub.observe(event),
                Some(Err(error)) => tracing::warn!(%error, "CheckReport watch failed; retrying"),
                None => return tracing::error!("the CheckReport watch ended"),
            },
            changed = scopes.changed(), if scopes_open => {
                scopes_open = changed.is_ok();
                hub.release_all();
            }
            _ = tick.tick() => {
                let scope = scopes.borrow().clone();
                hub.pass(&scope);
            }
        }
    }
}

/// Whether the API server serves CheckReports (a 404 says the CRD is not installed); says
/// why not at info level the `first` time only, then at debug.
async fn served(client: &Client, watches: &[WatchScope], first: bool) -> bool {
    let api = match watches.first().and_then(|w| w.namespace_name()) {
        Some(namespace) => Api::<CheckReport>::namespaced(client.clone(), namespace),
        None => Api::<CheckReport>::all(client.clone()),
    };
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => true,
        Err(kube::Error::Api(status)) if status.code == 404 => {
            let why = "the CheckReport CRD is not served: checks with spec.locations are not aggregated here (chart value locations.enabled)";
            if first {
                tracing::info!("{why}");
            } else {
                tracing::debug!("{why}");
            }
            false
        }
        Err(error) => {
            let error = super::api_error::describe(&error);
            let why = "cannot list CheckReports (RBAC: chart value locations.enabled); checks with spec.locations are not aggregated here; asking again every minute";
            if first {
                tracing::warn!(%error, "{why}");
            } else {
                tracing::debug!(%error, "{why}");
            }
            false
        }
    }
}

/// What the hub keeps of one check it aggregates.
struct Held {
    /// When it began aggregating it (the clock of missing reports).
    since: Duration,
    settled: Option<ReadyStatus>,
    registration: Arc<Registration>,
    /// The status last queued (or the object's own, at first).
    status: HealthCheckStatus,
    last: Option<(Aggregate, Option<i64>)>,
    /// Locations with metric series.
    series: Vec<String>,
}

/// The aggregation state.
pub struct Hub {
    ctx: HubContext,
    reports: Reports,
    held: HashMap<CheckKey, Held>,
    origin: Instant,
}

impl Hub {
    fn new(ctx: HubContext) -> Self {
        Self {
            ctx,
            reports: Reports::default(),
            held: HashMap::new(),
            origin: Instant::now(),
        }
    }

    /// The hub's monotonic clock.
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn observe(&mut self, event: watcher::Event<CheckReport>) {
        let now = self.now();
        if let Some(ignored) = self.reports.apply(event, now) {
            self.ctx.metrics.ignored(ignored.label());
        }
    }

    /// Judges every owned check with locations; queues the statuses that changed.
    fn pass(&mut self, scope: &Scope) {
        let (checks, synced) = self.ctx.core.located();
        if !synced || !self.reports.synced() {
            return;
        }
        let now = self.now();
        let wall = Time(jiff::Timestamp::now());
        let mut present = HashSet::with_capacity(checks.len());
        let mut listed = HashMap::with_capacity(checks.len());
        for check in &checks {
            let key = CheckKey::of(check);
            if !owns(scope, &key) {
                continue;
            }
            if let Some(names) = self.judge(&key, check, now, &wall) {
                listed.insert(key.clone(), names);
            }
            present.insert(key);
        }
        let gone: Vec<CheckKey> = (self.held.keys())
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.release(&key);
        }
        self.count_ignored(scope, &listed);
    }

    /// Aggregates one check; returns its listed locations.
    fn judge(
        &mut self,
        key: &CheckKey,
        check: &HealthCheck,
        now: Duration,
        wall: &Time,
    ) -> Option<Vec<String>> {
        let valid = validate(&check.spec).ok()?;
        let locations = valid.locations?;
        let held = self.held.entry(key.clone()).or_insert_with(|| {
            let status = check.status.clone().unwrap_or_default();
            self.ctx.writer.seed(key, &status);
            Held {
                since: now,
                settled: status.ready().filter(|r| *r != ReadyStatus::Unknown),
                registration: Arc::default(),
                status,
                last: None,
                series: Vec::new(),
            }
        });
        let reports = self.reports.of(key);
        let observed = |name: &str| {
            let entry = reports?.get(name)?;
            Some(Observed {
                status: entry.status.as_ref(),
                heartbeat: entry.heartbeat,
                seen: entry.seen,
            })
        };
        let verdict = aggregate::aggregate(&locations, valid.interval, observed, held.since, now);
        let generation = check.metadata.generation;
        if held.last.as_ref() == Some(&(verdict.clone(), generation)) {
            return Some(locations.names);
        }
        record(&self.ctx.metrics, key, held, &verdict);
        let next = status::next_status(&verdict, &held.status, held.settled, generation, wall);
        if let Some(transition) = &next.transition {
            tracing::info!(check = %key, from = ?transition.from, to = ?transition.to, reason = %transition.reason, message = %transition.message, "locations' verdict changed");
            (self.ctx.events).publish(key, check.uid(), transition);
        }
        held.settled = next.settled;
        held.status = next.status.clone();
        held.last = Some((verdict, generation));
        (self.ctx.shown).set(crate::ui::LocatedCheck {
            key: key.clone(),
            info: Arc::new(info(check, &valid.probe)),
            status: next.status.clone(),
        });
        self.ctx.writer.put(key, next.status, &held.registration);
        Some(locations.names)
    }

    /// Counts, once per version, the reports of owned checks that no aggregate reads.
    fn count_ignored(&mut self, scope: &Scope, listed: &HashMap<CheckKey, Vec<String>>) {
        for (check, reports) in self.reports.checks_mut() {
            if !owns(scope, check) {
                continue;
            }
            let names = listed.get(check);
            for (location, entry) in reports.iter_mut() {
                let reason = match names {
                    None => Ignored::UnknownCheck,
                    Some(names) if !names.contains(location) => Ignored::Unlisted,
                    Some(_) => continue,
                };
                if !entry.counted {
                    entry.counted = true;
                    self.ctx.metrics.ignored(reason.label());
                }
            }
        }
    }

    /// Stops aggregating `key` here (deleted, or owned elsewhere now).
    fn release(&mut self, key: &CheckKey) {
        let Some(held) = self.held.remove(key) else {
            return;
        };
        held.registration.end();
        self.ctx.writer.forget(key);
        self.ctx.shown.remove(key);
        for location in &held.series {
            (self.ctx.metrics).forget(&key.namespace, &key.name, location);
        }
    }

    /// Forgets every check (the scope changed: the next pass takes up what is owned now).
    fn release_all(&mut self) {
        let keys: Vec<CheckKey> = self.held.keys().cloned().collect();
        for key in keys {
            self.release(&key);
        }
    }
}

/// Sets a check's location series; removes those of locations no longer listed.
fn record(metrics: &LocationMetrics, key: &CheckKey, held: &mut Held, verdict: &Aggregate) {
    for (status, state) in verdict.locations.iter().zip(&verdict.states) {
        let ready = *state == LocationState::Passing;
        let stale = *state == LocationState::Stale;
        metrics.record(&key.namespace, &key.name, &status.name, ready, stale);
    }
    let names: Vec<String> = verdict.locations.iter().map(|l| l.name.clone()).collect();
    for old in held.series.iter().filter(|old| !names.contains(old)) {
        metrics.forget(&key.namespace, &key.name, old);
    }
    held.series = names;
}

/// What the status page needs of a check's object (as a runner's spec carries it).
fn info(check: &HealthCheck, probe: &crate::api::ProbeKind) -> crate::runner::CheckInfo {
    let hidden = (check
        .annotations()
        .get(crate::runner::STATUS_PAGE_ANNOTATION))
    .is_some_and(|v| v == "hidden");
    crate::runner::CheckInfo {
        kind: probe.name(),
        target: probe.target(),
        labels: check.labels().clone(),
        hidden,
        spec: crate::runner::PackedSpec::of(&check.spec),
    }
}

/// Whether this replica aggregates `key`.
fn owns(scope: &Scope, key: &CheckKey) -> bool {
    match scope {
        Scope::All => true,
        Scope::Nothing => false,
        Scope::Share(assignment) => assignment.keeps(key),
    }
}
