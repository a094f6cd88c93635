//! `spec.grpc`: a `grpc.health.v1.Health/Check` call and the serving status it must return;
//! its validation into [`ValidGrpc`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    http::HttpHeader,
    parse::parse_host_port,
    tcp::Endpoint,
    valid::ValidHeader,
    validate::{Errors, validate_headers},
};

/// A gRPC health check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrpcProbe {
    /// The server as host:port or [IPv6]:port.
    #[schemars(
        length(min = 3, max = 261),
        regex(pattern = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}$")
    )]
    pub target: String,
    /// Speak TLS (ALPN h2; tlsPolicy applies, with its client certificate); false: HTTP/2
    /// in cleartext (prior knowledge).
    #[serde(default)]
    pub tls: bool,
    /// The service asked about; "" asks about the whole server.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub service: String,
    /// The :authority sent (and, over TLS, the default server name); default: target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 261), regex(pattern = r"^[A-Za-z0-9.:_\[\]-]+$"))]
    pub authority: Option<String>,
    /// Request metadata; values inline or from a Secret/ConfigMap in the same namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub metadata: Vec<HttpHeader>,
    /// Expectations on the answer.
    #[serde(default)]
    pub expect: GrpcExpect,
}

/// What the health service must answer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrpcExpect {
    /// Accepted serving statuses.
    #[serde(default = "default_serving")]
    #[schemars(length(min = 1, max = 3))]
    pub serving_status: Vec<ServingStatus>,
}

impl Default for GrpcExpect {
    fn default() -> Self {
        Self {
            serving_status: default_serving(),
        }
    }
}

fn default_serving() -> Vec<ServingStatus> {
    vec![ServingStatus::Serving]
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServingStatus {
    Unknown,
    Serving,
    NotServing,
}

impl ServingStatus {
    /// The enum's number in the protocol (what `canary_grpc_serving_status` reports).
    pub fn number(self) -> i64 {
        match self {
            Self::Unknown => 0,
            Self::Serving => 1,
            Self::NotServing => 2,
        }
    }
}

/// A validated gRPC health check; metadata values may still be references.
#[derive(Debug, Clone)]
pub struct ValidGrpc {
    pub target: Endpoint,
    pub tls: bool,
    pub service: String,
    /// The :authority sent: `authority`, else the target as written.
    pub authority: String,
    pub metadata: Vec<ValidHeader>,
    pub serving_status: Vec<ServingStatus>,
}

/// Metadata a user may not set: gRPC's own headers and HTTP/1 connection headers, which HTTP/2
/// forbids (the client would refuse to send them, on every run).
fn reserved(name: &str) -> bool {
    name.starts_with("grpc-")
        || matches!(
            name,
            "content-type"
                | "te"
                | "host"
                | "connection"
                | "user-agent"
                | "transfer-encoding"
                | "upgrade"
                | "keep-alive"
                | "proxy-connection"
        )
}

/// Validates `spec.grpc`.
pub(super) fn validate_grpc(grpc: &GrpcProbe, errors: &mut Errors) -> Option<ValidGrpc> {
    let target = errors.take(parse_host_port("spec.grpc.target", &grpc.target, None));
    errors.at_most("spec.grpc.service", grpc.service.len(), 1024, "bytes");
    if grpc.service.chars().any(char::is_control) {
        errors.push("spec.grpc.service", "must not contain control characters");
    }
    let metadata = validate_headers("spec.grpc.metadata", &grpc.metadata, errors);
    for (i, entry) in metadata.iter().enumerate() {
        if reserved(entry.name.as_str()) {
            errors.push(
                format!("spec.grpc.metadata[{i}].name"),
                format!("{} is reserved by HTTP/2 and gRPC", entry.name),
            );
        }
    }
    if grpc.expect.serving_status.is_empty() {
        errors.push(
            "spec.grpc.expect.servingStatus",
            "must list at least one status",
        );
    }
    let authority = match &grpc.authority {
        // HTTP/2 forbids userinfo in :authority, which http's parser would accept.
        Some(authority)
            if authority.contains('@')
                || http::uri::Authority::try_from(authority.as_str()).is_err() =>
        {
            errors.push(
                "spec.grpc.authority",
                format!("{authority:?} is not host[:port]"),
            );
            None
        }
        Some(authority) => Some(authority.clone()),
        None => target.as_ref().map(ToString::to_string),
    };
    Some(ValidGrpc {
        target: target?,
        tls: grpc.tls,
        service: grpc.service.clone(),
        authority: authority?,
        metadata,
        serving_status: grpc.expect.serving_status.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::api::{HealthCheckSpec, validate::validate};

    /// The fields named by the errors of a gRPC spec.
    fn errors(grpc: serde_json::Value) -> Vec<String> {
        let spec: HealthCheckSpec = serde_json::from_value(json!({ "grpc": grpc })).unwrap();
        match validate(&spec) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn reserved_metadata_and_userinfo_authorities_are_refused() {
        for name in [
            "grpc-timeout",
            "te",
            "Transfer-Encoding",
            "upgrade",
            "keep-alive",
        ] {
            let grpc = json!({"target": "a:1", "metadata": [{"name": name, "value": "x"}]});
            assert_eq!(errors(grpc), ["spec.grpc.metadata[0].name"], "{name}");
        }
        let grpc = json!({"target": "a:1", "metadata": [{"name": "x-team", "value": "pay"}]});
        assert_eq!(errors(grpc), Vec::<String>::new());
        let grpc = json!({"target": "a:1", "authority": "user@a:1"});
        assert_eq!(errors(grpc), ["spec.grpc.authority"]);
        let grpc = json!({"target": "[::1]junk"});
        assert_eq!(errors(grpc), ["spec.grpc.target"]);
    }
}
