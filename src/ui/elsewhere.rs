//! Requests for a check another replica probes (`--sharding shards`): forwarded to the owner
//! with `--ui-forward` (the path rebuilt from the parsed route, only known query parameters
//! re-encoded, the reply relayed only when sealed), else answered here with a page naming the
//! replica that probes the check, truthfully and without relaying anything.

use http::{HeaderValue, Request, Response, StatusCode};

use super::{
    Route, Ui, badge,
    forward::{self, ForwardError, Owner},
    model::Span,
    page,
    paths::check_path,
    reply::Reply,
    route,
    seal::{self, Sealed},
};
use crate::api::CheckKey;

/// The longest nonce sealed (ours are 32 hex digits).
const MAX_NONCE: usize = 64;

impl Ui {
    /// The reply for a check another replica probes, when this one does not hold it and the
    /// request was not forwarded already; `None`: answer it here.
    pub(super) async fn elsewhere<B>(
        &self,
        request: &Request<B>,
        query: &[(String, String)],
    ) -> Option<Reply> {
        let owners = self.owners.as_ref()?;
        let route = route(request.uri().path());
        let key = route.check()?;
        if request.headers().contains_key(forward::FORWARDED_BY) || self.source.holds(key) {
            return None;
        }
        let owner = owners.elsewhere(key)?;
        let Some(forwarding) = &self.forwarding else {
            return Some(self.probed_elsewhere(&route, key, &owner));
        };
        let target = match rebuilt(&route, query) {
            Ok(target) => target,
            Err(reply) => return Some(reply),
        };
        match forward::forward(forwarding, &owner, &target, &owners.identity()).await {
            Ok(relayed) => Some(Reply::relayed(relayed)),
            Err(error) => {
                tracing::warn!(%error, check = %key, "forwarding a status page request failed");
                Some(self.unanswered(&route, key, &error))
            }
        }
    }

    /// Forwarding is off: which replica probes `key`, and that its page is served there.
    fn probed_elsewhere(&self, route: &Route<'_>, key: &CheckKey, owner: &Owner) -> Reply {
        let message = match self.source.redact {
            true => format!(
                "{key} is probed by another replica of this Canary; its page, history and badges \
                 are served by that replica's own status page."
            ),
            false => format!(
                "{key} is probed by replica {}; its page, history and badges are served by that \
                 replica's own status page (e.g. kubectl port-forward to its pod).",
                owner.identity
            ),
        };
        self.failure(
            route,
            StatusCode::NOT_FOUND,
            "Probed by another replica",
            &message,
        )
    }

    /// The owner did not answer (or was not asked): the why, without the other replica's
    /// identity or address under `--ui-redact`.
    fn unanswered(&self, route: &Route<'_>, key: &CheckKey, error: &ForwardError) -> Reply {
        let message = match self.source.redact {
            true => format!("{key} is probed by another replica, which did not answer."),
            false => format!("{key} is probed by another replica, which did not answer: {error}"),
        };
        self.failure(route, StatusCode::BAD_GATEWAY, "Not available", &message)
    }

    fn failure(&self, route: &Route<'_>, status: StatusCode, title: &str, message: &str) -> Reply {
        match route {
            Route::Detail(_) => {
                let ctx = self.context(super::now());
                Reply::html(status, page::unavailable(title, message, &ctx))
            }
            _ => Reply::error(status, message),
        }
    }

    /// `response` sealed for the replica that forwarded its request (see [`seal`]), when this
    /// replica forwards too and the request asked for a seal.
    pub(super) fn sealed<B>(
        &self,
        request: &Request<B>,
        mut response: Response<bytes::Bytes>,
    ) -> Response<bytes::Bytes> {
        let Some(forwarding) = &self.forwarding else {
            return response;
        };
        let nonce = (request.headers().get(seal::NONCE)).and_then(|v| v.to_str().ok());
        let Some(nonce) = nonce.filter(|n| !n.is_empty() && n.len() <= MAX_NONCE) else {
            return response;
        };
        let path = (request.uri().path_and_query()).map_or("/", |p| p.as_str());
        let content_type = (response.headers().get(http::header::CONTENT_TYPE))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let identity = (self.owners.as_ref())
            .map(|o| o.identity())
            .unwrap_or_default();
        let sealed = Sealed {
            nonce,
            identity: &identity,
            path,
            status: response.status().as_u16(),
            content_type,
            body: response.body(),
        };
        let seal = forwarding.key.seal(&sealed);
        if let Ok(value) = HeaderValue::from_str(&seal) {
            response.headers_mut().insert(seal::SEAL, value);
        }
        response
    }
}

/// The path asked of the owner, built from the route: the check's path as this page links it,
/// plus the one query parameter a route takes (`window`, validated). Nothing of the visitor's
/// raw path or query passes.
fn rebuilt(route: &Route<'_>, query: &[(String, String)]) -> Result<String, Reply> {
    match route {
        Route::Detail(key) => Ok(check_path("/checks", key)),
        Route::Check(key) => Ok(check_path("/api/v1/checks", key)),
        Route::Uptime(key) => {
            let path = format!("{}/uptime", check_path("/api/v1/checks", key));
            let window = query.iter().find(|(k, _)| k == "window");
            match window.map(|(_, v)| (v, Span::parse(v))) {
                None => Ok(path),
                Some((_, Some(span))) => Ok(format!("{path}?window={}", span.label())),
                Some((given, None)) => Err(Reply::error(
                    StatusCode::BAD_REQUEST,
                    super::ApiError::Window(given.clone()),
                )),
            }
        }
        Route::Badge(key, file) => match badge::Kind::parse(file) {
            // `file` parsed as one of the badge names, so it is one of ours.
            Some(_) => Ok(format!("{}/{file}", check_path("/badges", key))),
            None => Err(Reply::error(
                StatusCode::NOT_FOUND,
                format!("no badge named {file:?}"),
            )),
        },
        _ => Err(Reply::error(StatusCode::NOT_FOUND, "no such page")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        (pairs.iter())
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// The old code forwarded `request.uri().path_and_query()` as the visitor sent it.
    #[test]
    fn the_forwarded_path_is_rebuilt_from_the_route_never_the_visitors() {
        let cases = [
            ("/checks/shop/api", "", "/checks/shop/api"),
            (
                "/checks/sh%6fp/a%70i",
                "x=<script>&window=7d",
                "/checks/shop/api",
            ),
            ("/checks/shop/disk%2090%25", "", "/checks/shop/disk%2090%25"),
            (
                "/api/v1/checks/shop/api",
                "continue=../../x",
                "/api/v1/checks/shop/api",
            ),
            (
                "/api/v1/checks/shop/api/uptime",
                "window=7d&evil=1",
                "/api/v1/checks/shop/api/uptime?window=7d",
            ),
            (
                "/api/v1/checks/shop/api/uptime",
                "",
                "/api/v1/checks/shop/api/uptime",
            ),
            (
                "/badges/shop/api/uptime-24h.svg",
                "a=b",
                "/badges/shop/api/uptime-24h.svg",
            ),
        ];
        for (path, raw, expected) in cases {
            let parsed: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect();
            let target = rebuilt(&route(path), &parsed).unwrap_or_else(|r| panic!("{path}: {r:?}"));
            assert_eq!(target, expected, "{path}?{raw}");
        }
        let bad_window = rebuilt(
            &route("/api/v1/checks/a/b/uptime"),
            &query(&[("window", "1y")]),
        );
        assert_eq!(bad_window.unwrap_err().status, StatusCode::BAD_REQUEST);
        let bad_badge = rebuilt(&route("/badges/a/b/evil.svg"), &[]);
        assert_eq!(bad_badge.unwrap_err().status, StatusCode::NOT_FOUND);
    }
}

#[cfg(test)]
#[path = "elsewhere_tests.rs"]
mod ui_tests;
