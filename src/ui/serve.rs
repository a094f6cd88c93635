//! The status page's own thread and runtime: connections are served and pages rendered there,
//! never on the runtime whose threads time the probes. Renders (and gzip) run one at a time on
//! one blocking thread paced to [`RENDER_SHARE`] of one core ([`Pace`]); the overview and the
//! list are cached for a second, so a crowd reading the same page costs one render and one
//! copy; and every rendered body counts against one [`Budget`] until its last copy is sent or
//! dropped (a render that does not fit is answered 503 with `Retry-After`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use tokio::{net::TcpListener, sync::oneshot};

use super::{
    Bound, Route, Ui, UiError,
    budget::{BUDGET_BYTES, Budget},
    reply::{Reply, accepts_gzip, secure},
    route,
};
use crate::{
    admin::{
        conn::{Connections, serve_limited},
        pace::Pace,
    },
    lock,
};

/// Share of one core that rendering pages may take, whatever the request rate.
pub const RENDER_SHARE: f64 = 0.25;
/// How long a request waits for its turn to render before it is answered 503.
const RENDER_WAIT: Duration = Duration::from_secs(5);
/// A cached overview or list page is served for this long.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// Cached pages at most (each also counts against the budget).
const CACHED: usize = 32;

/// The serving page: its thread, which stops when this is dropped.
pub struct Serving {
    thread: std::thread::JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl Serving {
    /// Resolves when the page's thread ends (re-raising its panic); dropping this future
    /// stops the page.
    pub async fn watch(self) {
        let _stop = self.stop;
        crate::supervisor::watch_thread(self.thread).await;
    }
}

impl Bound {
    /// Serves from a new thread with its own runtime until the returned handle is dropped.
    pub fn start(self, ui: Ui) -> Result<Serving, UiError> {
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("canary-ui".into())
            .spawn(move || run(self.listener, ui, stopped))
            .map_err(UiError::Thread)?;
        Ok(Serving { thread, stop })
    }
}

fn run(listener: std::net::TcpListener, ui: Ui, stopped: oneshot::Receiver<()>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .thread_name("canary-render")
        .build();
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the status page's runtime");
            return;
        }
    };
    let shared = Arc::new(Shared {
        ui,
        pace: Pace::new(RENDER_SHARE),
        budget: Budget::new(BUDGET_BYTES),
        cache: Cache::default(),
    });
    runtime.block_on(async move {
        tokio::select! {
            () = accept_loop(listener, shared) => {}
            _ = stopped => {}
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
}

async fn accept_loop(listener: std::net::TcpListener, shared: Arc<Shared>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "cannot serve the status page");
            return;
        }
    };
    let connections = Arc::new(Connections::default());
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let (shared, connections) = (shared.clone(), connections.clone());
                tokio::spawn(async move {
                    serve_limited(stream, &connections, "ui", move |request| {
                        shared.clone().respond(request)
                    })
                    .await;
                });
            }
            Err(error) => {
                tracing::warn!(%error, "status page accept failed");
                // Out of descriptors: let probes have them for a moment.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What every request of the page shares.
struct Shared {
    ui: Ui,
    pace: Arc<Pace>,
    budget: Budget,
    cache: Cache,
}

impl Shared {
    async fn respond<B>(self: Arc<Self>, request: Request<B>) -> Response<Bytes> {
        let gzip = accepts_gzip(&request);
        let reply = self.reply(&request, gzip).await;
        self.ui.sealed(&request, self.ui.signed(secure(reply)))
    }

    async fn reply<B>(self: &Arc<Self>, request: &Request<B>, gzip: bool) -> Reply {
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            let message = "the status page is read-only";
            return Reply::error(StatusCode::METHOD_NOT_ALLOWED, message);
        }
        let path = request.uri().path().to_string();
        let route = route(&path);
        if let Route::Asset(content_type, body) = route {
            return Reply::new(StatusCode::OK, content_type, body).compressed(gzip);
        }
        let query: Vec<(String, String)> = (request.uri().query())
            .map(|q| form_urlencoded(q.as_bytes()))
            .unwrap_or_default();
        if let Some(reply) = self.ui.elsewhere(request, &query).await {
            return self
                .paced(move |shared| shared.hold(reply.compressed(gzip)))
                .await;
        }
        let cached = matches!(route, Route::Overview | Route::List);
        let key = (request.uri().path_and_query())
            .filter(|_| cached)
            .map(|target| format!("{}{target}", u8::from(gzip)));
        if let Some(hit) = key.as_ref().and_then(|key| self.cache.get(key)) {
            return hit;
        }
        let Some(query) = self.prefetch(path.clone(), query).await else {
            return busy();
        };
        self.paced(move |shared| shared.render(&path, &query, key, gzip))
            .await
    }

    /// With `--prometheus-url`, asks Prometheus about the checks the page shows (found in a
    /// paced turn of their own), so the render finds the answers; waiting on Prometheus takes
    /// no render turn.
    async fn prefetch(
        self: &Arc<Self>,
        path: String,
        query: Vec<(String, String)>,
    ) -> Option<Vec<(String, String)>> {
        let Some(prometheus) = self.ui.prometheus.clone() else {
            return Some(query);
        };
        let shared = self.clone();
        let job = move || {
            let keys = shared.ui.shown(&path, &query, super::now());
            (keys, query)
        };
        match self.pace.run(RENDER_WAIT, job).await {
            Ok(((keys, chart), query)) => {
                prometheus.prefetch(&keys, chart).await;
                Some(query)
            }
            // No turn: the render's would not come either.
            Err(_) => None,
        }
    }

    /// `job` in its turn on the render thread; 503 when the turn does not come in time.
    async fn paced(self: &Arc<Self>, job: impl FnOnce(&Shared) -> Reply + Send + 'static) -> Reply {
        let shared = self.clone();
        match self.pace.run(RENDER_WAIT, move || job(&shared)).await {
            Ok(reply) => reply,
            Err(error) => {
                tracing::debug!(%error, "status page request not rendered");
                busy()
            }
        }
    }

    /// Renders (unless a request just before did, for a cached page), gzips and holds.
    fn render(
        &self,
        path: &str,
        query: &[(String, String)],
        key: Option<String>,
        gzip: bool,
    ) -> Reply {
        if let Some(hit) = key.as_ref().and_then(|key| self.cache.get(key)) {
            return hit;
        }
        let reply = self.ui.answer(path, query, super::now()).compressed(gzip);
        let reply = self.hold(reply);
        if let Some(key) = key.filter(|_| reply.status != StatusCode::SERVICE_UNAVAILABLE) {
            self.cache.put(key, reply.clone());
        }
        reply
    }

    /// `reply` with its body counted against the budget; 503 when it does not fit even after
    /// the cache let go of its pages.
    fn hold(&self, mut reply: Reply) -> Reply {
        self.cache.purge_stale();
        let held = (self.budget.hold(reply.body.clone())).or_else(|| {
            self.cache.clear();
            self.budget.hold(reply.body.clone())
        });
        match held {
            Some(body) => {
                reply.body = body;
                reply
            }
            None => {
                tracing::debug!(
                    size = reply.body.len(),
                    held = self.budget.held(),
                    "status page budget spent"
                );
                busy()
            }
        }
    }
}

fn busy() -> Reply {
    Reply::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the status page is busy; retry in a second",
    )
}

fn form_urlencoded(query: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query).into_owned().collect()
}

/// Rendered overview and list pages by gzip flag and request target, for [`FRESH_FOR`].
#[derive(Default)]
struct Cache {
    pages: Mutex<HashMap<String, (Instant, Reply)>>,
}

impl Cache {
    fn get(&self, key: &str) -> Option<Reply> {
        let pages = lock(&self.pages);
        let (at, reply) = pages.get(key)?;
        (at.elapsed() < FRESH_FOR).then(|| reply.clone())
    }

    fn put(&self, key: String, reply: Reply) {
        let mut pages = lock(&self.pages);
        pages.retain(|_, (at, _)| at.elapsed() < FRESH_FOR);
        if pages.len() >= CACHED {
            let oldest = (pages.iter()).min_by_key(|(_, (at, _))| *at);
            if let Some(oldest) = oldest.map(|(key, _)| key.clone()) {
                pages.remove(&oldest);
            }
        }
        pages.insert(key, (Instant::now(), reply));
    }

    fn purge_stale(&self) {
        lock(&self.pages).retain(|_, (at, _)| at.elapsed() < FRESH_FOR);
    }

    fn clear(&self) {
        lock(&self.pages).clear();
    }
}
