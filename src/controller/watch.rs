//! The HealthCheck watch as its own task: kube-runtime's watcher with its default backoff,
//! every event forwarded to the reconcile loop, and its health kept for `/healthz` and
//! `/readyz`: a watch that keeps failing (RBAC removed, CRD deleted, API server gone) for
//! `--watch-stall` fails `/healthz`, instead of leaving the operator blind behind a 200. A
//! quiet watch is healthy: nothing changing is not a failure.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use futures::{Stream, StreamExt, stream::select_all};
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};
use prometheus::IntGauge;
use tokio::{sync::mpsc, time::Instant};

use super::{index::WatchScope, reconcile::WatchEvent};
use crate::{
    api::{HealthCheck, fmt_go},
    lock,
    runner::Vital,
};

type Events = std::pin::Pin<
    Box<
        dyn Stream<
                Item = (
                    WatchScope,
                    Result<watcher::Event<HealthCheck>, watcher::Error>,
                ),
            > + Send,
    >,
>;

/// One watcher per namespace (or one cluster-wide), each with kube-runtime's default backoff,
/// each event tagged with its watch (each watch relists on its own).
fn watch_stream(client: &Client, scopes: &[WatchScope]) -> Events {
    let config = watcher::Config::default();
    let streams = scopes.iter().map(|scope| {
        let api = match scope.namespace_name() {
            Some(namespace) => Api::<HealthCheck>::namespaced(client.clone(), namespace),
            None => Api::<HealthCheck>::all(client.clone()),
        };
        let scope = scope.clone();
        (watcher(api, config.clone()).default_backoff())
            .map(move |event| (scope.clone(), event))
            .boxed()
    });
    Box::pin(select_all(streams))
}

/// Forwards watch events until the reconcile loop goes away; logs and counts every error.
pub async fn run(
    client: Client,
    scopes: Vec<WatchScope>,
    events: mpsc::Sender<WatchEvent>,
    health: std::sync::Arc<WatchHealth>,
) {
    let mut stream = watch_stream(&client, &scopes);
    loop {
        match stream.next().await {
            Some((scope, Ok(event))) => {
                health.succeeded(&scope);
                if events.send((scope, event)).await.is_err() {
                    return;
                }
            }
            Some((scope, Err(error))) => {
                tracing::warn!(watch = %scope, %error, "HealthCheck watch failed; retrying with backoff");
                health.failed(&scope, &error.to_string());
            }
            None => {
                tracing::error!("HealthCheck watch ended; restarting it");
                stream = watch_stream(&client, &scopes);
            }
        }
    }
}

/// Whether the watches work: since when each has been failing, and its last error (one
/// namespace's watch failing is not hidden by another's events).
pub struct WatchHealth {
    stall: Duration,
    state: Mutex<HashMap<WatchScope, WatchState>>,
    /// `canary_watch_failing`.
    failing: IntGauge,
}

struct WatchState {
    failing_since: Instant,
    last_error: String,
}

impl WatchHealth {
    pub fn new(stall: Duration, failing: IntGauge) -> Self {
        Self {
            stall,
            state: Mutex::new(HashMap::new()),
            failing,
        }
    }

    fn succeeded(&self, scope: &WatchScope) {
        let mut state = lock(&self.state);
        state.remove(scope);
        self.failing.set(i64::from(!state.is_empty()));
    }

    fn failed(&self, scope: &WatchScope, error: &str) {
        self.failing.set(1);
        let mut state = lock(&self.state);
        let failing = state.entry(scope.clone()).or_insert_with(|| WatchState {
            failing_since: Instant::now(),
            last_error: String::new(),
        });
        failing.last_error = error.chars().take(300).collect();
    }

    fn stalled(&self, now: Instant) -> Option<String> {
        let state = lock(&self.state);
        let (scope, failing) = (state.iter()).min_by_key(|(_, failing)| failing.failing_since)?;
        let failing_for = now.saturating_duration_since(failing.failing_since);
        (failing_for > self.stall).then(|| {
            format!(
                "the HealthCheck watch of {scope} has failed for {} (--watch-stall {}): {}",
                fmt_go(failing_for),
                fmt_go(self.stall),
                failing.last_error
            )
        })
    }
}

impl Vital for WatchHealth {
    fn problems(&self, now: Instant) -> Vec<String> {
        self.stalled(now).into_iter().collect()
    }

    fn not_ready(&self, now: Instant) -> Option<String> {
        self.stalled(now)
    }
}
