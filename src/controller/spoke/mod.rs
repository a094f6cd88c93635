//! The spoke (`--hub-kubeconfig`, with `--location`): besides its own cluster's checks, the
//! operator probes the hub's HealthChecks whose `spec.locations.names` lists its location and
//! writes each one's result into the hub as a [`crate::api::CheckReport`].
//!
//! It reuses the operator's machinery, pointed at the hub: the HealthCheck watch, the
//! reconcile core (index, shard scope, reference worker) and the scheduler, with a
//! [`ReportWriter`] where the local scheduler has the status writer and Events. It is a second
//! scheduler, so a hub check never meets the local reconcile loop (which stops runners it does
//! not know) nor writes a HealthCheck status; its runs count in the same metrics and its
//! probes carry the same User-Agent.
//!
//! The hub's API server cannot select on `spec.locations`, so the spoke watches every hub
//! check in its namespaces and drops the others as their events arrive ([`for_location`]):
//! nothing is cached for them, but each of their changes (the hub's own status writes
//! included) is sent to and decoded by every spoke.
//!
//! References (Secrets, ConfigMaps) are read where the check lives, through the hub client,
//! under the same rules as local ones (`--secret-reference-label`, no service-account tokens);
//! what the spoke's hub RBAC does not allow makes the check `ReferenceForbidden` in its report.

mod report;
mod writer;

pub use writer::ReportWriter;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use kube::{Client, runtime::watcher::Event};
use tokio::sync::{mpsc, watch as channel};

use super::{
    WATCH_BUFFER, WatchScope, reconcile,
    reconcile::{Scope, WatchEvent},
    refs::RefCache,
    watch,
    writer::StatusWriter,
};
use crate::{
    api::{CheckReport, CheckReportStatus, HealthCheck},
    engine::TransitionLog,
    metrics::{Metrics, MetricsError},
    probe::ProbeContext,
    runner::{CheckKey, Registration, RunReport, RunnerSpec, Scheduler, SchedulerConfig, Sink},
    supervisor::Supervisor,
};

/// How often the spoke scheduler's loop ticks (as the engine's).
const TICK: Duration = Duration::from_millis(500);
/// Deadline of the list of this location's reports at start.
const SEED_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the spoke could not start.
#[derive(Debug, thiserror::Error)]
pub enum SpokeError {
    #[error("reading the hub kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("connecting to the hub: {}", super::api_error::describe(.0))]
    Client(#[source] kube::Error),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// A client of the hub from the kubeconfig file at `path`.
pub async fn hub_client(path: &Path) -> Result<Client, SpokeError> {
    let failed = |source| SpokeError::Kubeconfig {
        path: path.to_path_buf(),
        source,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(failed)?;
    let options = kube::config::KubeConfigOptions::default();
    let mut config =
        (kube::Config::from_custom_kubeconfig(kubeconfig, &options).await).map_err(failed)?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!(
            "canary-operator/",
            env!("CARGO_PKG_VERSION"),
            " (spoke)"
        )),
    ));
    Client::try_from(config).map_err(SpokeError::Client)
}

/// What the spoke is built from.
pub struct SpokeParts {
    pub hub: Client,
    pub location: String,
    pub identity: String,
    pub namespaces: Vec<String>,
    /// The local status writer: reports spend its budgets.
    pub status_writer: StatusWriter,
    pub metrics: Arc<Metrics>,
    pub probe: Arc<ProbeContext>,
    pub scheduler: SchedulerConfig,
    pub reference_ttl: Duration,
    pub secret_reference_label: Option<crate::api::LabelGate>,
    pub watch_stall: Duration,
}

impl SpokeParts {
    /// The spoke of `hub` for the operator `config` (`None` without `--location`), running as
    /// replica `identity`, its reports spending `writer`'s budgets.
    pub fn of(
        hub: Client,
        config: &super::OperatorConfig,
        identity: String,
        writer: &StatusWriter,
        metrics: &Arc<Metrics>,
        scheduler: SchedulerConfig,
    ) -> Option<Self> {
        let location = config.engine.location.clone()?;
        tracing::info!(%location, "running as a spoke of the hub");
        Some(Self {
            hub,
            location,
            namespaces: config.namespaces.clone(),
            status_writer: writer.clone(),
            metrics: metrics.clone(),
            probe: Arc::new(ProbeContext {
                user_agent: crate::probe::user_agent(Some(&identity)),
                ..ProbeContext::with_policy(&config.policy)
            }),
            scheduler,
            reference_ttl: config.reference_ttl,
            secret_reference_label: config.secret_reference_label.clone(),
            watch_stall: config.watch_stall,
            identity,
        })
    }
}

/// The running spoke: what [`super::Running::stop`] stops.
pub(super) struct Spoke {
    pub scheduler: Scheduler,
}

/// The supervised tasks of the spoke, stopped before the scheduler.
pub(super) const TASKS: [&str; 5] = [
    "spoke-watch",
    "spoke-filter",
    "spoke-reconcile",
    "spoke-references",
    "spoke-writer",
];

/// Starts the spoke's tasks under `supervisor`; it runs the hub checks `scopes` gives it.
pub(super) fn start(
    parts: SpokeParts,
    supervisor: &mut Supervisor,
    scopes: channel::Receiver<Scope>,
) -> Result<Spoke, SpokeError> {
    let writer_config = parts.status_writer.config().clone();
    let reports = ReportWriter::new(
        parts.hub.clone(),
        parts.location.clone(),
        writer_config.heartbeat,
        parts.status_writer.clone(),
        parts.metrics.operator.status_writes.clone(),
    );
    let sinks: Vec<Arc<dyn Sink>> = vec![
        Arc::new(RunsOnly(parts.metrics.clone())),
        Arc::new(TransitionLog),
        Arc::new(reports.clone()),
    ];
    // CronJob checks read the CronJob in the spoke's own cluster, not the hub: not here; the
    // hourly history lives in status, which the spoke does not write.
    let config = SchedulerConfig {
        probed_by: Some(parts.identity.clone()),
        cronjobs: None,
        history_every: None,
        ..parts.scheduler
    };
    let scheduler = Scheduler::new(config, sinks);
    supervisor.spawn("spoke-ticker", scheduler.clone().run_ticker(TICK));
    // The reconcile core's own counters and gauges would overwrite the local core's (owned
    // checks, leadership): it counts into a registry nobody scrapes.
    let private = Arc::new(Metrics::new()?);
    let ctx = reconcile::Context {
        scheduler: scheduler.clone(),
        // Never run: the core only seeds and forgets through it; reports go to `reports`.
        writer: StatusWriter::new(parts.hub.clone(), writer_config, private.clone()),
        refs: RefCache::new(
            parts.hub.clone(),
            parts.reference_ttl,
            parts.secret_reference_label,
        ),
        probe: parts.probe,
        metrics: private.clone(),
        synced: Arc::new(AtomicBool::new(false)),
        applied: None,
    };
    let watches = WatchScope::of(&parts.namespaces);
    let core = reconcile::Core::new(ctx, &watches);
    // Not a vital: a hub that cannot be reached must not make the kubelet restart a spoke
    // that keeps probing its own cluster's checks and the hub's.
    let health = watch::WatchHealth::new(parts.watch_stall, private.operator.watch_failing.clone());
    let (events_tx, events_rx) = mpsc::channel(WATCH_BUFFER);
    let (mine_tx, mine_rx) = mpsc::channel(WATCH_BUFFER);
    let hub_watch = watch::run(
        parts.hub.clone(),
        watches.clone(),
        events_tx,
        Arc::new(health),
    );
    supervisor.spawn("spoke-watch", hub_watch);
    let seeding = Seeding {
        hub: parts.hub.clone(),
        watches: watches.clone(),
        location: parts.location.clone(),
    };
    let filter = filter(events_rx, mine_tx, seeding, reports.clone());
    supervisor.spawn("spoke-filter", filter);
    supervisor.spawn("spoke-references", core.clone().work());
    let ttl = parts.reference_ttl;
    supervisor.spawn(
        "spoke-reconcile",
        reconcile::run(core, mine_rx, scopes, ttl),
    );
    supervisor.spawn("spoke-writer", reports.run());
    Ok(Spoke { scheduler })
}

/// Where a spoke finds the reports it wrote before a restart.
struct Seeding {
    hub: Client,
    watches: Vec<WatchScope>,
    location: String,
}

/// Passes on the hub's watch events that concern the location ([`for_location`]), each check
/// carrying the location's last report as its status; first reads the reports already in the
/// hub, so runners resume from them after a restart.
async fn filter(
    mut events: mpsc::Receiver<WatchEvent>,
    mine: mpsc::Sender<WatchEvent>,
    seeding: Seeding,
    reports: ReportWriter,
) {
    seed(&seeding, &reports).await;
    let location = seeding.location;
    let last = |key: &CheckKey, uid: &str| reports.last(key, uid);
    while let Some((scope, event)) = events.recv().await {
        if let Some(event) = for_location(event, &location, last)
            && mine.send((scope, event)).await.is_err()
        {
            return;
        }
    }
}

/// Reads the location's reports in the hub into `reports` (each with the uid of the check it
/// belongs to). A hub that does not answer leaves runners to start afresh.
async fn seed(seeding: &Seeding, reports: &ReportWriter) {
    let selector = format!("{}={}", report::LOCATION_LABEL, seeding.location);
    let params = kube::api::ListParams::default().labels(&selector);
    for scope in &seeding.watches {
        let api: kube::Api<CheckReport> = match scope.namespace_name() {
            Some(namespace) => kube::Api::namespaced(seeding.hub.clone(), namespace),
            None => kube::Api::all(seeding.hub.clone()),
        };
        let listed = tokio::time::timeout(SEED_TIMEOUT, api.list(&params)).await;
        let list = match listed {
            Ok(Ok(list)) => list,
            Ok(Err(error)) => {
                let error = super::api_error::describe(&error);
                tracing::warn!(%error, "reading this location's CheckReports failed; hub checks start afresh");
                continue;
            }
            Err(_) => {
                tracing::warn!(
                    "reading this location's CheckReports timed out; hub checks start afresh"
                );
                continue;
            }
        };
        for report in list.items {
            let owner = (report.metadata.owner_references.iter().flatten())
                .find(|o| o.kind == "HealthCheck");
            let (Some(owner), Some(namespace), Some(status)) = (
                owner,
                report.metadata.namespace.clone(),
                report.status.clone(),
            ) else {
                continue;
            };
            let key = CheckKey {
                namespace,
                name: report.spec.check.clone(),
            };
            reports.seed(key, owner.uid.clone(), status);
        }
    }
}

/// The event as this location's spoke sees it: a check not listing `location` is absent (an
/// update that removed the location deletes it here), one listing it is a plain check (its
/// `spec.locations` removed, so nothing that keeps located checks off local probing applies
/// here), with the location's `last` report as its status (not the hub's aggregate).
pub fn for_location(
    event: Event<HealthCheck>,
    location: &str,
    last: impl Fn(&CheckKey, &str) -> Option<CheckReportStatus>,
) -> Option<Event<HealthCheck>> {
    let listed = |object| listed(object, location, &last);
    match event {
        Event::Init | Event::InitDone => Some(event),
        Event::InitApply(object) => listed(object).map(Event::InitApply),
        Event::Apply(object) => Some(match listed(object.clone()) {
            Some(mine) => Event::Apply(mine),
            None => Event::Delete(object),
        }),
        Event::Delete(object) => Some(Event::Delete(object)),
    }
}

/// `object` as a plain check, when it lists `location`.
fn listed(
    mut object: HealthCheck,
    location: &str,
    last: impl Fn(&CheckKey, &str) -> Option<CheckReportStatus>,
) -> Option<HealthCheck> {
    let locations = object.spec.locations.as_ref()?;
    if !locations.names.iter().any(|name| name == location) {
        return None;
    }
    object.spec.locations = None;
    let key = CheckKey::of(&object);
    let generation = object.metadata.generation;
    let uid = object.metadata.uid.as_deref().unwrap_or_default();
    object.status = last(&key, uid).map(|report| report::resumed(&report, generation));
    Some(object)
}

/// The metrics sink without its per-tick gauges: the spoke scheduler's summary would overwrite
/// the local scheduler's (`canary_checks{state}`, slots); hub checks count in every per-check
/// series.
struct RunsOnly(Arc<Metrics>);

impl Sink for RunsOnly {
    fn on_run(&self, report: &RunReport<'_>) {
        self.0.on_run(report);
    }

    fn on_remove(&self, key: &CheckKey) {
        self.0.on_remove(key);
    }

    fn on_start(&self, spec: &RunnerSpec, registration: &Registration) {
        self.0.on_start(spec, registration);
    }
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
