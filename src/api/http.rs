//! `spec.http`: an HTTP(S) request (method, version, headers, body, auth). Its expectations
//! (`HttpExpect`) are still in `spec.rs`, its validation in `validate.rs` and its valid form in
//! `valid.rs`, beside the helpers they share with gRPC metadata and references.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    auth::HttpAuth,
    parse::parse_host_port,
    spec::{HttpExpect, ValueSource, default_true, int_or_string_schema},
    tcp::Endpoint,
    validate::FieldError,
};

/// An HTTP(S) request and what its response must look like.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpProbe {
    /// Absolute http:// or https:// URL.
    #[schemars(regex(pattern = r"^https?://[^\s/$.?#].[^\s]*$"), length(max = 2048))]
    pub url: String,
    /// Request method.
    #[serde(default)]
    pub method: HttpMethod,
    /// HTTP version: "1.1", or "2" (ALPN h2 over TLS, prior knowledge over cleartext).
    #[serde(default)]
    pub version: HttpVersion,
    /// Request headers; values inline or from a Secret/ConfigMap in the same namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub headers: Vec<HttpHeader>,
    /// Request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Credentials obtained before each request (an OAuth2 client-credentials token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<HttpAuth>,
    /// Follow redirects, at most 10 hops.
    #[serde(default = "default_true")]
    pub follow_redirects: bool,
    /// Read at most this much of the body, then release the connection (bytes or quantity such as 1Mi).
    #[serde(default = "default_max_body", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_string_schema")]
    pub max_body_bytes: Option<IntOrString>,
    /// Expectations on the response.
    #[serde(default)]
    pub expect: HttpExpect,
    /// Dial this `host:port` (IPv6 in brackets) instead of resolving the URL's host, as curl's
    /// `--connect-to`: the Host header and TLS server name stay the URL's, the deny list applies
    /// to this address. Used for requests to the URL's own host and port (not redirects
    /// elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}$"),
        length(max = 261)
    )]
    pub connect_to: Option<String>,
}

fn default_max_body() -> Option<IntOrString> {
    Some(IntOrString::String("1Mi".into()))
}

/// HTTP request methods Canary may send.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl HttpMethod {
    /// The method's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
        }
    }
}

/// HTTP versions a probe may speak.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum HttpVersion {
    #[default]
    #[serde(rename = "1.1")]
    Http11,
    #[serde(rename = "2")]
    Http2,
}

/// One request header.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.value) != has(self.valueFrom)",
    "message": "exactly one of value or valueFrom must be set"
}]))]
pub struct HttpHeader {
    /// Header name.
    #[schemars(
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"),
        length(min = 1, max = 256)
    )]
    pub name: String,
    /// Literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub value: Option<String>,
    /// Value read from a Secret or ConfigMap key in the HealthCheck's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueSource>,
}

/// Validates `spec.http.connectTo`: a host name or IP address and a port, an IPv6 address in
/// brackets (`[::1]:8443`), so the port is never ambiguous.
pub(super) fn parse_connect_to(text: &str) -> Result<Endpoint, FieldError> {
    let field = "spec.http.connectTo";
    let error = |message: String| FieldError {
        field: field.into(),
        message,
    };
    if text.len() > 261 {
        return Err(error(format!(
            "{} characters exceed the limit of 261",
            text.len()
        )));
    }
    if !text.starts_with('[') && text.matches(':').count() > 1 {
        return Err(error(format!(
            "{text:?}: write an IPv6 address in brackets, as in [{}]:443",
            text.rsplit_once(':').map_or(text, |(host, _)| host)
        )));
    }
    if !text.starts_with('[') && !text.contains(':') {
        return Err(error(format!(
            "{text:?}: expected host:port (the port is required)"
        )));
    }
    parse_host_port(field, text, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> String {
        let error = parse_connect_to(text).unwrap_err();
        assert_eq!(error.field, "spec.http.connectTo");
        error.message
    }

    #[test]
    fn connect_to_takes_a_host_or_address_and_a_port() {
        let ok = |text: &str| parse_connect_to(text).unwrap().to_string();
        assert_eq!(ok("127.0.0.1:8443"), "127.0.0.1:8443");
        assert_eq!(ok("lb.example.com:443"), "lb.example.com:443");
        assert_eq!(ok("[::1]:8443"), "[::1]:8443");
        assert_eq!(ok("[2001:db8::1]:80"), "[2001:db8::1]:80");
    }

    #[test]
    fn bad_connect_to_values_say_what_is_wrong() {
        assert!(message("127.0.0.1").contains("the port is required"));
        assert!(message("::1:443").contains("IPv6 address in brackets, as in [::1]:443"));
        assert!(message("[::1]").contains("expected host:port"));
        assert!(message("[::1:443").contains("missing ']'"));
        assert!(message("[lb]:443").contains("is not an IPv6 address"));
        assert!(message("lb:0").contains("from 1 to 65535"));
        assert!(message("lb:70000").contains("from 1 to 65535"));
        assert!(message("lb:https").contains("from 1 to 65535"));
        assert!(message("l b:443").contains("is not a host name or IP address"));
        assert!(message(":443").contains("is not a host name or IP address"));
        assert!(message(&format!("{}:1", "a".repeat(300))).contains("limit of 261"));
    }
}
