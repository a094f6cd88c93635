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

mod events;
mod report;
mod writer;

pub use events::for_location;
pub use writer::ReportWriter;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use kube::Client;
use tokio::{
    sync::{mpsc, watch as channel},
    time::Instant,
};

use super::{
    WATCH_BUFFER, WatchScope, reconcile, reconcile::Scope, refs::RefCache, watch,
    writer::StatusWriter,
};
use crate::{
    api::HealthCheckStatus,
    engine::TransitionLog,
    metrics::{Metrics, MetricsError},
    probe::ProbeContext,
    runner::{
        CheckKey, Registration, RunReport, RunnerSpec, Scheduler, SchedulerConfig, Sink, Vital,
        WatchdogConfig, default_slots,
    },
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
    ) -> Option<Self> {
        let location = config.engine.location.clone()?;
        let engine = &config.engine;
        // CronJob checks read the CronJob in the spoke's own cluster, not the hub: not here;
        // the hourly history lives in status, which the spoke does not write.
        let scheduler = SchedulerConfig {
            max_concurrent: engine.max_concurrent_probes.unwrap_or_else(default_slots),
            stall_grace: engine.stall_grace,
            prober_error_streak: engine.prober_error_streak,
            aligned: config.leader.sharding == super::Sharding::Shards,
            probed_by: Some(identity.clone()),
            cronjobs: None,
            history_every: None,
        };
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

/// The spoke: its scheduler and report writer, built before the engine (its runners are
/// judged by `/healthz`), its tasks started after ([`Spoke::start`]).
#[derive(Clone)]
pub struct Spoke {
    pub(super) scheduler: Scheduler,
    reports: ReportWriter,
    stall_grace: Duration,
}

/// The supervised tasks of the spoke, stopped before the scheduler (the report writer's
/// queue is flushed after).
pub(super) const TASKS: [&str; 5] = [
    "spoke-watch",
    "spoke-filter",
    "spoke-reconcile",
    "spoke-references",
    "spoke-writer",
];

impl Spoke {
    /// Writes the reports still queued, until `deadline` (shutdown).
    pub(super) async fn flush(&self, deadline: Duration) {
        self.reports.flush(deadline).await;
    }

    /// The hub checks' scheduler, sending runs to metrics, logs and the report writer.
    pub fn new(parts: &SpokeParts) -> Self {
        let writer_config = parts.status_writer.config();
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
        let stall_grace = parts.scheduler.stall_grace;
        let scheduler = Scheduler::new(parts.scheduler.clone(), sinks);
        Self {
            scheduler,
            reports,
            stall_grace,
        }
    }

    /// Starts the spoke's tasks under `supervisor`; it runs the hub checks `scopes` gives it.
    pub(super) fn start(
        &self,
        parts: SpokeParts,
        supervisor: &mut Supervisor,
        scopes: channel::Receiver<Scope>,
    ) -> Result<(), SpokeError> {
        supervisor.spawn("spoke-ticker", self.scheduler.clone().run_ticker(TICK));
        // The reconcile core's own counters and gauges would overwrite the local core's (owned
        // checks, leadership): it counts into a registry nobody scrapes.
        let private = Arc::new(Metrics::new()?);
        let writer_config = parts.status_writer.config().clone();
        let ctx = reconcile::Context {
            scheduler: self.scheduler.clone(),
            // Never run: the core only seeds and forgets through it; reports go elsewhere.
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
        let failing = private.operator.watch_failing.clone();
        let health = Arc::new(watch::WatchHealth::new(parts.watch_stall, failing));
        let (events_tx, events_rx) = mpsc::channel(WATCH_BUFFER);
        let (mine_tx, mine_rx) = mpsc::channel(WATCH_BUFFER);
        let hub_watch = watch::run(parts.hub.clone(), watches.clone(), events_tx, health);
        supervisor.spawn("spoke-watch", hub_watch);
        let seeding = events::Seeding {
            hub: parts.hub,
            watches,
            location: parts.location,
        };
        let filter = events::filter(events_rx, mine_tx, seeding, self.reports.clone());
        supervisor.spawn("spoke-filter", filter);
        supervisor.spawn("spoke-references", core.clone().work());
        let reconcile = reconcile::run(core, mine_rx, scopes, parts.reference_ttl);
        supervisor.spawn("spoke-reconcile", reconcile);
        supervisor.spawn("spoke-writer", self.reports.clone().run());
        Ok(())
    }
}

/// Hub checks whose runs are stuck fail `/healthz` like local ones (the hub being down is not
/// such a problem: runs go on).
impl Vital for Spoke {
    fn problems(&self, now: Instant) -> Vec<String> {
        let config = WatchdogConfig {
            tick_threshold: self.stall_grace,
        };
        let health = self.scheduler.health(now, &config);
        (health.problems.into_iter())
            .map(|problem| format!("hub check runner: {problem}"))
            .collect()
    }
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

    fn on_start(
        &self,
        spec: &RunnerSpec,
        resumed: &HealthCheckStatus,
        registration: &Registration,
    ) {
        self.0.on_start(spec, resumed, registration);
    }
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
