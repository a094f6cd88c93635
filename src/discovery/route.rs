//! HTTPRoutes and GRPCRoutes: a check per host the route is served at (see [`super::listener`])
//! and, for HTTPRoutes, per path. Regex paths and header, query or method matches are skipped:
//! a plain request would not be routed the way the rule says.

use super::{
    Candidate, Found, Scope, SourceKind, Target,
    gateway_api::{GrpcRoute, HttpRoute, HttpRouteRule},
    ingress::choose,
    listener::{self, Route, Served},
    select,
};
use crate::api::{GrpcRouteSource, RouteSource, SkipReason};

/// Adds the checks and skips of every selected HTTPRoute.
pub(super) fn find_http<'a>(scope: &Scope<'a>, source: &RouteSource, found: &mut Found<'a>) {
    for route in &scope.inputs.http_routes {
        if !select::wanted(scope, &route.metadata, source.selector.as_ref()) {
            continue;
        }
        let kind = SourceKind::HttpRoute;
        let name = route.metadata.name.as_deref().unwrap_or_default();
        let mut paths = Vec::new();
        for rule in &route.spec.rules {
            for path in rule_paths(rule) {
                match path {
                    Ok(path) if !paths.contains(&path) => paths.push(path),
                    Ok(_) => {}
                    Err((reason, path)) => found.skip(kind, name, (None, Some(&path)), reason, ""),
                }
            }
        }
        if route.spec.rules.is_empty() {
            paths.push("/".into());
        }
        let view = Route {
            kind,
            meta: &route.metadata,
            parents: &route.spec.parent_refs,
            hostnames: &route.spec.hostnames,
            status: route.status.as_ref(),
        };
        if paths.is_empty() {
            continue;
        }
        for served in listener::served(scope, &view, &source.gateway_refs, found) {
            for path in choose(paths.clone(), source.paths) {
                push(found, route, &served, path);
            }
        }
    }
}

fn push<'a>(found: &mut Found<'a>, route: &'a HttpRoute, served: &Served, path: String) {
    let scheme = if served.https { "https" } else { "http" };
    let port = shown_port(served);
    found.candidates.push(Candidate {
        kind: SourceKind::HttpRoute,
        object: &route.metadata,
        target: Target::Http {
            url: format!("{scheme}://{}{port}{path}", served.host),
            http2: false,
        },
        host: served.host.clone(),
        path,
        port: served.port,
        address: served.address.clone(),
        secret: None,
    });
}

/// `:port` unless it is the scheme's default.
fn shown_port(served: &Served) -> String {
    match (served.https, served.port) {
        (true, 443) | (false, 80) => String::new(),
        (_, port) => format!(":{port}"),
    }
}

/// The paths of a rule: `Ok` a checkable path, `Err` why not. No matches is "/".
fn rule_paths(rule: &HttpRouteRule) -> Vec<Result<String, (SkipReason, String)>> {
    if rule.matches.is_empty() {
        return vec![Ok("/".into())];
    }
    (rule.matches.iter())
        .map(|m| {
            let path = m.path.as_ref();
            let value = path.and_then(|p| p.value.clone()).unwrap_or("/".into());
            if path.and_then(|p| p.type_.as_deref()) == Some("RegularExpression") {
                Err((SkipReason::RegexPath, value))
            } else if !m.headers.is_empty() || !m.query_params.is_empty() || m.method.is_some() {
                Err((SkipReason::ConditionalMatch, value))
            } else {
                Ok(value)
            }
        })
        .collect()
}

/// Adds a gRPC health check per host of every selected GRPCRoute (TLS on HTTPS listeners).
pub(super) fn find_grpc<'a>(scope: &Scope<'a>, source: &GrpcRouteSource, found: &mut Found<'a>) {
    for route in &scope.inputs.grpc_routes {
        if select::wanted(scope, &route.metadata, source.selector.as_ref()) {
            grpc_one(scope, route, source, found);
        }
    }
}

fn grpc_one<'a>(
    scope: &Scope<'a>,
    route: &'a GrpcRoute,
    source: &GrpcRouteSource,
    found: &mut Found<'a>,
) {
    let view = Route {
        kind: SourceKind::GrpcRoute,
        meta: &route.metadata,
        parents: &route.spec.parent_refs,
        hostnames: &route.spec.hostnames,
        status: route.status.as_ref(),
    };
    for served in listener::served(scope, &view, &source.gateway_refs, found) {
        found.candidates.push(Candidate {
            kind: SourceKind::GrpcRoute,
            object: &route.metadata,
            target: Target::Grpc {
                target: format!("{}:{}", served.host, served.port),
                tls: served.https,
            },
            host: served.host.clone(),
            path: String::new(),
            port: served.port,
            address: served.address.clone(),
            secret: None,
        });
    }
}
