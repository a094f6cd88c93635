//! `HealthCheck` spec: what to probe and what to expect, as users write it.
//!
//! Field shapes, defaults and simple constraints live in the generated OpenAPI schema so the
//! API server rejects bad input early; [`crate::api::validate`] re-checks everything because
//! not every cluster enforces every rule (and files given to `canary check` meet no API server).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    dns::DnsProbe,
    duration::GoDuration,
    expect::{HeaderAssertion, JsonAssertion},
    grpc::GrpcProbe,
    maintenance::MaintenanceWindow,
    status::HealthCheckStatus,
};

/// Default `spec.interval`.
pub const DEFAULT_INTERVAL: &str = "60s";
/// Default `spec.timeout`.
pub const DEFAULT_TIMEOUT: &str = "10s";
/// Default `spec.tlsPolicy.minRemainingValidity` (14 days).
pub const DEFAULT_MIN_REMAINING_VALIDITY: &str = "336h";

/// A periodic HTTP, TCP, TLS, DNS or gRPC check of one endpoint, with its expectations.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "canary.dev",
    version = "v1alpha1",
    kind = "HealthCheck",
    plural = "healthchecks",
    shortname = "chc",
    category = "canary",
    namespaced,
    status = "HealthCheckStatus",
    derive = "PartialEq",
    doc = "HealthCheck declares an endpoint (HTTP/HTTPS, TCP, TLS, DNS or gRPC) that Canary probes periodically, and what a healthy answer looks like.",
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "description": "Ready condition: True = passing, False = failing, Unknown = not run yet"}"#,
    printcolumn = r#"{"name": "Reason", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].reason", "description": "Why the check is in this state"}"#,
    printcolumn = r#"{"name": "Since", "type": "date", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].lastTransitionTime", "description": "Since when Ready has had this status (true without a status write per run)"}"#,
    printcolumn = r#"{"name": "Latency", "type": "string", "jsonPath": ".status.lastResult.duration", "description": "Duration of the last probe written to status"}"#,
    printcolumn = r#"{"name": "Cert-Expires", "type": "string", "jsonPath": ".status.tls.notAfter", "description": "Expiry of the served leaf certificate"}"#,
    printcolumn = r#"{"name": "Last-Run", "type": "date", "priority": 1, "jsonPath": ".status.lastRunTime", "description": "When the last probe ran, as last written: refreshed on a change of state, on run-now and on the status heartbeat"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Target", "type": "string", "priority": 1, "jsonPath": ".status.target", "description": "What is probed (URL without credentials or query, host:port, or the DNS query)"}"#,
    printcolumn = r#"{"name": "Interval", "type": "string", "priority": 1, "jsonPath": ".spec.interval", "description": "How often it is probed"}"#,
    printcolumn = r#"{"name": "Probed-By", "type": "string", "priority": 1, "jsonPath": ".status.probedBy", "description": "The replica that probes it"}"#,
    printcolumn = r#"{"name": "Message", "type": "string", "priority": 1, "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message", "description": "Why the check is in this state"}"#
)]
#[x_kube(validation = Rule::new(
    "[has(self.http), has(self.tcp), has(self.tls), has(self.dns), has(self.grpc)].filter(x, x).size() == 1"
).message("exactly one of spec.http, spec.tcp, spec.tls, spec.dns or spec.grpc must be set"))]
#[x_kube(validation = Rule::new(
    "!has(self.timeout) || !has(self.interval) || duration(self.timeout) < duration(self.interval)"
).message(Message::Expression(
    // The values given (defaults filled in), so `kubectl apply` says what to change. Both are
    // strings of at most 32 characters: the estimated cost stays tiny.
    "'spec.timeout (' + self.timeout + ') must be shorter than spec.interval (' + self.interval + ')'".into()
)).field_path(".timeout"))]
#[x_kube(validation = Rule::new(
    "!has(self.interval) || duration(self.interval) >= duration('1s')"
).message("spec.interval must be at least 1s").field_path(".interval"))]
#[x_kube(validation = Rule::new(
    "!has(self.interval) || duration(self.interval) <= duration('24h')"
).message("spec.interval must be at most 24h").field_path(".interval"))]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckSpec {
    /// How often to probe (Go duration, 1s to 24h).
    #[serde(default = "default_interval")]
    pub interval: GoDuration,
    /// Deadline for one whole probe, DNS through body; must be shorter than interval.
    #[serde(default = "default_timeout")]
    pub timeout: GoDuration,
    /// Pause probing without forgetting state.
    #[serde(default)]
    pub suspend: bool,
    /// Consecutive failures before Ready turns False.
    #[serde(default = "default_threshold")]
    #[schemars(range(min = 1, max = 1000))]
    pub failure_threshold: i32,
    /// Consecutive successes before Ready turns True again.
    #[serde(default = "default_threshold")]
    #[schemars(range(min = 1, max = 1000))]
    pub success_threshold: i32,
    /// HTTP or HTTPS request and its expectations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
    /// TCP connect only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<SocketTarget>,
    /// TLS handshake only, no HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SocketTarget>,
    /// A DNS query to one server over UDP, TCP or TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsProbe>,
    /// A grpc.health.v1 health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcProbe>,
    /// TLS expectations; apply to https URLs, tls probes, DNS over TLS and gRPC with tls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_policy: Option<TlsPolicy>,
    /// Recurring windows in which failures change neither Ready nor raise Warning Events
    /// (probing goes on; `canary_check_in_maintenance` is 1 and the shipped alerts skip it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub maintenance_windows: Vec<MaintenanceWindow>,
}

fn default_interval() -> GoDuration {
    GoDuration::new(DEFAULT_INTERVAL)
}

fn default_timeout() -> GoDuration {
    GoDuration::new(DEFAULT_TIMEOUT)
}

fn default_threshold() -> i32 {
    1
}

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

fn default_true() -> bool {
    true
}

fn default_max_body() -> Option<IntOrString> {
    Some(IntOrString::String("1Mi".into()))
}

/// Schema of an integer-or-string field, short enough for `kubectl explain`.
fn int_or_string_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
    })
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

/// A key of a Secret or ConfigMap in the HealthCheck's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.secretKeyRef) != has(self.configMapKeyRef)",
    "message": "exactly one of secretKeyRef or configMapKeyRef must be set"
}]))]
pub struct ValueSource {
    /// A key of a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
    /// A key of a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
}

/// Name and key of a Secret or ConfigMap (same namespace only).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub struct KeyRef {
    /// Object name.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(min = 1, max = 253)
    )]
    pub name: String,
    /// Key within the object's data.
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"), length(min = 1, max = 253))]
    pub key: String,
}

/// Expectations on an HTTP response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.maxDuration) || duration(self.maxDuration) <= duration('24h')",
    "message": "spec.http.expect.maxDuration must be at most 24h",
    "fieldPath": ".maxDuration"
}]))]
pub struct HttpExpect {
    /// Accepted status codes (200) or classes ("2xx").
    #[serde(default = "default_status")]
    #[schemars(length(min = 1, max = 64), schema_with = "status_list_schema")]
    pub status: Vec<IntOrString>,
    /// The body (up to maxBodyBytes) must contain this text (matched while streaming).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub body_contains: Option<String>,
    /// The body (up to maxBodyBytes) must not contain this text (matched while streaming).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub body_not_contains: Option<String>,
    /// The first regexBodyLimit bytes of the body must match this regular expression (RE2
    /// syntax, linear time, matched on bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub body_regex: Option<String>,
    /// How much of the body bodyRegex sees (bytes or quantity; default 1Mi, at most 4Mi): the
    /// only expectation that holds body bytes in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_string_schema")]
    pub regex_body_limit: Option<IntOrString>,
    /// Latency budget: a slower response fails with reason Slow (at most 24h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<GoDuration>,
    /// Assertions on the body parsed as JSON (RFC 9535 JSONPath), all must hold; the body is
    /// buffered like bodyRegex's, so one larger than regexBodyLimit fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub json: Vec<JsonAssertion>,
    /// Assertions on the last response's headers, all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub headers: Vec<HeaderAssertion>,
    /// A CEL expression over body (the body parsed as JSON, or its text), headers (lower-case
    /// names, first value) and status (int) that must be true, such as
    /// `body.status == 'UP' && size(body.items) > 0`. Comprehensions nest at most 2 deep; the
    /// body is buffered like bodyRegex's, so one larger than regexBodyLimit fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    pub cel: Option<String>,
}

impl Default for HttpExpect {
    fn default() -> Self {
        Self {
            status: default_status(),
            body_contains: None,
            body_not_contains: None,
            body_regex: None,
            regex_body_limit: None,
            max_duration: None,
            json: Vec::new(),
            headers: Vec::new(),
            cel: None,
        }
    }
}

fn default_status() -> Vec<IntOrString> {
    vec![IntOrString::String("2xx".into())]
}

/// The CEL rule on `spec.http.expect.status`: codes 100 to 599 (integers or strings) and
/// classes `1xx` to `5xx`.
const STATUS_RULE: &str = "self.all(s, type(s) == int ? s >= 100 && s <= 599 : size(s) == 3 && \
    ['1', '2', '3', '4', '5'].exists(c, s == c + 'xx' || (s >= c + '00' && s <= c + '99' && \
    ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'].exists(d, s.endsWith(d)))))";

fn status_list_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "minItems": 1,
        "maxItems": 64,
        "default": ["2xx"],
        // The anyOf below accepts any string through its integer branch in kube-apiserver
        // (int-or-string), so the pattern is enforced again here, without a regex: kube
        // estimates an int-or-string at up to 3 MiB (kube < 1.34 ignores maxLength on it), and
        // `matches` over 64 of them costs 16x its per-rule limit, so the CRD would be refused.
        // A string has 3 characters: `Nxx`, or `N00` to `N99` (the range fixes the first two,
        // `endsWith` the last), N from 1 to 5. tests/crd.rs checks the cost stays low.
        "x-kubernetes-validations": [{
            "rule": STATUS_RULE,
            "message": "each status must be a code from 100 to 599 or a class such as \"2xx\""
        }],
        "items": {
            "x-kubernetes-int-or-string": true,
            "anyOf": [
                {"type": "integer", "minimum": 100, "maximum": 599},
                {"type": "string", "pattern": "^([1-5][0-9][0-9]|[1-5]xx)$"}
            ]
        }
    })
}

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

/// What a served certificate and TLS session must satisfy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsPolicy {
    /// Verify chain, hostname and validity window.
    #[serde(default = "default_true")]
    pub verify: bool,
    /// SNI and the name to verify; default: the target host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub server_name: Option<String>,
    /// Fail when the earliest expiry in the served chain is closer than this (at most 87600h).
    #[serde(default = "default_min_validity")]
    pub min_remaining_validity: GoDuration,
    /// Fail when less than this share (percent) of the leaf's lifetime remains; 0 disables.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub min_remaining_lifetime_percent: i32,
    /// Lowest acceptable TLS version.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Extra trusted CAs (PEM) from the same namespace; system roots still apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<ValueSource>,
    /// Names that must all be in the leaf certificate's SANs.
    #[serde(
        default,
        rename = "expectedDNSNames",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 64))]
    pub expected_dns_names: Vec<String>,
    /// Substring of the leaf certificate's issuer DN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub expected_issuer: Option<String>,
    /// SPKI pins (`sha256/BASE64`); a match on any certificate of the served chain passes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(regex(pattern = r"^sha256/[A-Za-z0-9+/]{43}=$"))
    )]
    pub pinned_public_keys: Vec<String>,
    /// Client certificate for mutual TLS, from a kubernetes.io/tls Secret in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificate>,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        Self {
            verify: true,
            server_name: None,
            min_remaining_validity: default_min_validity(),
            min_remaining_lifetime_percent: 0,
            min_version: TlsVersion::default(),
            ca_bundle: None,
            expected_dns_names: Vec::new(),
            expected_issuer: None,
            pinned_public_keys: Vec::new(),
            client_certificate: None,
        }
    }
}

fn default_min_validity() -> GoDuration {
    GoDuration::new(DEFAULT_MIN_REMAINING_VALIDITY)
}

/// Lowest acceptable TLS protocol version.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    V1_2,
    #[serde(rename = "1.3")]
    V1_3,
}

/// A kubernetes.io/tls Secret holding `tls.crt` and `tls.key`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertificate {
    /// Secret name in the HealthCheck's namespace.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(min = 1, max = 253)
    )]
    pub secret_name: String,
}
