//! The HealthCheck watch as its own task: kube-runtime's watcher with its default backoff,
//! every event forwarded to the reconcile loop, and its health kept for `/healthz` and
//! `/readyz`: a watch that keeps failing (RBAC removed, CRD deleted, API server gone) for
//! `--watch-stall` fails `/healthz`, instead of leaving the operator blind behind a 200. A
//! quiet watch is healthy: nothing changing is not a failure.

use std::{sync::Mutex, time::Duration};

use futures::{Stream, StreamExt, stream::select_all};
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};
use prometheus::IntGauge;
use tokio::{sync::mpsc, time::Instant};

use crate::{
    api::{HealthCheck, fmt_go},
    lock,
    runner::Vital,
};

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

/// Forwards watch events until the reconcile loop goes away; logs and counts every error.
pub async fn run(
    client: Client,
    namespaces: Vec<String>,
    events: mpsc::Sender<watcher::Event<HealthCheck>>,
    health: std::sync::Arc<WatchHealth>,
) {
    let mut stream = watch_stream(&client, &namespaces);
    loop {
        match stream.next().await {
            Some(Ok(event)) => {
                health.succeeded();
                if events.send(event).await.is_err() {
                    return;
                }
            }
            Some(Err(error)) => {
                tracing::warn!(%error, "HealthCheck watch failed; retrying with backoff");
                health.failed(&error.to_string());
            }
            None => {
                tracing::error!("HealthCheck watch ended; restarting it");
                stream = watch_stream(&client, &namespaces);
            }
        }
    }
}

/// Whether the watch works: since when it has been failing, and its last error.
pub struct WatchHealth {
    stall: Duration,
    state: Mutex<WatchState>,
    /// `canary_watch_failing`.
    failing: IntGauge,
}

#[derive(Default)]
struct WatchState {
    failing_since: Option<Instant>,
    last_error: String,
}

impl WatchHealth {
    pub fn new(stall: Duration, failing: IntGauge) -> Self {
        Self {
            stall,
            state: Mutex::new(WatchState::default()),
            failing,
        }
    }

    fn succeeded(&self) {
        lock(&self.state).failing_since = None;
        self.failing.set(0);
    }

    fn failed(&self, error: &str) {
        self.failing.set(1);
        let mut state = lock(&self.state);
        state.failing_since.get_or_insert_with(Instant::now);
        state.last_error = error.chars().take(300).collect();
    }

    fn stalled(&self, now: Instant) -> Option<String> {
        let state = lock(&self.state);
        let failing = now.saturating_duration_since(state.failing_since?);
        (failing > self.stall).then(|| {
            format!(
                "the HealthCheck watch has failed for {} (--watch-stall {}): {}",
                fmt_go(failing),
                fmt_go(self.stall),
                state.last_error
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
