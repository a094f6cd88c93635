//! The operator: watches HealthChecks, turns each into a runner (reconcile), and sends results
//! to the status writer and the Event recorder. Which checks a replica runs is its [`Scope`]:
//! all (no election, or the Lease holder), none (a standby), or its share of the ring
//! (`--sharding shards`, see [`shard`]); every replica watches, so `/readyz` means "cache
//! synced" on each.
//!
//! Every long-lived task (watch, reconcile, status writer, Events, elector, scheduler ticker,
//! admin server) runs under one [`Supervisor`]: any of them ending ends the operator with an
//! error naming it, so the kubelet restarts a process that lost a part, instead of a process
//! that answers 200 with a dead writer or elector inside.

pub mod api_error;
pub mod config;
pub mod cronjob;
pub mod discovery;
mod event_queue;
mod events;
#[cfg(test)]
mod fixtures;
pub mod hub;
mod index;
mod leader;
mod pings;
mod reconcile;
mod refs;
pub mod shard;
pub mod spoke;
mod watch;
pub mod writer;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use kube::Client;
use tokio::sync::{mpsc, watch as channel};

pub use config::{AdvertiseAddress, LeaderConfig, OperatorConfig, Sharding};
pub use events::transition_event;
pub use index::{Index, WatchScope, slim};
pub use leader::{Elector, Leadership, LeaseConfig};
pub use reconcile::{Reconciled, Scope};

use crate::{
    engine::{Engine, EngineError, Extensions},
    metrics::{Metrics, MetricsError},
    probe::ProbeContext,
    runner::{Sink, Vital},
    supervisor::{Supervisor, TaskEnded},
};

/// How long shutdown waits for pending status writes, and then for the Lease release.
const FLUSH_DEADLINE: Duration = Duration::from_secs(5);
/// Watch events buffered between the watch task and the reconcile loop.
const WATCH_BUFFER: usize = 256;

/// Why the operator stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("connecting to the Kubernetes API: {}", api_error::describe(.0))]
    Client(#[source] kube::Error),
    #[error("no Kubernetes configuration (in-cluster or KUBECONFIG): {0}")]
    Config(String),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("waiting for signals: {0}")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    TaskEnded(#[from] TaskEnded),
    #[error(transparent)]
    Spoke(#[from] spoke::SpokeError),
}

/// Runs the operator in this process until SIGTERM or SIGINT.
pub async fn run(config: OperatorConfig) -> Result<(), ControllerError> {
    let shutdown = crate::engine::shutdown_signal().map_err(ControllerError::Signals)?;
    let client = client().await?;
    let hub = match &config.hub_kubeconfig {
        Some(path) => Some(spoke::hub_client(path).await?),
        None => None,
    };
    Operator::new(client, config)
        .with_hub(hub)
        .run(shutdown)
        .await
}

/// A client from in-cluster config or KUBECONFIG, naming itself in the API server's audit log.
pub async fn client() -> Result<Client, ControllerError> {
    let mut config = kube::Config::infer()
        .await
        .map_err(|e| ControllerError::Config(e.to_string()))?;
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("canary-operator/", env!("CARGO_PKG_VERSION"))),
    ));
    Client::try_from(config).map_err(ControllerError::Client)
}

/// The operator as a value: build it with a client, run it until `shutdown` resolves. Tests
/// run it in-process against the local API server.
pub struct Operator {
    client: Client,
    config: OperatorConfig,
    /// The hub this operator is a spoke of (`--hub-kubeconfig`).
    hub: Option<Client>,
}

/// A running operator: what it holds for a graceful stop, and what tests observe of it.
pub struct Running {
    engine: Engine,
    writer: writer::StatusWriter,
    coordination: Coordination,
    supervisor: Supervisor,
    spoke: Option<spoke::Spoke>,
}

/// How the replica stops taking part in the election or the ring.
enum Coordination {
    None,
    /// Releases the leader Lease when set.
    Leader(channel::Sender<bool>),
    /// Releases the member Lease with this quiet-after promise; runners keep going until it.
    Shards {
        leave: channel::Sender<Option<jiff::Timestamp>>,
        lead: Duration,
    },
}

impl Operator {
    pub fn new(client: Client, config: OperatorConfig) -> Self {
        Self {
            client,
            config,
            hub: None,
        }
    }

    /// Also runs as a spoke of `hub` (needs `--location`; see [`spoke`]).
    pub fn with_hub(self, hub: Option<Client>) -> Self {
        Self { hub, ..self }
    }

    /// Runs until `shutdown` resolves (then flushes status writes and releases the Lease), or
    /// until a supervised task ends (an error naming it).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ControllerError> {
        let mut running = self.start()?;
        let result = tokio::select! {
            ended = running.supervisor.ended() => {
                tracing::error!(task = ended.task, cause = %ended.cause, "a supervised task ended; exiting");
                Err(ControllerError::TaskEnded(ended))
            }
            () = shutdown => Ok(()),
        };
        running.stop().await;
        result
    }

    fn identity(&self) -> String {
        (self.config.leader.leader_election_identity.clone())
            .unwrap_or_else(crate::probe::default_identity)
    }

    /// The status writer with the configured rate limits (per replica).
    fn status_writer(&self, metrics: &Arc<Metrics>) -> writer::StatusWriter {
        let config = self.config.writer.clone();
        writer::StatusWriter::new(self.client.clone(), config, metrics.clone())
    }

    /// Starts every task on the current runtime; [`Running::stop`] ends them (tests run the
    /// operator in-process this way and read its scheduler and endpoints).
    pub fn start(self) -> Result<Running, ControllerError> {
        let config = &self.config;
        let mode = config.leader.sharding;
        let identity = self.identity();
        let engine = &config.engine;
        let location = engine.location.as_deref();
        let metrics = Metrics::with_labels(&engine.metrics_label_allowlist, location)?;
        let metrics = Arc::new(metrics);
        let writer = self.status_writer(&metrics);
        let (event_sink, publisher) =
            events::EventSink::new(self.client.clone(), identity.clone(), metrics.clone());
        let directory = Arc::new(shard::Directory::new(identity.clone()));
        let watch_health = Arc::new(watch::WatchHealth::new(
            config.watch_stall,
            metrics.operator.watch_failing.clone(),
        ));
        let pings = pings::ApiPings::new(self.client.clone());
        let spoke_parts = (self.hub.clone()).and_then(|hub| {
            spoke::SpokeParts::of(hub, config, identity.clone(), &writer, &metrics)
        });
        let spoke = spoke_parts.as_ref().map(spoke::Spoke::new);
        let mut vitals = vec![
            Arc::new(writer.clone()) as Arc<dyn Vital>,
            watch_health.clone(),
        ];
        vitals.extend(spoke.clone().map(|s| Arc::new(s) as Arc<dyn Vital>));
        let located = Arc::new(crate::ui::Located::default());
        let extensions = Extensions {
            sinks: vec![
                Arc::new(writer.clone()) as Arc<dyn Sink>,
                Arc::new(event_sink.clone()),
            ],
            vitals,
            aligned: mode == Sharding::Shards,
            probed_by: Some(identity.clone()),
            history_every: Some(config.writer.history),
            owners: (mode == Sharding::Shards)
                .then(|| directory.clone() as Arc<dyn crate::ui::Owners>),
            forwarding: (mode == Sharding::Shards)
                .then(|| self.forwarding())
                .flatten(),
            heartbeat: Some(pings.clone() as Arc<dyn crate::heartbeat::Backend>),
            cronjobs: Some(Arc::new(cronjob::KubeBatch(self.client.clone()))),
            located: config.locations_hub.then(|| located.clone()),
        };
        let mut engine = Engine::start_with_metrics(&config.engine, metrics.clone(), extensions)?;
        let mut supervisor = Supervisor::default();
        engine.supervise(&mut supervisor);
        supervisor.spawn("writer", writer.clone().run());
        supervisor.spawn("events", publisher);
        let (applied_tx, applied) = channel::channel(shard::Applied::default());
        let (scopes, coordination) = match mode {
            Sharding::Off => (channel::channel(Scope::All).1, Coordination::None),
            Sharding::Leader => self.elect(&mut supervisor, &identity, engine.standby.clone()),
            Sharding::Shards => {
                let ui = self.ui_advertised(engine.ui_addr);
                let member = self.member(&identity, &metrics, &engine, directory, ui);
                join(&mut supervisor, member, applied)
            }
        };
        let (events_tx, events_rx) = mpsc::channel(WATCH_BUFFER);
        let watches = WatchScope::of(&config.namespaces);
        let watch = watch::run(
            self.client.clone(),
            watches.clone(),
            events_tx,
            watch_health,
        );
        supervisor.spawn("watch", watch);
        if let (Some(spoke), Some(parts)) = (&spoke, spoke_parts) {
            spoke.start(parts, &mut supervisor, scopes.clone())?;
        }
        let applied_tx = (mode == Sharding::Shards).then_some(applied_tx);
        let ctx = self.reconcile_context(&engine, &writer, metrics, &identity, applied_tx);
        let core = reconcile::Core::new(ctx, &watches);
        engine.audit.attach(core.clone());
        pings.attach(core.clone());
        supervisor.spawn("references", core.clone().work());
        if config.discovery {
            let metrics = engine.metrics.operator.discovery.clone();
            let run = self.discovery(&identity, &writer, metrics, scopes.clone());
            supervisor.spawn("discovery", run);
        }
        if config.locations_hub {
            let hub = hub::HubContext {
                client: self.client.clone(),
                watches: watches.clone(),
                core: core.clone(),
                writer: writer.clone(),
                events: event_sink,
                metrics: engine.metrics.operator.locations.clone(),
                shown: located,
            };
            supervisor.spawn("hub", hub::run(hub, scopes.clone()));
        }
        let reconcile = reconcile::run(core, events_rx, scopes, config.reference_ttl);
        supervisor.spawn("reconcile", reconcile);
        tracing::info!(%identity, sharding = mode.name(), "operator started");
        Ok(Running {
            engine,
            writer,
            coordination,
            supervisor,
            spoke,
        })
    }

    /// The discovery controller (`--discovery`), writing through the status writer's budgets
    /// and generating for the discoveries this replica's scope holds.
    fn discovery(
        &self,
        identity: &str,
        writer: &writer::StatusWriter,
        metrics: crate::metrics::DiscoveryMetrics,
        scopes: channel::Receiver<Scope>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let config = discovery::DiscoveryConfig {
            namespaces: self.config.namespaces.clone(),
            cluster_domain: self.config.cluster_domain.clone(),
            identity: identity.to_string(),
        };
        discovery::run(self.client.clone(), config, writer.clone(), metrics, scopes)
    }

    /// What the reconcile loop works with.
    fn reconcile_context(
        &self,
        engine: &Engine,
        writer: &writer::StatusWriter,
        metrics: Arc<Metrics>,
        identity: &str,
        applied: Option<channel::Sender<shard::Applied>>,
    ) -> reconcile::Context {
        let config = &self.config;
        reconcile::Context {
            scheduler: engine.scheduler.clone(),
            writer: writer.clone(),
            refs: refs::RefCache::new(
                self.client.clone(),
                config.reference_ttl,
                config.secret_reference_label.clone(),
            ),
            probe: Arc::new(ProbeContext {
                user_agent: crate::probe::user_agent(Some(identity)),
                ..ProbeContext::with_policy(&config.policy)
            }),
            metrics,
            synced: engine.ready.clone(),
            applied,
        }
    }

    /// This replica's ring membership: its Lease, renewed, and the peers' as it sees them.
    fn member(
        &self,
        identity: &str,
        metrics: &Arc<Metrics>,
        engine: &Engine,
        directory: Arc<shard::Directory>,
        ui: Option<std::net::SocketAddr>,
    ) -> shard::Member {
        let leader = &self.config.leader;
        let ring = leader.ring(self.config.engine.location.as_deref());
        let config = shard::ShardConfig::new(
            &ring,
            leader.leader_election_namespace.clone(),
            identity.to_string(),
            leader.leader_election_lease_duration,
        )
        .with_ui(ui);
        let gauges = shard::ShardGauges {
            members: metrics.operator.shard_members.clone(),
            excluded: metrics.operator.shard_excluded.clone(),
        };
        let scheduler = engine.scheduler.clone();
        shard::Member::new(self.client.clone(), config, gauges, scheduler, directory)
    }

    /// `--ui-forward` with its key; `None` (and a line saying why) without a key.
    fn forwarding(&self) -> Option<Arc<crate::ui::Forwarding>> {
        let leader = &self.config.leader;
        if !leader.ui_forward {
            return None;
        }
        let Some(key) = leader.ui_forward_key.clone() else {
            tracing::warn!(
                "--ui-forward is set without --ui-forward-key-file: forwarding stays off, and a check's page is served only by the replica probing it"
            );
            return None;
        };
        Some(Arc::new(crate::ui::Forwarding {
            key,
            allow: leader.ui_forward_cidrs.clone(),
            deny: self.config.policy.deny_cidrs.clone(),
        }))
    }

    /// Where peers reach this replica's status page: `--ui-advertise-address`, else the bound
    /// address when it names a host (not `0.0.0.0`); none when the page is off.
    fn ui_advertised(&self, bound: Option<std::net::SocketAddr>) -> Option<std::net::SocketAddr> {
        let bound = bound?;
        match self.config.leader.ui_advertise_address {
            Some(advertised) => Some(advertised.with_default_port(bound.port())),
            None if bound.ip().is_unspecified() => {
                tracing::warn!(
                    "the status page is bound to an unspecified address and --ui-advertise-address is not set: peers cannot forward this replica's checks to it"
                );
                None
            }
            None => Some(bound),
        }
    }

    /// Starts the elector; the scope follows leadership.
    fn elect(
        &self,
        supervisor: &mut Supervisor,
        identity: &str,
        standby: Arc<AtomicBool>,
    ) -> (channel::Receiver<Scope>, Coordination) {
        let (stop_tx, stop_rx) = channel::channel(false);
        let leader = &self.config.leader;
        let (leadership_tx, mut leadership) = channel::channel(Leadership::Standby);
        let config = LeaseConfig::new(
            leader.leader_election_lease_name.clone(),
            leader.leader_election_namespace.clone(),
            identity.to_string(),
            leader.leader_election_lease_duration,
        );
        let elector = Elector::new(self.client.clone(), config);
        supervisor.spawn("elector", elector.run(leadership_tx, stop_rx));
        let (scope_tx, scopes) = channel::channel(Scope::Nothing);
        supervisor.spawn("leader-gauge", async move {
            loop {
                let now = *leadership.borrow_and_update();
                standby.store(now == Leadership::Standby, Ordering::Relaxed);
                let scope = if now.active() {
                    Scope::All
                } else {
                    Scope::Nothing
                };
                scope_tx.send_if_modified(|current| {
                    let changed = *current != scope;
                    *current = scope;
                    changed
                });
                if leadership.changed().await.is_err() {
                    // The elector is gone (its own end is reported): nothing to follow.
                    return std::future::pending().await;
                }
            }
        });
        (scopes, Coordination::Leader(stop_tx))
    }
}

/// Joins the shard ring: the membership task and its scope channel.
fn join(
    supervisor: &mut Supervisor,
    member: shard::Member,
    applied: channel::Receiver<shard::Applied>,
) -> (channel::Receiver<Scope>, Coordination) {
    let lead = member.leave_lead();
    let (scope_tx, scopes) = channel::channel(Scope::Nothing);
    let (leave, leaving) = channel::channel(None);
    supervisor.spawn("member", member.run(scope_tx, applied, leaving));
    (scopes, Coordination::Shards { leave, lead })
}

impl Running {
    /// The scheduler: which checks run here, and how often they ran.
    pub fn scheduler(&self) -> &crate::runner::Scheduler {
        &self.engine.scheduler
    }

    /// Where `/metrics` and `/healthz` answer.
    pub fn admin(&self) -> &crate::admin::Admin {
        &self.engine.admin
    }

    /// Resolves when a supervised task ends (the operator would exit), naming it.
    pub async fn ended(&mut self) -> TaskEnded {
        self.supervisor.ended().await
    }

    /// Stops probing (in a ring: after handing over), flushes pending status writes, releases
    /// the Lease.
    pub async fn stop(mut self) {
        tracing::info!(
            "shutting down: stopping runners, flushing status writes, releasing the Lease"
        );
        self.engine.ready.store(false, Ordering::SeqCst);
        for task in [
            "reconcile",
            "references",
            "audit",
            "watch",
            "leader-gauge",
            "discovery",
            "hub",
        ] {
            self.supervisor.abort(task);
        }
        if let Coordination::Shards { leave, lead } = &self.coordination {
            // Peers take over from the first slot after the promise; probe until then.
            let probing = !self.engine.scheduler.keys().is_empty();
            let lead = if probing { *lead } else { Duration::ZERO };
            let quiet_after = jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::try_from(lead).unwrap_or_default())
                .unwrap_or_else(|_| jiff::Timestamp::now());
            self.engine.scheduler.retire(quiet_after);
            let _ = leave.send(Some(quiet_after));
            tokio::time::sleep(lead).await;
            // Runs due by the promise that are a little late still start, and started ones
            // finish (peers leave those slots to this replica); later ones are retired.
            // Bounded by another lead.
            let until = tokio::time::Instant::now() + lead;
            while self.engine.scheduler.runs_pending_before_retirement()
                && tokio::time::Instant::now() < until
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.engine.scheduler.shutdown();
        if let Some(spoke) = &self.spoke {
            for task in spoke::TASKS {
                self.supervisor.abort(task);
            }
            spoke.scheduler.shutdown();
        }
        match &self.spoke {
            Some(spoke) => {
                let spoke = spoke.flush(FLUSH_DEADLINE);
                tokio::join!(self.writer.flush(FLUSH_DEADLINE), spoke);
            }
            None => self.writer.flush(FLUSH_DEADLINE).await,
        }
        for task in ["writer", "events", "ticker", "spoke-ticker", "admin", "ui"] {
            self.supervisor.abort(task);
        }
        if let Coordination::Leader(stop) = &self.coordination {
            let _ = stop.send(true);
        }
        self.supervisor.drain(FLUSH_DEADLINE).await;
        self.supervisor.abort_all();
    }
}

/// Sleeps until `at`; forever when there is nothing to wait for.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
