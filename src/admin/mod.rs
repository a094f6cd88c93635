//! `/metrics`, `/healthz` (the watchdog) and `/readyz`, served from a thread with its own
//! runtime so they still answer, with 503, when the main runtime is wedged. A reserved
//! descriptor lets `/healthz` answer even when the process has run out of descriptors, and
//! connection limits ([`conn`]) and an off-path, shared `/metrics` render ([`render`]) keep
//! any client from starving the endpoints the kubelet relies on. Rendering is paced ([`pace`])
//! to a quarter of one core, so a scrape flood cannot take CPU from the probes.

pub(crate) mod client;
pub(crate) mod conn;
pub(crate) mod pace;
mod render;

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use conn::Connections;
use render::MetricsCache;

use crate::{
    metrics::Metrics,
    runner::{Scheduler, Vital, WatchdogConfig},
};

/// Why the endpoints could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the admin thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Descriptors the admin endpoints keep in reserve.
pub const RESERVED: usize = 2;
/// How long a released reserve descriptor waits for the pending connection.
const RESERVE_WINDOW: std::time::Duration = std::time::Duration::from_millis(10);

/// What the endpoints report on.
#[derive(Clone)]
pub struct AdminState {
    pub scheduler: Scheduler,
    pub metrics: Arc<Metrics>,
    /// Set once the spec source has synced; cleared on shutdown.
    pub ready: Arc<AtomicBool>,
    pub watchdog: WatchdogConfig,
    /// Parts beyond the scheduler that `/healthz` and `/readyz` judge.
    pub vitals: Vec<Arc<dyn Vital>>,
}

/// The running endpoints; they stop serving when this is dropped (the thread ends, so an
/// operator run in-process leaves nothing behind).
pub struct Admin {
    pub metrics_addr: SocketAddr,
    pub health_addr: SocketAddr,
    /// The serving thread, until a supervisor takes it.
    pub thread: Option<std::thread::JoinHandle<()>>,
    /// Dropped with the handle: the serving thread's signal to stop.
    _serving: tokio::sync::watch::Sender<()>,
}

#[derive(Clone, Copy)]
enum Role {
    Metrics,
    Health,
    Both,
}

/// Binds both addresses now (so errors surface at start-up) and serves them from a new thread.
pub fn start(
    metrics_bind: SocketAddr,
    health_bind: SocketAddr,
    state: AdminState,
) -> Result<Admin, AdminError> {
    reserve_descriptors(RESERVED);
    let bind = |addr: SocketAddr| {
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| AdminError::Bind { addr, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| AdminError::Bind { addr, source })?;
        Ok::<_, AdminError>(listener)
    };
    let mut listeners = Vec::new();
    if metrics_bind == health_bind {
        listeners.push((bind(metrics_bind)?, Role::Both));
    } else {
        listeners.push((bind(metrics_bind)?, Role::Metrics));
        listeners.push((bind(health_bind)?, Role::Health));
    }
    let addr = |i: usize| listeners[i].0.local_addr().map_err(AdminError::Thread);
    let metrics_addr = addr(0)?;
    let health_addr = addr(listeners.len() - 1)?;
    let (serving, stop) = tokio::sync::watch::channel(());
    let thread = std::thread::Builder::new()
        .name("canary-admin".into())
        .spawn(move || serve_all(listeners, state, stop))
        .map_err(AdminError::Thread)?;
    Ok(Admin {
        metrics_addr,
        health_addr,
        thread: Some(thread),
        _serving: serving,
    })
}

/// What every connection handler shares.
struct Served {
    state: AdminState,
    cache: MetricsCache,
    connections: Arc<Connections>,
}

fn serve_all(
    listeners: Vec<(std::net::TcpListener, Role)>,
    state: AdminState,
    mut stop: tokio::sync::watch::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("canary-metrics")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the admin runtime; /healthz and /metrics are down");
            return;
        }
    };
    let served = Arc::new(Served {
        cache: MetricsCache::new(state.metrics.clone()),
        state,
        connections: Arc::new(Connections::default()),
    });
    runtime.block_on(async move {
        let mut tasks = Vec::new();
        for (listener, role) in listeners {
            match TcpListener::from_std(listener) {
                Ok(listener) => {
                    tasks.push(tokio::spawn(accept_loop(listener, role, served.clone())))
                }
                Err(error) => tracing::error!(%error, "cannot serve an admin listener"),
            }
        }
        let serving = futures::future::join_all(tasks);
        tokio::select! {
            _ = serving => {}
            // The handle was dropped: the process (or the test) is done with the endpoints.
            _ = stop.changed() => {}
        }
    });
}

/// Descriptors held in reserve: one is released to accept a connection when the process is
/// out of descriptors, so the watchdog can still say so.
static RESERVE: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());

/// Opens `count` reserve descriptors. Call it first thing, so they get the lowest numbers:
/// the kernel refuses descriptor numbers at or above the limit, so a reserve opened late could
/// sit above a lowered limit and be of no use.
pub fn reserve_descriptors(count: usize) {
    let mut reserve = crate::lock(&RESERVE);
    while reserve.len() < count {
        match std::fs::File::open("/dev/null") {
            Ok(file) => reserve.push(file),
            Err(error) => {
                tracing::debug!(%error, held = reserve.len(), "cannot refill the descriptor reserve");
                break;
            }
        }
    }
}

fn release_one() -> bool {
    crate::lock(&RESERVE).pop().is_some()
}

async fn accept_loop(listener: TcpListener, role: Role, served: Arc<Served>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, role, served.clone()));
            }
            Err(error) if crate::probe::prober_fault(&error).is_some() => {
                // accept4 fails with EMFILE whether or not a connection waits. Release one
                // reserved descriptor and take what is pending, if anything, right away; an
                // accept that has to wait clears the listener's readiness, so this never spins.
                let pending = if release_one() {
                    tokio::time::timeout(RESERVE_WINDOW, listener.accept())
                        .await
                        .ok()
                } else {
                    tokio::time::sleep(RESERVE_WINDOW).await;
                    None
                };
                match pending {
                    Some(Ok((stream, _))) => {
                        tracing::debug!("serving from the descriptor reserve");
                        serve(stream, role, served.clone()).await;
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "out of descriptors; an admin request went unanswered")
                    }
                    None => {}
                }
                reserve_descriptors(RESERVED);
            }
            Err(error) => tracing::warn!(%error, "admin accept failed"),
        }
    }
}

/// Serves one connection within the limits of [`conn`].
async fn serve(stream: tokio::net::TcpStream, role: Role, served: Arc<Served>) {
    let connections = served.connections.clone();
    conn::serve_limited(stream, &connections, "admin", move |request| {
        let served = served.clone();
        async move { route(&request, role, &served).await }
    })
    .await;
}

async fn route(request: &Request<Incoming>, role: Role, served: &Served) -> Response<Bytes> {
    let metrics = matches!(role, Role::Metrics | Role::Both);
    let health = matches!(role, Role::Health | Role::Both);
    let state = &served.state;
    match request.uri().path() {
        "/metrics" if metrics => match served.cache.render().await {
            Ok(text) => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            ),
            Err(error) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                error.into(),
            ),
        },
        "/healthz" | "/livez" if health => healthz(state),
        "/readyz" if health => readyz(state),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found"),
        ),
    }
}

/// The watchdog's verdict plus every vital's problems: 200 when none, else 503 naming them.
fn healthz(state: &AdminState) -> Response<Bytes> {
    let now = tokio::time::Instant::now();
    let mut verdict = state.scheduler.health(now, &state.watchdog);
    for vital in &state.vitals {
        verdict.problems.extend(vital.problems(now));
    }
    verdict.healthy = verdict.problems.is_empty();
    let code = if verdict.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if verdict.healthy { "ok" } else { "unhealthy" },
        "checks": verdict.checks,
        "active": verdict.active,
        "states": verdict.states,
        "problems": verdict.problems,
    });
    reply(code, "application/json", body.to_string().into())
}

/// 200 once the spec source synced and no vital says otherwise.
fn readyz(state: &AdminState) -> Response<Bytes> {
    let now = tokio::time::Instant::now();
    let not_ready = if state.ready.load(Ordering::SeqCst) {
        state.vitals.iter().find_map(|v| v.not_ready(now))
    } else {
        let why = state.vitals.iter().find_map(|v| v.not_synced());
        Some(why.map_or_else(
            || "checks not loaded yet".to_string(),
            |why| format!("checks not loaded yet: {why}"),
        ))
    };
    match not_ready {
        None => reply(StatusCode::OK, "text/plain", Bytes::from_static(b"ok")),
        Some(why) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("not ready: {why}").into(),
        ),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
