//! Services: `<name>.<namespace>.svc.<cluster domain>:<port>` for each selected port, probed
//! as the port says: `appProtocol` first (`http`, `https`, `kubernetes.io/h2c`, `grpc`), else
//! the port name's prefix (`http`, `https`, `grpc`), else a TCP connect.

use k8s_openapi::{api::core::v1::ServicePort, apimachinery::pkg::util::intstr::IntOrString};

use super::{Candidate, Found, Scope, SourceKind, Target, select};
use crate::api::{ServiceSource, SkipReason};

const KIND: SourceKind = SourceKind::Service;

/// Adds the checks and skips of every selected Service.
pub(super) fn find<'a>(scope: &Scope<'a>, source: &ServiceSource, found: &mut Found<'a>) {
    let domain = scope.settings.cluster_domain.trim_matches('.');
    for service in &scope.inputs.services {
        if !select::wanted(scope, &service.metadata, source.selector.as_ref()) {
            continue;
        }
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let host = format!("{name}.{}.svc.{domain}", scope.namespace);
        let ports = (service.spec.iter()).flat_map(|s| s.ports.iter().flatten());
        for port in ports.filter(|p| selected(p, &source.ports)) {
            let protocol = port.protocol.as_deref().unwrap_or("TCP");
            let Ok(number) = u16::try_from(port.port) else {
                continue;
            };
            if protocol != "TCP" {
                let message = format!("port {number}/{protocol}");
                found.skip(
                    KIND,
                    name,
                    (Some(&host), None),
                    SkipReason::UnsupportedProtocol,
                    message,
                );
                continue;
            }
            found.candidates.push(Candidate {
                kind: KIND,
                object: &service.metadata,
                target: target(port, &host, number),
                host: host.clone(),
                path: String::new(),
                port: number,
                address: None,
                secret: None,
            });
        }
    }
}

/// Whether a port is among `wanted` (names or numbers); every port when empty.
fn selected(port: &ServicePort, wanted: &[IntOrString]) -> bool {
    wanted.is_empty()
        || wanted.iter().any(|w| match w {
            IntOrString::Int(n) => *n == port.port,
            IntOrString::String(s) => port.name.as_deref() == Some(s.as_str()),
        })
}

/// The probe kinds a port can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speaks {
    Http,
    Https,
    H2c,
    Grpc,
    Tcp,
}

/// What a port speaks: its `appProtocol`, else its name's prefix (`http-metrics`).
fn speaks(port: &ServicePort) -> Speaks {
    let by_app = match port.app_protocol.as_deref() {
        Some("http") => Some(Speaks::Http),
        Some("https") => Some(Speaks::Https),
        Some("kubernetes.io/h2c") => Some(Speaks::H2c),
        Some("grpc") => Some(Speaks::Grpc),
        _ => None,
    };
    let name = port.name.as_deref().unwrap_or_default();
    let prefixed = |p: &str| name == p || name.starts_with(&format!("{p}-"));
    by_app.unwrap_or(if prefixed("https") {
        Speaks::Https
    } else if prefixed("http") {
        Speaks::Http
    } else if prefixed("grpc") {
        Speaks::Grpc
    } else {
        Speaks::Tcp
    })
}

fn target(port: &ServicePort, host: &str, number: u16) -> Target {
    let url = |scheme: &str, default: u16| match number == default {
        true => format!("{scheme}://{host}/"),
        false => format!("{scheme}://{host}:{number}/"),
    };
    match speaks(port) {
        Speaks::Http => Target::Http {
            url: url("http", 80),
            http2: false,
        },
        Speaks::Https => Target::Http {
            url: url("https", 443),
            http2: false,
        },
        Speaks::H2c => Target::Http {
            url: url("http", 80),
            http2: true,
        },
        Speaks::Grpc => Target::Grpc {
            target: format!("{host}:{number}"),
            tls: false,
        },
        Speaks::Tcp => Target::Tcp {
            host: host.into(),
            port: number,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: Option<&str>, app: Option<&str>) -> ServicePort {
        ServicePort {
            name: name.map(String::from),
            app_protocol: app.map(String::from),
            port: 8080,
            ..ServicePort::default()
        }
    }

    #[test]
    fn app_protocol_wins_over_the_name_prefix() {
        assert_eq!(speaks(&port(Some("grpc-api"), Some("http"))), Speaks::Http);
        assert_eq!(
            speaks(&port(Some("web"), Some("kubernetes.io/h2c"))),
            Speaks::H2c
        );
        assert_eq!(speaks(&port(Some("https-admin"), None)), Speaks::Https);
        assert_eq!(speaks(&port(Some("http-metrics"), None)), Speaks::Http);
        assert_eq!(speaks(&port(Some("grpc"), None)), Speaks::Grpc);
        assert_eq!(speaks(&port(Some("httpx"), None)), Speaks::Tcp);
        assert_eq!(speaks(&port(None, None)), Speaks::Tcp);
    }
}
