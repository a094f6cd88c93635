//! The heartbeat listener (`--heartbeat-bind-address`): `GET|POST
//! /api/v1/ping/{namespace}/{name}[/start|/fail|/{0-255}]` with `Authorization: Bearer`.
//! Pings are authenticated here and handed to a [`Backend`]: the scheduler's runner in
//! standalone mode, the check's status through the API server in the operator (any replica
//! receives; the owner learns from its watch).
//!
//! No enumeration: an unknown check and a wrong token get the same 401, compared in constant
//! time and answered no sooner than [`UNAUTHORIZED_FLOOR`] after the request arrived. Connections
//! get the admin endpoints' slow-client limits ([`crate::admin::conn`]).

pub mod ping;
pub mod request;

use std::{
    net::SocketAddr,
    num::NonZeroU32,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::future::BoxFuture;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::{
    admin::conn::{Connections, serve_limited},
    api::{CheckKey, PingResult, display_text},
    metrics::Metrics,
    runner::{Scheduler, heartbeat::Ping},
};
use request::{PingRequest, RouteError, bearer, token_matches};

/// Largest body a ping may carry.
pub const MAX_BODY: usize = 10 * 1024;
/// The part of the body (or `msg`) that becomes the ping's message.
pub const MAX_MESSAGE: usize = 1024;
/// A 401 is never answered sooner than this after the request arrived, so a check that exists
/// (its token read) and one that does not look alike.
pub const UNAUTHORIZED_FLOOR: Duration = Duration::from_millis(100);
/// Pings per check: a sustained rate of one a second, bursts of five.
pub const RATE_PER_SECOND: u32 = 1;
pub const BURST: u32 = 5;
/// Rate-limit keys kept before the idle ones are dropped.
const RETAIN_ABOVE: usize = 4096;

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Why a ping could not be recorded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RecordError {
    /// The API server did not answer (503, so `curl --retry` retries).
    #[error("the API server cannot be reached: {0}")]
    Unavailable(String),
    /// This replica's budget of ping writes is spent (429).
    #[error("the ping write budget is spent")]
    Busy,
}

/// Where authenticated pings go.
pub trait Backend: Send + Sync + 'static {
    /// The token of the heartbeat check `key`; `None` when `key` is not one.
    fn token<'a>(
        &'a self,
        key: &'a CheckKey,
    ) -> BoxFuture<'a, Result<Option<Arc<[u8]>>, RecordError>>;
    /// Records an authenticated ping.
    fn record<'a>(
        &'a self,
        key: &'a CheckKey,
        ping: Ping,
        run_id: Option<String>,
    ) -> BoxFuture<'a, Result<(), RecordError>>;
}

/// Standalone mode: pings go straight to the runners, the state stays in memory.
pub struct SchedulerBackend(pub Scheduler);

impl Backend for SchedulerBackend {
    fn token<'a>(
        &'a self,
        key: &'a CheckKey,
    ) -> BoxFuture<'a, Result<Option<Arc<[u8]>>, RecordError>> {
        Box::pin(std::future::ready(Ok(self.0.heartbeat_token(key))))
    }

    fn record<'a>(
        &'a self,
        key: &'a CheckKey,
        ping: Ping,
        run_id: Option<String>,
    ) -> BoxFuture<'a, Result<(), RecordError>> {
        // The check may have gone since its token was read: the ping is simply dropped.
        self.0.ping(key, ping, run_id);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// What every request shares.
struct Shared {
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    limiter: DefaultKeyedRateLimiter<CheckKey>,
    redact: bool,
}

/// A bound listener, not serving yet.
pub struct Bound {
    pub addr: SocketAddr,
    listener: TcpListener,
}

/// Binds `addr` (so a bad address fails at start-up); call inside the runtime that serves.
pub fn bind(addr: SocketAddr) -> Result<Bound, HeartbeatError> {
    let bind_error = |source| HeartbeatError::Bind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let listener = TcpListener::from_std(listener).map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    Ok(Bound { addr, listener })
}

impl Bound {
    /// Serves pings until the returned future is dropped.
    pub async fn serve(self, backend: Arc<dyn Backend>, metrics: Arc<Metrics>, redact: bool) {
        let quota = Quota::per_second(NonZeroU32::new(RATE_PER_SECOND).unwrap_or(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(BURST).unwrap_or(NonZeroU32::MIN));
        let shared = Arc::new(Shared {
            backend,
            metrics,
            limiter: RateLimiter::keyed(quota),
            redact,
        });
        let connections = Arc::new(Connections::default());
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "heartbeat listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (shared, connections) = (shared.clone(), connections.clone());
            tokio::spawn(async move {
                serve_limited(stream, &connections, "heartbeat", move |request| {
                    handle(shared.clone(), request)
                })
                .await;
            });
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rejection {
    NotFound,
    BadRequest(&'static str),
    Method,
    Unauthorized,
    RateLimited,
    TooLarge,
    Busy,
    Unavailable,
}

impl Rejection {
    /// The `reason` label of `canary_heartbeat_rejected_total`.
    fn label(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::BadRequest(_) | Self::Method => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::RateLimited => "rate_limited",
            Self::TooLarge => "too_large",
            Self::Busy => "busy",
            Self::Unavailable => "unavailable",
        }
    }

    fn response(&self) -> Response<Bytes> {
        let (status, body) = match self {
            Self::NotFound => (StatusCode::NOT_FOUND, "not found"),
            Self::BadRequest(why) => (StatusCode::BAD_REQUEST, *why),
            Self::Method => (StatusCode::METHOD_NOT_ALLOWED, "use GET or POST"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many pings for this check",
            ),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "the body is over 10 KiB"),
            Self::Busy => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many pings; retry shortly",
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot record the ping now; retry",
            ),
        };
        let mut response = reply(status, body);
        if matches!(self, Self::RateLimited | Self::Busy | Self::Unavailable) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
        }
        if matches!(self, Self::Unauthorized) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

fn reply(status: StatusCode, body: &str) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(format!("{body}\n")));
    *response.status_mut() = status;
    let plain = http::HeaderValue::from_static("text/plain; charset=utf-8");
    response.headers_mut().insert(header::CONTENT_TYPE, plain);
    response
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Bytes> {
    let arrived = Instant::now();
    match answer(&shared, request).await {
        Ok(result) => {
            shared.metrics.count_heartbeat(Some(result.as_str()), None);
            reply(StatusCode::OK, "OK")
        }
        Err(rejection) => {
            shared
                .metrics
                .count_heartbeat(None, Some(rejection.label()));
            if rejection == Rejection::Unauthorized {
                tokio::time::sleep_until((arrived + UNAUTHORIZED_FLOOR).into()).await;
            }
            rejection.response()
        }
    }
}

async fn answer(shared: &Shared, request: Request<Incoming>) -> Result<PingResult, Rejection> {
    if !matches!(*request.method(), Method::GET | Method::POST) {
        return Err(Rejection::Method);
    }
    let uri = request.uri();
    let ping = request::parse(uri.path(), uri.query()).map_err(|error| match error {
        RouteError::NotFound => Rejection::NotFound,
        RouteError::RunIdTooLong => Rejection::BadRequest("rid must be at most 64 characters"),
    })?;
    let expected = (shared.backend.token(&ping.key).await).map_err(|_| Rejection::Unavailable)?;
    let given = bearer(request.headers().get(header::AUTHORIZATION));
    if !token_matches(given, expected.as_deref()) {
        return Err(Rejection::Unauthorized);
    }
    if shared.limiter.check_key(&ping.key).is_err() {
        return Err(Rejection::RateLimited);
    }
    // Keys are authenticated checks only; those of deleted checks go once they are full again.
    if shared.limiter.len() > RETAIN_ABOVE {
        shared.limiter.retain_recent();
    }
    let body = read_body(request).await?;
    let result = ping.result;
    let (key, run_id) = (ping.key.clone(), ping.run_id.clone());
    let received = received(ping, &body, shared.redact);
    (shared.backend.record(&key, received, run_id).await).map_err(|error| match error {
        RecordError::Busy => Rejection::Busy,
        RecordError::Unavailable(_) => Rejection::Unavailable,
    })?;
    Ok(result)
}

/// The body, refused over [`MAX_BODY`] (by its Content-Length, else while reading).
async fn read_body(request: Request<Incoming>) -> Result<Bytes, Rejection> {
    let declared = (request.headers().get(header::CONTENT_LENGTH))
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(Rejection::TooLarge);
    }
    let limited = Limited::new(request.into_body(), MAX_BODY);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(Rejection::TooLarge),
        Err(_) => Err(Rejection::BadRequest("the body could not be read")),
    }
}

/// The ping as recorded: `msg`, else the body's first KiB, shown safely (or redacted).
fn received(ping: PingRequest, body: &[u8], redact: bool) -> Ping {
    let raw = match ping.message {
        Some(message) => message,
        None => String::from_utf8_lossy(&body[..body.len().min(MAX_MESSAGE)]).into_owned(),
    };
    let message = match (redact, raw.is_empty()) {
        (_, true) => String::new(),
        (true, false) => "(redacted)".to_string(),
        (false, false) => display_text(raw.trim(), MAX_MESSAGE).into_owned(),
    };
    Ping {
        result: ping.result,
        exit_code: ping.exit_code,
        at: jiff::Timestamp::now(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(message: Option<&str>) -> PingRequest {
        request::parse("/api/v1/ping/a/b/fail", None)
            .map(|r| PingRequest {
                message: message.map(str::to_string),
                ..r
            })
            .unwrap()
    }

    #[test]
    fn the_message_is_msg_else_the_first_kib_of_the_body_shown_safely_or_redacted() {
        let body = [b"line\x1b[31m".as_slice(), &[b'x'; 2000]].concat();
        let ping = received(request(None), &body, false);
        assert_eq!(ping.result, PingResult::Fail);
        assert!(
            ping.message.starts_with("line\\u{1b}[31m"),
            "{}",
            ping.message
        );
        assert!(ping.message.chars().count() <= MAX_MESSAGE);
        assert_eq!(
            received(request(Some("from msg")), &body, false).message,
            "from msg"
        );
        assert_eq!(received(request(None), &body, true).message, "(redacted)");
        assert_eq!(received(request(None), b"", true).message, "");
    }
}
