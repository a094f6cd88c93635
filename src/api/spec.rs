//! `HealthCheck` spec: what to probe and what to expect, as users write it. Each probe kind's
//! own types live in its module (`http`, `tcp`, `tls`, `dns`, `grpc`); the HTTP expectations
//! are still here.
//!
//! Field shapes, defaults and simple constraints live in the generated OpenAPI schema so the
//! API server rejects bad input early; [`crate::api::validate`] re-checks everything because
//! not every cluster enforces every rule (and files given to `canary check` meet no API server).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    cronjob::CronJobProbe,
    dns::DnsProbe,
    duration::GoDuration,
    expect::{HeaderAssertion, JsonAssertion},
    grpc::GrpcProbe,
    heartbeat::HeartbeatProbe,
    http::HttpProbe,
    locations::Locations,
    maintenance::MaintenanceWindow,
    status::HealthCheckStatus,
    tcp::SocketTarget,
    tls::TlsPolicy,
};

/// Default `spec.interval`.
pub const DEFAULT_INTERVAL: &str = "60s";
/// Default `spec.timeout`.
pub const DEFAULT_TIMEOUT: &str = "10s";

/// A periodic HTTP, TCP, TLS, DNS or gRPC check of one endpoint, or a heartbeat a job pushes, with its expectations.
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
    printcolumn = r#"{"name": "Locations", "type": "string", "jsonPath": ".status.locationsPassing", "description": "Locations passing of those listed in spec.locations, e.g. 2/3"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name": "Target", "type": "string", "priority": 1, "jsonPath": ".status.target", "description": "What is probed (URL without credentials or query, host:port, the DNS query, or the heartbeat expected)"}"#,
    printcolumn = r#"{"name": "Interval", "type": "string", "priority": 1, "jsonPath": ".spec.interval", "description": "How often it is probed"}"#,
    printcolumn = r#"{"name": "Probed-By", "type": "string", "priority": 1, "jsonPath": ".status.probedBy", "description": "The replica that probes it"}"#,
    printcolumn = r#"{"name": "Message", "type": "string", "priority": 1, "jsonPath": ".status.conditions[?(@.type==\"Ready\")].message", "description": "Why the check is in this state"}"#
)]
#[x_kube(validation = Rule::new(
    "[has(self.http), has(self.tcp), has(self.tls), has(self.dns), has(self.grpc), has(self.heartbeat), has(self.cronJob)].filter(x, x).size() == 1"
).message("exactly one of spec.http, spec.tcp, spec.tls, spec.dns, spec.grpc, spec.heartbeat or spec.cronJob must be set"))]
#[x_kube(validation = Rule::new(
    "!has(self.heartbeat) || ((!has(self.interval) || self.interval == '60s') && (!has(self.timeout) || self.timeout == '10s'))"
).message("spec.interval and spec.timeout do not apply to heartbeat checks (pings are judged against period or schedule, and grace)"))]
#[x_kube(validation = Rule::new(
    "!has(self.cronJob) || ((!has(self.interval) || self.interval == '60s') && (!has(self.timeout) || self.timeout == '10s'))"
).message("spec.interval and spec.timeout do not apply to cronJob checks (runs are judged at the CronJob's scheduled times)"))]
#[x_kube(validation = Rule::new(
    "!has(self.locations) || !(has(self.heartbeat) || has(self.cronJob))"
).message("spec.locations applies to http, tcp, tls, dns and grpc checks, not to heartbeat or cronJob checks"))]
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
    pub http: Option<Box<HttpProbe>>,
    /// TCP connect only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<SocketTarget>,
    /// TLS handshake only, no HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<SocketTarget>,
    /// A DNS query to one server over UDP, TCP or TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Box<DnsProbe>>,
    /// A grpc.health.v1 health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<Box<GrpcProbe>>,
    /// A push check: the job pings Canary's heartbeat listener; fails when pings stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Box<HeartbeatProbe>>,
    /// A CronJob's scheduled runs: each must start within startGrace, finish and succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_job: Option<Box<CronJobProbe>>,
    /// TLS expectations; apply to https URLs, tls probes, DNS over TLS and gRPC with tls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_policy: Option<Box<TlsPolicy>>,
    /// Recurring windows in which failures change neither Ready nor raise Warning Events
    /// (probing goes on; `canary_check_in_maintenance` is 1 and the shipped alerts skip it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub maintenance_windows: Vec<MaintenanceWindow>,
    /// Probe from these locations (the spokes whose `--location` is listed) instead of here,
    /// and judge by quorum: Ready False once `minFailing` of them fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locations: Option<Locations>,
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

/// `true`, the default of `followRedirects` and `tlsPolicy.verify`.
pub(super) fn default_true() -> bool {
    true
}

/// Schema of an integer-or-string field, short enough for `kubectl explain`.
pub(super) fn int_or_string_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
    })
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
