//! `spec.http`: an HTTP(S) request (method, version, headers, body, auth). Its expectations
//! (`HttpExpect`) are still in `spec.rs`, its validation in `validate.rs` and its valid form in
//! `valid.rs`, beside the helpers they share with gRPC metadata and references.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    auth::HttpAuth,
    spec::{HttpExpect, ValueSource, default_true, int_or_string_schema},
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
