//! The operator: watches HealthChecks, turns each into a runner (reconcile), and sends results
//! to the status writer and the Event recorder. Only an active replica (no election, or the
//! Lease holder) runs checks; every replica watches, so `/readyz` means "cache synced" on each.
//!
//! Every long-lived task (watch, reconcile, status writer, Events, elector, scheduler ticker,
//! admin server) runs under one [`Supervisor`]: any of them ending ends the operator with an
//! error naming it, so the kubelet restarts a process that lost a part, instead of a process
//! that answers 200 with a dead writer or elector inside.

mod event_queue;
mod events;
mod leader;
mod reconcile;
mod refs;
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

pub use events::transition_event;
pub use leader::{Elector, Leadership, LeaseConfig};
pub use reconcile::Reconciled;
pub use refs::LabelGate;

use crate::{
    cli::OperatorArgs,
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
    #[error("connecting to the Kubernetes API: {0}")]
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
}

/// Runs the operator in this process until SIGTERM or SIGINT.
pub async fn run(args: OperatorArgs) -> Result<(), ControllerError> {
    let shutdown = crate::engine::shutdown_signal().map_err(ControllerError::Signals)?;
    let client = client().await?;
    Operator::new(client, args).run(shutdown).await
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

fn default_identity() -> String {
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "canary".into());
    format!("{}-{}", host.trim(), std::process::id())
}

/// The operator as a value: build it with a client, run it until `shutdown` resolves. Tests
/// run it in-process against the local API server.
pub struct Operator {
    client: Client,
    args: OperatorArgs,
}

/// What the running operator holds for a graceful stop.
struct Running {
    engine: Engine,
    writer: writer::StatusWriter,
    stop_elector: channel::Sender<bool>,
    supervisor: Supervisor,
}

impl Operator {
    pub fn new(client: Client, args: OperatorArgs) -> Self {
        Self { client, args }
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
        (self.args.leader.leader_election_identity.clone()).unwrap_or_else(default_identity)
    }

    fn start(self) -> Result<Running, ControllerError> {
        let args = &self.args;
        let identity = self.identity();
        let allowlist = &args.service.engine.metrics_label_allowlist;
        let metrics = Arc::new(Metrics::with_label_allowlist(allowlist)?);
        let writer = writer::StatusWriter::new(
            self.client.clone(),
            writer::WriterConfig {
                qps: args.status_write_qps,
                burst: args.status_write_burst,
                first_qps: args.status_first_write_qps,
                first_burst: args.status_first_write_burst,
                heartbeat: args.status_heartbeat,
                stall: args.writer_stall,
            },
            metrics.clone(),
        );
        let (event_sink, publisher) =
            events::EventSink::new(self.client.clone(), identity.clone(), metrics.clone());
        let watch_health = Arc::new(watch::WatchHealth::new(
            args.watch_stall,
            metrics.operator.watch_failing.clone(),
        ));
        let extensions = Extensions {
            sinks: vec![
                Arc::new(writer.clone()) as Arc<dyn Sink>,
                Arc::new(event_sink),
            ],
            vitals: vec![
                Arc::new(writer.clone()) as Arc<dyn Vital>,
                watch_health.clone(),
            ],
        };
        let service = &args.service;
        let mut engine = Engine::start_with_metrics(
            &service.engine,
            &service.admin,
            metrics.clone(),
            extensions,
        )?;
        let mut supervisor = Supervisor::default();
        engine.supervise(&mut supervisor);
        supervisor.spawn("writer", writer.clone().run());
        supervisor.spawn("events", publisher);
        let (leadership, stop_elector) =
            self.elect(&mut supervisor, &identity, &metrics, engine.standby.clone());
        let (events_tx, events_rx) = mpsc::channel(WATCH_BUFFER);
        let watch = watch::run(
            self.client.clone(),
            args.namespaces.clone(),
            events_tx,
            watch_health,
        );
        supervisor.spawn("watch", watch);
        let ctx = reconcile::Context {
            scheduler: engine.scheduler.clone(),
            writer: writer.clone(),
            refs: refs::RefCache::new(
                self.client.clone(),
                args.reference_ttl,
                args.secret_reference_label.clone(),
            ),
            probe: Arc::new(ProbeContext {
                deny: service.policy.deny_cidrs.clone(),
                user_agent: crate::probe::user_agent(Some(&identity)),
            }),
            metrics,
            synced: engine.ready.clone(),
        };
        let reconcile = reconcile::run(ctx, events_rx, leadership, args.reference_ttl);
        supervisor.spawn("reconcile", reconcile);
        tracing::info!(%identity, leader_election = args.leader.leader_elect, "operator started");
        Ok(Running {
            engine,
            writer,
            stop_elector,
            supervisor,
        })
    }

    /// Starts the elector when election is on; the leadership channel either way.
    fn elect(
        &self,
        supervisor: &mut Supervisor,
        identity: &str,
        metrics: &Arc<Metrics>,
        standby: Arc<AtomicBool>,
    ) -> (channel::Receiver<Leadership>, channel::Sender<bool>) {
        let (stop_tx, stop_rx) = channel::channel(false);
        let leader = &self.args.leader;
        if !leader.leader_elect {
            metrics.operator.leader.set(1);
            let (_, leadership) = channel::channel(Leadership::Disabled);
            return (leadership, stop_tx);
        }
        let (leadership_tx, leadership) = channel::channel(Leadership::Standby);
        let config = LeaseConfig::new(
            leader.leader_election_lease_name.clone(),
            leader.leader_election_namespace.clone(),
            identity.to_string(),
            leader.leader_election_lease_duration,
        );
        let elector = Elector::new(self.client.clone(), config);
        supervisor.spawn("elector", elector.run(leadership_tx, stop_rx));
        let gauge = metrics.operator.leader.clone();
        let mut watched = leadership.clone();
        supervisor.spawn("leader-gauge", async move {
            loop {
                let now = *watched.borrow_and_update();
                gauge.set(i64::from(now == Leadership::Leading));
                standby.store(now == Leadership::Standby, Ordering::Relaxed);
                if watched.changed().await.is_err() {
                    // The elector is gone (its own end is reported): nothing to follow.
                    return std::future::pending().await;
                }
            }
        });
        (leadership, stop_tx)
    }
}

impl Running {
    /// Stops probing, flushes pending status writes, releases the Lease.
    async fn stop(mut self) {
        tracing::info!(
            "shutting down: stopping runners, flushing status writes, releasing the Lease"
        );
        self.engine.ready.store(false, Ordering::SeqCst);
        for task in ["reconcile", "watch", "leader-gauge"] {
            self.supervisor.abort(task);
        }
        self.engine.scheduler.shutdown();
        self.writer.flush(FLUSH_DEADLINE).await;
        for task in ["writer", "events", "ticker", "admin", "ui"] {
            self.supervisor.abort(task);
        }
        let _ = self.stop_elector.send(true);
        self.supervisor.drain(FLUSH_DEADLINE).await;
        self.supervisor.abort_all();
    }
}
