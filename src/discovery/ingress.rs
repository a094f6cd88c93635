//! Ingress rules: one check per distinct host and path; https iff a `tls[].hosts` entry covers
//! the host (a wildcard covers one label). Rules without a host, wildcard hosts and regex paths
//! are skipped with a reason.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{Ingress, IngressRule};

use super::{Candidate, Found, Scope, SourceKind, Target, select};
use crate::api::{IngressSource, PathChoice, SkipReason};

const KIND: SourceKind = SourceKind::Ingress;

/// Adds the checks and skips of every selected Ingress.
pub(super) fn find<'a>(scope: &Scope<'a>, source: &IngressSource, found: &mut Found<'a>) {
    for ingress in &scope.inputs.ingresses {
        let classes = &scope.inputs.ingress_classes;
        if select::wanted(scope, &ingress.metadata, source.selector.as_ref())
            && select::of_class(ingress, &source.ingress_class_names, classes)
        {
            find_one(ingress, source.paths, found);
        }
    }
}

fn find_one<'a>(ingress: &'a Ingress, choice: PathChoice, found: &mut Found<'a>) {
    let name = ingress.metadata.name.as_deref().unwrap_or_default();
    let Some(spec) = &ingress.spec else {
        return;
    };
    // Host -> its checkable paths, in order of appearance.
    let mut hosts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for rule in spec.rules.iter().flatten() {
        let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) else {
            found.skip(
                KIND,
                name,
                (None, None),
                SkipReason::NoHost,
                "a rule without host",
            );
            continue;
        };
        if host.starts_with('*') {
            found.skip(KIND, name, (Some(host), None), SkipReason::WildcardHost, "");
            continue;
        }
        let paths = hosts.entry(host.to_ascii_lowercase()).or_default();
        for path in rule_paths(rule) {
            match path {
                Ok(path) if !paths.contains(&path) => paths.push(path),
                Ok(_) => {}
                Err(path) => {
                    let at = (Some(host), Some(path.as_str()));
                    found.skip(
                        KIND,
                        name,
                        at,
                        SkipReason::RegexPath,
                        "ImplementationSpecific path with regex metacharacters",
                    );
                }
            }
        }
    }
    let tls = spec.tls.iter().flatten();
    let address = load_balancer_address(ingress);
    for (host, paths) in hosts {
        // The first tls entry covering the host: its Secret is what the controller serves.
        let entry = (tls.clone()).find(|t| t.hosts.iter().flatten().any(|p| covers(p, &host)));
        let https = entry.is_some();
        let secret = entry.and_then(|t| t.secret_name.clone().filter(|n| !n.is_empty()));
        let (scheme, port) = if https { ("https", 443) } else { ("http", 80) };
        for path in choose(paths, choice) {
            found.candidates.push(Candidate {
                kind: KIND,
                object: &ingress.metadata,
                target: Target::Http {
                    url: format!("{scheme}://{host}{path}"),
                    http2: false,
                },
                host: host.clone(),
                path,
                port,
                address: address.clone(),
                secret: secret.clone(),
            });
        }
    }
}

/// The first address in `status.loadBalancer.ingress`: its IP, else its host name.
fn load_balancer_address(ingress: &Ingress) -> Option<String> {
    let status = ingress.status.as_ref()?.load_balancer.as_ref()?;
    (status.ingress.iter().flatten())
        .filter_map(|lb| lb.ip.clone().or_else(|| lb.hostname.clone()))
        .find(|address| !address.is_empty())
}

/// The paths of a rule: `Ok` a checkable path, `Err` a regex path. A rule without paths is
/// served at "/" by the default backend.
fn rule_paths(rule: &IngressRule) -> Vec<Result<String, String>> {
    let Some(http) = &rule.http else {
        return vec![Ok("/".into())];
    };
    (http.paths.iter())
        .map(|p| {
            let path = p
                .path
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or("/".into());
            if p.path_type == "ImplementationSpecific" && is_regex(&path) {
                Err(path)
            } else {
                Ok(path)
            }
        })
        .collect()
}

/// Regex metacharacters (ingress-nginx's `use-regex` paths); `.` is left out: it matches
/// itself too, and file names (`/favicon.ico`) are common.
pub(super) fn is_regex(path: &str) -> bool {
    path.contains([
        '^', '$', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '\\',
    ])
}

/// First: "/" if present, else the shortest (the first of equals); All: every path.
pub(super) fn choose(mut paths: Vec<String>, choice: PathChoice) -> Vec<String> {
    if choice == PathChoice::All || paths.len() <= 1 {
        return paths;
    }
    if paths.iter().any(|p| p == "/") {
        return vec!["/".into()];
    }
    paths.sort_by_key(|p| p.len());
    paths.truncate(1);
    paths
}

/// Whether a TLS host entry covers `host`: equal, or `*.rest` with exactly one label before
/// `rest` (as a certificate's wildcard).
fn covers(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(rest) => host
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail == rest),
        None => pattern == host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_tls_host_covers_exactly_one_label() {
        assert!(covers("*.example.com", "shop.example.com"));
        assert!(!covers("*.example.com", "a.shop.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(covers("Shop.Example.com", "shop.example.com"));
    }

    #[test]
    fn first_prefers_the_root_then_the_shortest() {
        let paths = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            choose(paths(&["/api", "/", "/b"]), PathChoice::First),
            ["/"]
        );
        assert_eq!(
            choose(paths(&["/api", "/b", "/c"]), PathChoice::First),
            ["/b"]
        );
        assert_eq!(
            choose(paths(&["/api", "/b"]), PathChoice::All),
            ["/api", "/b"]
        );
        assert!(is_regex("/api/(.*)") && !is_regex("/favicon.ico"));
    }
}
