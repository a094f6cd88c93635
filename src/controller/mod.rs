//! The operator: watches HealthChecks, turns each into a runner (reconcile), and sends results
//! to the status writer and the Event recorder. Only the Lease holder runs checks; every
//! replica watches, so `/readyz` means "cache synced" everywhere.

mod event_queue;
mod events;
mod leader;
mod refs;
pub mod writer;

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, atomic::Ordering},
};

use futures::{Stream, StreamExt, stream::select_all};
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};
use tokio::sync::watch;

pub use events::transition_event;
pub use refs::LabelGate;

use crate::{
    api::{CheckKey, HealthCheck, validate},
    cli::OperatorArgs,
    engine::{Engine, EngineError},
    metrics::{Metrics, MetricsError},
    probe::ProbeContext,
    runner::{Origin, RunnerSpec, Scheduler},
};

/// How long shutdown waits for pending status writes.
const FLUSH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

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
}

/// What reconcile needs.
struct Context {
    scheduler: Scheduler,
    writer: writer::StatusWriter,
    refs: refs::RefCache,
    probe: Arc<ProbeContext>,
    metrics: Arc<Metrics>,
}

/// Runs the operator until SIGTERM or SIGINT.
pub async fn run(args: OperatorArgs) -> Result<(), ControllerError> {
    let shutdown = crate::engine::shutdown_signal().map_err(ControllerError::Signals)?;
    tokio::pin!(shutdown);
    let client = client().await?;
    let identity = args
        .leader
        .leader_election_identity
        .clone()
        .unwrap_or_else(default_identity);
    let metrics = Arc::new(Metrics::new()?);
    let writer = writer::StatusWriter::new(
        client.clone(),
        writer::WriterConfig {
            qps: args.status_write_qps,
            burst: args.status_write_burst,
            heartbeat: args.status_heartbeat,
        },
        metrics.clone(),
    );
    let (event_sink, _events) =
        events::EventSink::start(client.clone(), identity.clone(), metrics.clone());
    let engine = Engine::start_with_metrics(
        &args.service.engine,
        &args.service.admin,
        metrics.clone(),
        vec![
            Arc::new(writer.clone()) as Arc<dyn crate::runner::Sink>,
            Arc::new(event_sink),
        ],
    )?;
    tokio::spawn(writer.clone().run());
    let (leading_tx, mut leading) = watch::channel(!args.leader.leader_elect);
    let (stop_tx, stop_rx) = watch::channel(false);
    let elector = args.leader.leader_elect.then(|| {
        let config = leader::LeaseConfig {
            name: args.leader.leader_election_lease_name.clone(),
            namespace: args.leader.leader_election_namespace.clone(),
            identity: identity.clone(),
            duration: args.leader.leader_election_lease_duration,
        };
        tokio::spawn(leader::run(client.clone(), config, leading_tx, stop_rx))
    });
    let ctx = Context {
        scheduler: engine.scheduler.clone(),
        writer: writer.clone(),
        refs: refs::RefCache::new(
            client.clone(),
            args.reference_ttl,
            args.secret_reference_label.clone(),
        ),
        probe: Arc::new(ProbeContext {
            deny: args.service.policy.deny_cidrs.clone(),
        }),
        metrics,
    };
    let mut objects: HashMap<CheckKey, HealthCheck> = HashMap::new();
    let mut initial: Option<BTreeSet<CheckKey>> = None;
    let mut stream = watch_stream(&client, &args.namespaces);
    let mut resync = tokio::time::interval(args.reference_ttl);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut is_leader = *leading.borrow();
    let mut elections_open = args.leader.leader_elect;
    writer.set_enabled(is_leader);
    tracing::info!(%identity, leader_election = args.leader.leader_elect, "operator started");
    loop {
        tokio::select! {
            event = stream.next() => match event {
                Some(Ok(event)) => handle(event, &mut objects, &mut initial, &ctx, is_leader, &engine).await,
                Some(Err(error)) => tracing::warn!(%error, "HealthCheck watch failed; retrying with backoff"),
                None => {
                    tracing::error!("HealthCheck watch ended; restarting it");
                    stream = watch_stream(&client, &args.namespaces);
                }
            },
            _ = resync.tick(), if is_leader => {
                for object in objects.values() {
                    reconcile(object, &ctx).await;
                }
            }
            changed = leading.changed(), if elections_open => {
                // Without leader election the sender is gone: this replica always leads.
                if changed.is_err() {
                    elections_open = false;
                    continue;
                }
                is_leader = *leading.borrow();
                writer.set_enabled(is_leader);
                if is_leader {
                    for object in objects.values() {
                        reconcile(object, &ctx).await;
                    }
                } else {
                    // A replica that lost the Lease must stop probing and writing at once.
                    engine.scheduler.clear();
                }
            }
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down: stopping runners, flushing status writes, releasing the Lease");
    engine.ready.store(false, Ordering::SeqCst);
    engine.scheduler.shutdown();
    writer.flush(FLUSH_DEADLINE).await;
    let _ = stop_tx.send(true);
    if let Some(elector) = elector {
        let _ = tokio::time::timeout(FLUSH_DEADLINE, elector).await;
    }
    Ok(())
}

/// A client from in-cluster config or KUBECONFIG, naming itself in the API server's audit log.
async fn client() -> Result<Client, ControllerError> {
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

type Events = std::pin::Pin<
    Box<dyn Stream<Item = Result<watcher::Event<HealthCheck>, watcher::Error>> + Send>,
>;

/// One watcher per namespace (or one cluster-wide), each with kube-runtime's default backoff.
fn watch_stream(client: &Client, namespaces: &[String]) -> Events {
    let config = watcher::Config::default();
    if namespaces.is_empty() {
        return Box::pin(
            watcher(Api::<HealthCheck>::all(client.clone()), config).default_backoff(),
        );
    }
    let streams = namespaces.iter().map(|ns| {
        watcher(
            Api::<HealthCheck>::namespaced(client.clone(), ns),
            config.clone(),
        )
        .default_backoff()
        .boxed()
    });
    Box::pin(select_all(streams))
}

async fn handle(
    event: watcher::Event<HealthCheck>,
    objects: &mut HashMap<CheckKey, HealthCheck>,
    initial: &mut Option<BTreeSet<CheckKey>>,
    ctx: &Context,
    is_leader: bool,
    engine: &Engine,
) {
    match event {
        watcher::Event::Init => *initial = Some(BTreeSet::new()),
        watcher::Event::InitApply(object) | watcher::Event::Apply(object) => {
            let key = CheckKey::of(&object);
            if let Some(seen) = initial.as_mut() {
                seen.insert(key.clone());
            }
            if let Some(status) = &object.status {
                ctx.writer.seed(&key, status);
            }
            // Our own status writes come back as watch events: the spec (generation) and uid
            // are unchanged, so there is nothing to rebuild; rotations are caught by resync.
            let unchanged = objects.get(&key).is_some_and(|known| {
                known.metadata.generation == object.metadata.generation
                    && known.metadata.uid == object.metadata.uid
            }) && ctx.scheduler.status(&key).is_some();
            if is_leader && !unchanged {
                reconcile(&object, ctx).await;
            }
            objects.insert(key, object);
        }
        watcher::Event::Delete(object) => {
            let key = CheckKey::of(&object);
            objects.remove(&key);
            ctx.scheduler.remove(&key);
            ctx.writer.forget(&key);
            ctx.metrics
                .operator
                .reconciles
                .with_label_values(&[Reconciled::Deleted.label()])
                .inc();
        }
        watcher::Event::InitDone => {
            // After a relist, objects missed while the watch was down are gone.
            if let Some(seen) = initial.take() {
                objects.retain(|key, _| seen.contains(key));
                for key in ctx.scheduler.keys() {
                    if !seen.contains(&key) {
                        ctx.scheduler.remove(&key);
                        ctx.writer.forget(&key);
                    }
                }
            }
            engine.ready.store(true, Ordering::SeqCst);
        }
    }
}

/// Turns one HealthCheck into a runner: resolve references, build, upsert. Never fails the
/// loop: problems become the check's own status (InvalidSpec, ReferenceNotFound).
async fn reconcile(object: &HealthCheck, ctx: &Context) {
    let key = CheckKey::of(object);
    let valid = validate(&object.spec);
    let references = valid.as_ref().map(|v| v.references()).unwrap_or_default();
    let resolved = match ctx.refs.resolve(&key.namespace, &references).await {
        Ok(resolved) => resolved,
        Err(error) => {
            // The API server did not answer: keep the current runner and retry on the next resync.
            tracing::warn!(check = %key, %error, "cannot read references; keeping the current runner");
            ctx.metrics
                .operator
                .reconciles
                .with_label_values(&[Reconciled::Error.label()])
                .inc();
            return;
        }
    };
    let origin = Origin {
        key,
        uid: object.metadata.uid.clone(),
        generation: object.metadata.generation,
        status: object.status.clone().unwrap_or_default(),
    };
    let runner = RunnerSpec::build(origin, &object.spec, &valid, &resolved, &ctx.probe);
    let result = if ctx.scheduler.upsert(runner) {
        Reconciled::Updated
    } else {
        Reconciled::Unchanged
    };
    ctx.metrics
        .operator
        .reconciles
        .with_label_values(&[result.label()])
        .inc();
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
