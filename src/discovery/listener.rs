//! Where a route is served: its parent Gateways' listeners that admit it (section, port,
//! namespace, kind) and the hostnames they share with it. Scheme and port come from the
//! listener (HTTPS -> https, HTTP -> http).

use kube::api::ObjectMeta;

use super::{
    Found, Scope, SourceKind,
    gateway_api::{GROUP, Gateway, Listener, ParentRef, RouteStatus},
    namespace_of, select,
};
use crate::api::{GatewayRef, SkipReason};

/// A host a route is served at, through one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Served {
    pub host: String,
    pub https: bool,
    pub port: u16,
    /// The Gateway's status address, for `dial: LoadBalancer`.
    pub address: Option<String>,
}

/// What the route says about itself.
pub(super) struct Route<'a> {
    pub kind: SourceKind,
    pub meta: &'a ObjectMeta,
    pub parents: &'a [ParentRef],
    pub hostnames: &'a [String],
    pub status: Option<&'a RouteStatus>,
}

/// Every host the route is served at (deduplicated), skipping what cannot be checked.
pub(super) fn served(
    scope: &Scope<'_>,
    route: &Route<'_>,
    only: &[GatewayRef],
    found: &mut Found<'_>,
) -> Vec<Served> {
    let mut all: Vec<Served> = Vec::new();
    let route_ns = namespace_of(route.meta);
    let name = route.meta.name.as_deref().unwrap_or_default();
    for parent in route.parents.iter().filter(|p| p.is_gateway()) {
        let gateway_ns = parent.namespace.as_deref().unwrap_or(route_ns);
        let named = |r: &GatewayRef| {
            r.name == parent.name && r.namespace.as_deref().unwrap_or(route_ns) == gateway_ns
        };
        if !only.is_empty() && !only.iter().any(named) {
            continue;
        }
        let gateway_name = format!("{gateway_ns}/{}", parent.name);
        let gateway = (scope.inputs.gateways.iter()).find(|g| {
            g.metadata.name.as_deref() == Some(&parent.name)
                && namespace_of(&g.metadata) == gateway_ns
        });
        let Some(gateway) = gateway else {
            found.skip(
                route.kind,
                name,
                (None, None),
                SkipReason::GatewayNotFound,
                format!("Gateway {gateway_name}"),
            );
            continue;
        };
        let accepted = route.status.is_some_and(|s| s.accepted(parent, route_ns));
        if !scope.settings.assume_accepted && !accepted {
            found.skip(
                route.kind,
                name,
                (None, None),
                SkipReason::NotAccepted,
                format!("parent Gateway {gateway_name}"),
            );
            continue;
        }
        for served in through(scope, route, parent, gateway, found) {
            if !all.contains(&served) {
                all.push(served);
            }
        }
    }
    all
}

/// The hosts served through the listeners of `gateway` that `parent` names and that admit it.
fn through(
    scope: &Scope<'_>,
    route: &Route<'_>,
    parent: &ParentRef,
    gateway: &Gateway,
    found: &mut Found<'_>,
) -> Vec<Served> {
    let name = route.meta.name.as_deref().unwrap_or_default();
    let gateway_name = format!("{}/{}", namespace_of(&gateway.metadata), parent.name);
    let named: Vec<&Listener> = (gateway.spec.listeners.iter())
        .filter(|l| parent.section_name.as_ref().is_none_or(|s| *s == l.name))
        .filter(|l| parent.port.is_none_or(|p| p == l.port))
        .collect();
    let admitting: Vec<&Listener> = (named.iter().copied())
        .filter(|l| admits(scope, route, gateway, l))
        .collect();
    if admitting.is_empty() {
        let message = match named.is_empty() {
            true => format!("Gateway {gateway_name} has no listener{}", wanted(parent)),
            false => format!("no listener of Gateway {gateway_name} admits it"),
        };
        found.skip(
            route.kind,
            name,
            (None, None),
            SkipReason::NotAllowed,
            message,
        );
        return Vec::new();
    }
    let mut served = Vec::new();
    for listener in admitting {
        let hosts: Vec<String> = match (&listener.hostname, route.hostnames.is_empty()) {
            (None, true) => {
                found.skip(
                    route.kind,
                    name,
                    (None, None),
                    SkipReason::NoHost,
                    format!("listener {} has no hostname", listener.name),
                );
                continue;
            }
            (Some(own), true) => vec![own.clone()],
            (_, false) => (route.hostnames.iter())
                .filter_map(|h| intersect(listener.hostname.as_deref(), h))
                .collect(),
        };
        if hosts.is_empty() {
            let message = format!(
                "no hostname matches listener {} of Gateway {gateway_name}",
                listener.name
            );
            found.skip(
                route.kind,
                name,
                (None, None),
                SkipReason::NotAllowed,
                message,
            );
        }
        for host in hosts {
            if host.starts_with('*') {
                found.skip(
                    route.kind,
                    name,
                    (Some(&host), None),
                    SkipReason::WildcardHost,
                    "",
                );
                continue;
            }
            served.push(Served {
                host,
                https: listener.protocol == "HTTPS",
                port: listener.port,
                address: gateway.address().map(str::to_string),
            });
        }
    }
    served
}

/// The section name and port a parent asks for, as words (` named https on port 443`).
fn wanted(parent: &ParentRef) -> String {
    let section = (parent.section_name.as_ref()).map(|s| format!(" named {s}"));
    let port = parent.port.map(|p| format!(" on port {p}"));
    format!(
        "{}{}",
        section.unwrap_or_default(),
        port.unwrap_or_default()
    )
}

/// Whether `listener` admits the route: its protocol carries HTTP, its `allowedRoutes.kinds`
/// name the route's kind (when given) and its `namespaces` admit the route's namespace.
fn admits(scope: &Scope<'_>, route: &Route<'_>, gateway: &Gateway, listener: &Listener) -> bool {
    if !matches!(listener.protocol.as_str(), "HTTP" | "HTTPS") {
        return false;
    }
    let allowed = listener.allowed_routes.clone().unwrap_or_default();
    let kind_ok = allowed.kinds.is_empty()
        || (allowed.kinds.iter())
            .any(|k| k.kind == route.kind.name() && k.group.as_deref().is_none_or(|g| g == GROUP));
    let route_ns = namespace_of(route.meta);
    let namespaces = allowed.namespaces.unwrap_or_default();
    let namespace_ok = match namespaces.from.as_deref().unwrap_or("Same") {
        "All" => true,
        "Selector" => (scope.inputs.namespaces.iter())
            .find(|n| n.metadata.name.as_deref() == Some(route_ns))
            .is_some_and(|n| {
                let labels = n.metadata.labels.clone().unwrap_or_default();
                select::matches(Some(&namespaces.selector.unwrap_or_default()), &labels)
            }),
        _ => route_ns == namespace_of(&gateway.metadata),
    };
    kind_ok && namespace_ok
}

/// The hostname a listener (`None`: any) and a route hostname share, Gateway API style: a
/// wildcard `*.example.com` matches any name ending in `.example.com`; the more specific wins.
pub(super) fn intersect(listener: Option<&str>, route: &str) -> Option<String> {
    let route = route.to_ascii_lowercase();
    let Some(listener) = listener.map(str::to_ascii_lowercase) else {
        return Some(route);
    };
    let covers = |wild: &str, name: &str| {
        wild.strip_prefix('*')
            .is_some_and(|suffix| name.ends_with(suffix) && name.len() > suffix.len())
    };
    if listener == route || covers(&listener, &route) {
        Some(route)
    } else if covers(&route, &listener) {
        Some(listener)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::intersect;

    #[test]
    fn hostnames_intersect_as_the_gateway_api_defines() {
        assert_eq!(
            intersect(None, "a.example.com").as_deref(),
            Some("a.example.com")
        );
        assert_eq!(
            intersect(Some("*.example.com"), "a.b.example.com").as_deref(),
            Some("a.b.example.com")
        );
        assert_eq!(
            intersect(Some("a.example.com"), "*.example.com").as_deref(),
            Some("a.example.com")
        );
        assert_eq!(
            intersect(Some("*.example.com"), "*.example.com").as_deref(),
            Some("*.example.com")
        );
        assert_eq!(intersect(Some("*.example.com"), "example.com"), None);
        assert_eq!(intersect(Some("a.example.com"), "b.example.com"), None);
    }
}
