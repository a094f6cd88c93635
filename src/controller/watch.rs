//! The HealthCheck watch as its own task: kube-runtime's watcher with an exponential backoff,
//! every event forwarded to the reconcile loop, and its health kept for `/healthz` and
//! `/readyz`: a watch that keeps failing (RBAC removed, CRD deleted, API server gone) for
//! `--watch-stall` fails `/healthz`, instead of leaving the operator blind behind a 200, and until
//! the first list `/readyz` says why it is not ready (the CRD not installed, say). A quiet watch
//! is healthy: nothing changing is not a failure.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use futures::{Stream, StreamExt, stream::select_all};
use kube::{
    Api, Client,
    runtime::{
        utils::Backoff,
        watcher::{self, DefaultBackoff},
    },
};
use prometheus::IntGauge;
use tokio::{sync::mpsc, time::Instant};

use super::{
    api_error::describe_watch,
    index::{WatchScope, slim},
    reconcile::WatchEvent,
};
use crate::{
    api::{HealthCheck, fmt_go},
    lock,
    runner::Vital,
};

type Item<K = HealthCheck> = Result<watcher::Event<K>, watcher::Error>;
type Events = std::pin::Pin<Box<dyn Stream<Item = (WatchScope, Item)> + Send>>;

/// The longest pause between two attempts (kube-runtime's default policy: 0.8 s doubled, with
/// jitter, up to this).
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One watcher per namespace (or one cluster-wide), each with its own backoff, each event tagged
/// with its watch (each watch relists on its own).
fn watch_stream(client: &Client, scopes: &[WatchScope]) -> Events {
    let config = watcher::Config::default();
    let streams = scopes.iter().map(|scope| {
        let api = match scope.namespace_name() {
            Some(namespace) => Api::<HealthCheck>::namespaced(client.clone(), namespace),
            None => Api::<HealthCheck>::all(client.clone()),
        };
        let scope = scope.clone();
        with_backoff(watcher::watcher(api, config.clone()))
            .map(move |item| (scope.clone(), item.map(|event| event.modify(slim))))
            .boxed()
    });
    Box::pin(select_all(streams))
}

/// Pauses after every error, exponentially longer while errors continue (kube-runtime's default
/// policy), and starts again from the shortest pause after an event that carries data. kube-runtime's `default_backoff`
/// resets on every `Ok`, and the watcher yields `Ok(Init)` before each list attempt, so a list
/// that always fails (no CRD) was retried about every second forever.
pub(super) fn with_backoff<K: Send + 'static>(
    stream: impl Stream<Item = Item<K>> + Send + 'static,
) -> impl Stream<Item = Item<K>> + Send {
    let backoff = DefaultBackoff::default();
    let state = (Box::pin(stream), backoff, None::<Duration>);
    futures::stream::unfold(state, |(mut stream, mut backoff, pause)| async move {
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        let item = stream.next().await?;
        let pause = match &item {
            Err(_) => Some(backoff.next().unwrap_or(MAX_BACKOFF)),
            Ok(watcher::Event::Init) => None,
            Ok(_) => {
                backoff.reset();
                None
            }
        };
        Some((item, (stream, backoff, pause)))
    })
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
                // `Init` comes before every list attempt, failing or not: only an answer counts.
                let answered = !matches!(event, watcher::Event::Init);
                if answered && health.succeeded(&scope) {
                    tracing::info!(watch = %scope, "HealthCheck watch recovered");
                }
                if events.send((scope, event)).await.is_err() {
                    return;
                }
            }
            Some((scope, Err(error))) => {
                let error = describe_watch(&error);
                // One line per cause: a watch retried for hours with the same error says so once
                // (`/readyz`, `/healthz` and canary_watch_failing keep saying it).
                if health.failed(&scope, &error) {
                    tracing::error!(watch = %scope, %error, "HealthCheck watch failed; retrying with exponential backoff");
                } else {
                    tracing::debug!(watch = %scope, %error, "HealthCheck watch failed again");
                }
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

    /// Records a working watch; true when it was failing.
    fn succeeded(&self, scope: &WatchScope) -> bool {
        let mut state = lock(&self.state);
        let was_failing = state.remove(scope).is_some();
        self.failing.set(i64::from(!state.is_empty()));
        was_failing
    }

    /// Records a failure; true when it is news (the first, or another error than the last).
    fn failed(&self, scope: &WatchScope, error: &str) -> bool {
        self.failing.set(1);
        let mut state = lock(&self.state);
        let failing = state.entry(scope.clone()).or_insert_with(|| WatchState {
            failing_since: Instant::now(),
            last_error: String::new(),
        });
        let error: String = error.chars().take(400).collect();
        let news = failing.last_error != error;
        failing.last_error = error;
        news
    }

    /// The failing watch's last error, however recent (why the checks are not loaded yet).
    fn failing(&self) -> Option<String> {
        let state = lock(&self.state);
        let (scope, failing) = (state.iter()).min_by_key(|(_, failing)| failing.failing_since)?;
        Some(format!(
            "the HealthCheck watch of {scope} fails: {}",
            failing.last_error
        ))
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

    fn not_synced(&self) -> Option<String> {
        self.failing()
    }
}
