//! The status page, served by Canary itself on its own port: an overview, a page per check,
//! a JSON API and README badges, read-only and built from the runners' in-memory history.
//! Served on the main runtime under the admin endpoints' connection limits; every response
//! carries a strict Content-Security-Policy and `Cache-Control: no-cache`.

mod api;
mod assets;
mod badge;
mod chart;
pub mod forward;
pub mod model;
pub mod page;
mod paths;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::{
    admin::conn::{Connections, serve_limited},
    api::CheckKey,
};
pub use api::{ApiError, PageRequest};
pub use forward::{Owner, Owners};
use model::{Source, Span};
pub use page::{BAR_RESULTS, PageContext};

/// No script, style, image or connection from anywhere but this server; no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
                   base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Why the page could not start.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("binding the status page to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// What the page shows and how.
#[derive(Clone)]
pub struct Ui {
    pub source: Source,
    /// Set while this replica is a standby under leader election (it probes nothing).
    pub standby: Arc<AtomicBool>,
    /// The ring, with `--sharding shards`: requests for other replicas' checks are forwarded.
    pub owners: Option<Arc<dyn Owners>>,
}

/// The bound page, before it serves.
pub struct Bound {
    pub addr: SocketAddr,
    listener: std::net::TcpListener,
}

/// Binds `addr` now, so a taken port fails start-up rather than a task later.
pub fn bind(addr: SocketAddr) -> Result<Bound, UiError> {
    let bind = || {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok::<_, std::io::Error>(Bound { addr, listener })
    };
    bind().map_err(|source| UiError::Bind { addr, source })
}

impl Bound {
    /// Serves until aborted; must run on a Tokio runtime.
    pub async fn serve(self, ui: Ui) {
        let listener = match TcpListener::from_std(self.listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "cannot serve the status page");
                return;
            }
        };
        let ui = Arc::new(ui);
        let connections = Arc::new(Connections::default());
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let (ui, connections) = (ui.clone(), connections.clone());
                    tokio::spawn(async move {
                        serve_limited(stream, &connections, "ui", move |request| {
                            let ui = ui.clone();
                            async move {
                                let gzip = accepts_gzip(&request);
                                let reply = ui.respond(&request).await.compressed(gzip);
                                ui.signed(secure(reply))
                            }
                        })
                        .await;
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "status page accept failed");
                    // Out of descriptors: let probes have them for a moment.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// A response before the common headers.
struct Reply {
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
    /// The body depends on `Accept-Encoding`.
    vary: bool,
    /// The body is gzipped.
    gzip: bool,
}

impl Reply {
    fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type,
            body: body.into(),
            vary: false,
            gzip: false,
        }
    }

    fn html(status: StatusCode, markup: maud::Markup) -> Self {
        Self::new(status, "text/html; charset=utf-8", markup.into_string())
    }

    /// The owner's reply to a forwarded request, with one of the page's own content types.
    fn relayed(relayed: forward::Relayed) -> Self {
        let given = relayed.content_type.unwrap_or_default();
        let content_type = match given.split(';').next().unwrap_or_default().trim() {
            "text/html" => "text/html; charset=utf-8",
            "application/json" => "application/json",
            "image/svg+xml" => "image/svg+xml",
            _ => "application/octet-stream",
        };
        Self::new(relayed.status, content_type, relayed.body)
    }

    fn json(status: StatusCode, value: &serde_json::Value) -> Self {
        Self::new(status, "application/json", value.to_string())
    }

    fn error(status: StatusCode, message: impl std::fmt::Display) -> Self {
        Self::json(status, &serde_json::json!({ "error": message.to_string() }))
    }
}

/// Bodies smaller than this go as they are (a packet holds them anyway).
const COMPRESS_ABOVE: usize = 1400;

/// Whether the client takes gzip (`Accept-Encoding: gzip`, not `gzip;q=0`).
fn accepts_gzip(request: &Request<Incoming>) -> bool {
    let accepted = request.headers().get_all(header::ACCEPT_ENCODING);
    accepted
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|value| {
            value.split(',').any(|coding| {
                let mut parts = coding.split(';').map(str::trim);
                parts.next() == Some("gzip") && !parts.any(|p| p.replace(' ', "") == "q=0")
            })
        })
}

impl Reply {
    /// Gzipped when the client takes it and it pays (a 1,000-check overview is megabytes of
    /// repetitive HTML and shrinks about tenfold).
    fn compressed(mut self, accepted: bool) -> Self {
        self.vary = true;
        if !accepted || self.body.len() <= COMPRESS_ABOVE {
            return self;
        }
        if let Some(body) = gzip(&self.body) {
            self.body = body.into();
            self.gzip = true;
        }
        self
    }
}

/// `body` gzipped at the fastest level (the page is rendered per request).
pub fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    encoder.write_all(body).ok()?;
    encoder.finish().ok()
}

fn secure(reply: Reply) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if reply.vary {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if reply.gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// The route of a request path.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Overview,
    Detail(CheckKey),
    List,
    Check(CheckKey),
    Uptime(CheckKey),
    Badge(CheckKey, &'a str),
    Asset(&'static str, &'static str),
    NotFound,
}

impl Route<'_> {
    /// The check a per-check route is about.
    fn check(&self) -> Option<&CheckKey> {
        match self {
            Route::Detail(key) | Route::Check(key) | Route::Uptime(key) | Route::Badge(key, _) => {
                Some(key)
            }
            _ => None,
        }
    }
}

/// Segments are percent-decoded first, so a check whose name needs encoding is found.
fn route(path: &str) -> Route<'_> {
    if let Some((content_type, body)) = assets::lookup(path) {
        return Route::Asset(content_type, body);
    }
    let Some(decoded) = paths::segments(path) else {
        return Route::NotFound;
    };
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let key = |namespace: &str, name: &str| CheckKey {
        namespace: namespace.into(),
        name: name.into(),
    };
    let file = || path.rsplit('/').next().unwrap_or_default();
    match segments.as_slice() {
        [""] => Route::Overview,
        ["checks", ns, name] => Route::Detail(key(ns, name)),
        ["api", "v1", "checks"] => Route::List,
        ["api", "v1", "checks", ns, name] => Route::Check(key(ns, name)),
        ["api", "v1", "checks", ns, name, "uptime"] => Route::Uptime(key(ns, name)),
        ["badges", ns, name, _] => Route::Badge(key(ns, name), file()),
        _ => Route::NotFound,
    }
}

impl Ui {
    async fn respond(&self, request: &Request<Incoming>) -> Reply {
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return Reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "the status page is read-only",
            );
        }
        let query: Vec<(String, String)> = (request.uri().query())
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        if let Some(reply) = self.forwarded(request).await {
            return reply;
        }
        self.answer(request.uri().path(), &query, now())
    }

    /// With shards, names this replica on every reply (see [`forward::IDENTITY`]).
    fn signed(&self, mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
        let identity = self.owners.as_ref().map(|owners| owners.identity());
        if let Some(value) = identity.and_then(|i| HeaderValue::from_str(&i).ok()) {
            response.headers_mut().insert(forward::IDENTITY, value);
        }
        response
    }

    /// The owner's reply for a check another replica probes (sharding), when this one does not
    /// hold it and the request was not forwarded already.
    async fn forwarded(&self, request: &Request<Incoming>) -> Option<Reply> {
        let owners = self.owners.as_ref()?;
        let route = route(request.uri().path());
        let key = route.check()?;
        if request.headers().contains_key(forward::FORWARDED_BY) || self.source.holds(key) {
            return None;
        }
        let owner = owners.elsewhere(key)?;
        let target = (request.uri().path_and_query()).map_or("/", |p| p.as_str());
        match forward::forward(&owner, target, &owners.identity()).await {
            Ok(relayed) => Some(Reply::relayed(relayed)),
            Err(error) => {
                tracing::warn!(%error, check = %key, "forwarding a status page request failed");
                let message =
                    format!("{key} is probed by another replica, which did not answer: {error}");
                Some(match route {
                    Route::Detail(_) => {
                        let ctx = self.context(now());
                        Reply::html(StatusCode::BAD_GATEWAY, page::unavailable(&message, &ctx))
                    }
                    _ => Reply::error(StatusCode::BAD_GATEWAY, message),
                })
            }
        }
    }

    fn context(&self, now: i64) -> PageContext {
        PageContext {
            now,
            standby: self.standby.load(Ordering::Relaxed),
            redacted: self.source.redact,
            peers: (self.owners.as_ref())
                .map(|o| o.peers())
                .unwrap_or_default(),
        }
    }

    /// The reply to a GET of `path` with `query` at `now` (Unix seconds).
    fn answer(&self, path: &str, query: &[(String, String)], now: i64) -> Reply {
        let ctx = self.context(now);
        match route(path) {
            Route::Asset(content_type, body) => Reply::new(StatusCode::OK, content_type, body),
            Route::Overview => {
                let failing_only = query.iter().any(|(k, v)| k == "failing" && v != "0");
                let checks = self.source.checks(now);
                Reply::html(StatusCode::OK, page::overview(&checks, failing_only, &ctx))
            }
            Route::Detail(key) => match self.source.detail(&key, now) {
                Some(detail) => Reply::html(StatusCode::OK, page::detail(&detail, &ctx)),
                None => Reply::html(StatusCode::NOT_FOUND, page::not_found(&ctx)),
            },
            Route::List => match PageRequest::parse(query) {
                Ok(request) => {
                    let checks = self.source.checks(now);
                    Reply::json(StatusCode::OK, &api::list(&checks, &request))
                }
                Err(error) => Reply::error(StatusCode::BAD_REQUEST, error),
            },
            Route::Check(key) => match self.source.detail(&key, now) {
                Some(detail) => Reply::json(StatusCode::OK, &api::detail(&detail)),
                None => not_found(&key),
            },
            Route::Uptime(key) => self.uptime(&key, query, now),
            Route::Badge(key, file) => self.badge(&key, file, now),
            Route::NotFound => Reply::error(StatusCode::NOT_FOUND, "no such page"),
        }
    }

    fn uptime(&self, key: &CheckKey, query: &[(String, String)], now: i64) -> Reply {
        let window = (query.iter().find(|(k, _)| k == "window")).map_or("24h", |(_, v)| v);
        let Some(span) = Span::parse(window) else {
            return Reply::error(StatusCode::BAD_REQUEST, ApiError::Window(window.into()));
        };
        match self.source.check(key, now) {
            Some(check) => Reply::json(StatusCode::OK, &api::uptime(&check, span)),
            None => not_found(key),
        }
    }

    fn badge(&self, key: &CheckKey, file: &str, now: i64) -> Reply {
        let Some(kind) = badge::Kind::parse(file) else {
            return Reply::error(StatusCode::NOT_FOUND, format!("no badge named {file:?}"));
        };
        match self.source.check(key, now) {
            Some(check) => Reply::new(StatusCode::OK, "image/svg+xml", badge::render(kind, &check)),
            None => not_found(key),
        }
    }
}

fn not_found(key: &CheckKey) -> Reply {
    Reply::error(
        StatusCode::NOT_FOUND,
        format!("no check {key} on this page"),
    )
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}
