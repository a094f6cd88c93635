//! `spec.tcp` (a TCP connect) and the host and port it shares with `spec.tls`, validated into an
//! [`Endpoint`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::Errors;

/// Host and port of a TCP or TLS probe.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SocketTarget {
    /// DNS name or IP address.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[A-Za-z0-9.:_\[\]-]+$"))]
    pub host: String,
    /// TCP port.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

/// Host and port of a TCP or TLS probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// DNS name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Validates a host and port under `field`.
pub(super) fn validate_target(
    field: &str,
    target: &SocketTarget,
    errors: &mut Errors,
) -> Option<Endpoint> {
    let host = target.host.trim_start_matches('[').trim_end_matches(']');
    errors.at_most(&format!("{field}.host"), host.len(), 253, "characters");
    if host.trim().is_empty() {
        errors.push(format!("{field}.host"), "Required value");
    }
    let port = u16::try_from(target.port).ok().filter(|p| *p != 0);
    if port.is_none() {
        errors.push(
            format!("{field}.port"),
            format!("{} is outside 1..65535", target.port),
        );
    }
    Some(Endpoint {
        host: host.to_string(),
        port: port?,
    })
}
