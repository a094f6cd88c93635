//! `/metrics`, `/healthz` (the watchdog) and `/readyz`, served from a thread with its own
//! runtime so they still answer, with 503, when the main runtime is wedged. A reserved
//! descriptor lets `/healthz` answer even when the process has run out of descriptors.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::{
    metrics::Metrics,
    runner::{Scheduler, WatchdogConfig},
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
}

/// The running endpoints.
pub struct Admin {
    pub metrics_addr: SocketAddr,
    pub health_addr: SocketAddr,
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
    std::thread::Builder::new()
        .name("canary-admin".into())
        .spawn(move || serve_all(listeners, state))
        .map_err(AdminError::Thread)?;
    Ok(Admin {
        metrics_addr,
        health_addr,
    })
}

fn serve_all(listeners: Vec<(std::net::TcpListener, Role)>, state: AdminState) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the admin runtime; /healthz and /metrics are down");
            return;
        }
    };
    runtime.block_on(async move {
        let mut tasks = Vec::new();
        for (listener, role) in listeners {
            match TcpListener::from_std(listener) {
                Ok(listener) => {
                    tasks.push(tokio::spawn(accept_loop(listener, role, state.clone())))
                }
                Err(error) => tracing::error!(%error, "cannot serve an admin listener"),
            }
        }
        for task in tasks {
            let _ = task.await;
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

async fn accept_loop(listener: TcpListener, role: Role, state: AdminState) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve(stream, role, state.clone()));
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
                        serve(stream, role, state.clone()).await;
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

async fn serve(stream: tokio::net::TcpStream, role: Role, state: AdminState) {
    let service = service_fn(move |request| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(route(&request, role, &state)) }
    });
    if let Err(error) = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%error, "admin connection ended with an error");
    }
}

fn route(request: &Request<Incoming>, role: Role, state: &AdminState) -> Response<Full<Bytes>> {
    let metrics = matches!(role, Role::Metrics | Role::Both);
    let health = matches!(role, Role::Health | Role::Both);
    match request.uri().path() {
        "/metrics" if metrics => match state.metrics.render() {
            Ok(text) => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            ),
            Err(error) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                error.to_string(),
            ),
        },
        "/healthz" | "/livez" if health => {
            let verdict = state
                .scheduler
                .health(tokio::time::Instant::now(), &state.watchdog);
            let code = if verdict.healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let body = serde_json::json!({
                "status": if verdict.healthy { "ok" } else { "unhealthy" },
                "checks": verdict.checks,
                "active": verdict.active,
                "problems": verdict.problems,
            });
            reply(code, "application/json", body.to_string())
        }
        "/readyz" if health => {
            if state.ready.load(Ordering::SeqCst) {
                reply(StatusCode::OK, "text/plain", "ok".into())
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "not ready: checks not loaded yet".into(),
                )
            }
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found".into()),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
