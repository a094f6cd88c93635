//! The status page, served by Canary itself on its own port: an overview (paginated, with
//! search), a page per check, a JSON API and README badges, read-only and built from the
//! runners' in-memory history. Served from its own thread and runtime, away from the probes
//! ([`serve`]), under the admin endpoints' connection limits and a budget for unsent bodies;
//! every response carries a strict Content-Security-Policy and `Cache-Control: no-cache`.

mod api;
mod assets;
mod badge;
pub mod budget;
mod chart;
mod elsewhere;
pub mod forward;
pub mod listing;
mod located;
mod locations;
pub mod model;
mod overview;
pub mod page;
mod paths;
pub mod prometheus;
mod reply;
pub mod seal;
mod serve;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};

use crate::api::CheckKey;
pub use api::{ApiError, PageRequest};
pub use forward::{Forwarding, Owner, Owners};
use listing::Filter;
pub use located::{Located, LocatedCheck};
use model::{Check, Source, Span};
pub use page::{BAR_RESULTS, PageContext};
pub use prometheus::{PromConfig, PromError, Prometheus};
use reply::Reply;
pub use reply::gzip;
pub use serve::{RENDER_SHARE, Serving};

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
    #[error("starting the status page's thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// What the page shows and how.
#[derive(Clone)]
pub struct Ui {
    pub source: Source,
    /// Set while this replica is a standby under leader election (it probes nothing).
    pub standby: Arc<AtomicBool>,
    /// The ring, with `--sharding shards`: requests for other replicas' checks are forwarded
    /// (with `forwarding`) or answered with a page naming the replica that probes the check.
    pub owners: Option<Arc<dyn Owners>>,
    /// `--ui-forward` with its key; `None`: off.
    pub forwarding: Option<Arc<Forwarding>>,
    /// `--prometheus-url`: uptime windows from there (asked before a page renders).
    pub prometheus: Option<Arc<Prometheus>>,
}

/// The bound page, before it serves ([`Bound::start`]).
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
    /// With shards, names this replica on every reply (see [`forward::IDENTITY`]).
    fn signed(&self, mut response: Response<Bytes>) -> Response<Bytes> {
        let identity = self.owners.as_ref().map(|owners| owners.identity());
        if let Some(value) = identity.and_then(|i| HeaderValue::from_str(&i).ok()) {
            response.headers_mut().insert(forward::IDENTITY, value);
        }
        response
    }

    fn context(&self, now: i64) -> PageContext {
        PageContext {
            now,
            standby: self.standby.load(Ordering::Relaxed),
            redacted: self.source.redact,
            forwarding: self.forwarding.is_some(),
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
                let filter = Filter::parse(query);
                let mut listing = (self.source).overview(&filter, listing::page_number(query), now);
                if let Some(prometheus) = &self.prometheus {
                    prometheus.overlay_listing(&mut listing, now);
                }
                Reply::html(StatusCode::OK, page::overview(&listing, &filter, &ctx))
            }
            Route::Detail(key) => match self.detail(&key, now) {
                Some(detail) => Reply::html(StatusCode::OK, page::detail(&detail, &ctx)),
                None => Reply::html(StatusCode::NOT_FOUND, page::not_found(&ctx)),
            },
            Route::List => match PageRequest::parse(query) {
                Ok(request) => {
                    let after = request.after.as_ref();
                    let (mut page, total, more) = self.source.list(after, request.limit, now);
                    page.iter_mut().for_each(|check| self.overlay(check, now));
                    Reply::json(StatusCode::OK, &api::list(&page, total, more))
                }
                Err(error) => Reply::error(StatusCode::BAD_REQUEST, error),
            },
            Route::Check(key) => match self.detail(&key, now) {
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
        match self.check(key, now) {
            Some(check) => Reply::json(StatusCode::OK, &api::uptime(&check, span)),
            None => not_found(key),
        }
    }

    fn badge(&self, key: &CheckKey, file: &str, now: i64) -> Reply {
        let Some(kind) = badge::Kind::parse(file) else {
            return Reply::error(StatusCode::NOT_FOUND, format!("no badge named {file:?}"));
        };
        match self.check(key, now) {
            Some(check) => Reply::new(StatusCode::OK, "image/svg+xml", badge::render(kind, &check)),
            None => not_found(key),
        }
    }
}

impl Ui {
    /// With `--prometheus-url`: the checks a request for `path` shows, to ask Prometheus about
    /// before it renders (a pass over the runners for the overview and the list).
    /// With the check pages' and records' routes, the latency chart is asked too.
    fn shown(&self, path: &str, query: &[(String, String)], now: i64) -> (Vec<CheckKey>, bool) {
        let route = route(path);
        let chart = matches!(route, Route::Detail(_) | Route::Check(_));
        (self.shown_keys(route, query, now), chart)
    }

    fn shown_keys(&self, route: Route<'_>, query: &[(String, String)], now: i64) -> Vec<CheckKey> {
        let keys = |checks: Vec<Check>| checks.into_iter().map(|c| c.key).collect();
        match route {
            Route::Overview => {
                let filter = Filter::parse(query);
                keys(
                    (self.source)
                        .overview(&filter, listing::page_number(query), now)
                        .checks,
                )
            }
            Route::List => match PageRequest::parse(query) {
                Ok(request) => keys(
                    (self.source)
                        .list(request.after.as_ref(), request.limit, now)
                        .0,
                ),
                Err(_) => Vec::new(),
            },
            route => route.check().cloned().into_iter().collect(),
        }
    }

    fn overlay(&self, check: &mut Check, now: i64) {
        if let Some(prometheus) = &self.prometheus {
            prometheus.overlay(check, now);
        }
    }

    fn check(&self, key: &CheckKey, now: i64) -> Option<Check> {
        let mut check = self.source.check(key, now)?;
        self.overlay(&mut check, now);
        Some(check)
    }

    fn detail(&self, key: &CheckKey, now: i64) -> Option<model::Detail> {
        let mut detail = self.source.detail(key, now)?;
        if let Some(prometheus) = &self.prometheus {
            prometheus.overlay_detail(&mut detail, now);
        }
        Some(detail)
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
