//! `HealthCheck` status: Kubernetes-shaped state (conditions, observedGeneration) plus the
//! last result and the TLS facts of the served certificate.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{locations::LocationStatus, reason::Reason};

/// The condition type Canary maintains.
pub const READY: &str = "Ready";
/// kstatus' condition for a spec or reference that needs a human (True only then).
pub const STALLED: &str = "Stalled";
/// True once a verdict (pass or fail) exists for the condition's `observedGeneration`, so
/// `kubectl wait --for=condition=Probed` returns on the first verdict of a new generation.
pub const PROBED: &str = "Probed";

/// Status of the `Ready` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadyStatus {
    /// Passing.
    True,
    /// Failing, or cannot run.
    False,
    /// Not run yet, suspended, or between thresholds on a first run.
    Unknown,
}

impl ReadyStatus {
    /// The condition status as Kubernetes writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }

    /// Parses a condition status; anything unexpected reads as Unknown.
    pub fn parse(value: &str) -> Self {
        match value {
            "True" => Self::True,
            "False" => Self::False,
            _ => Self::Unknown,
        }
    }
}

impl HealthCheckStatus {
    /// The Ready condition, if any.
    pub fn ready_condition(&self) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == READY)
    }

    /// The Ready condition's status, if the condition exists.
    pub fn ready(&self) -> Option<ReadyStatus> {
        self.ready_condition()
            .map(|c| ReadyStatus::parse(&c.status))
    }

    /// The Probed condition, if any.
    pub fn probed_condition(&self) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == PROBED)
    }

    /// The Ready condition's reason, when it is one of the closed set.
    pub fn ready_reason(&self) -> Option<Reason> {
        let reason = &self.ready_condition()?.reason;
        Reason::ALL.iter().copied().find(|r| r.as_str() == reason)
    }
}

/// Observed state of a HealthCheck.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckStatus {
    /// The spec generation this status reflects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// What is probed: the URL without credentials or query, or `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The replica that probes this check (its `--leader-election-identity`, the pod name):
    /// with `--sharding shards` each replica probes its share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probed_by: Option<String>,
    /// `Ready`: True = passing, False = failing, Unknown = not run yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// When the last probe ran. Written on a change of state, on a run-now and on the
    /// heartbeat (`--status-heartbeat`), not after every run: metrics carry every run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<Time>,
    /// When a probe last succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<Time>,
    /// When a probe last failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<Time>,
    /// When the next probe is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<Time>,
    /// Failures in a row.
    #[serde(default)]
    pub consecutive_failures: i64,
    /// Successes in a row.
    #[serde(default)]
    pub consecutive_successes: i64,
    /// The last probe's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<Box<LastResult>>,
    /// Facts about the served certificate and TLS session, reported even when verification fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Box<TlsFacts>>,
    /// The value of the `canary.dev/run-now` annotation last handled: the run it asked for has
    /// completed and this status carries it (Flux's `lastHandledReconcileAt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_run_now: Option<String>,
    /// Heartbeat checks: when the last ping arrived (written by the replica that received it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ping_time: Option<Time>,
    /// Heartbeat checks: what the last ping said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_ping: Option<Box<LastPing>>,
    /// Hourly runs, successes and latency of up to 30 days, compact and versioned (at most
    /// 3 KiB), so a restarted or newly assigned replica resumes the uptime history. Refreshed
    /// at most once per `--status-history-interval`, with a write that happens anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
    /// Each location's verdict, for a check with `spec.locations` (written by the hub).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub locations: Vec<LocationStatus>,
    /// Locations passing of those listed, e.g. `2/3` (the LOCATIONS column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locations_passing: Option<String>,
}

/// What a heartbeat ping reported.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PingResult {
    /// The job finished and succeeded (no suffix, or exit code 0).
    Success,
    /// The job started (`/start`).
    Start,
    /// The job finished and failed (`/fail`, or a non-zero exit code).
    Fail,
}

impl PingResult {
    /// The name as in status and the `result` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Start => "start",
            Self::Fail => "fail",
        }
    }
}

/// The last ping of a heartbeat check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastPing {
    /// success, start or fail.
    pub result: PingResult,
    /// The exit code the job reported (`/{0-255}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The ping's `msg` or the first 1 KiB of its body (redacted with --ui-redact).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The run id the job sent (`rid`, at most 64 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// Result of one probe.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastResult {
    /// Whether every expectation held.
    pub success: bool,
    /// Why, from one closed set shared with metrics and Events.
    pub reason: Reason,
    /// Human-readable explanation.
    pub message: String,
    /// Whole probe duration, e.g. `0.183s`.
    pub duration: String,
    /// HTTP status code of the final response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    /// Time spent in each phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<PhaseDurations>,
    // Boxed, as gRPC's: inline they widened every copy of every check's last result by 200
    // bytes, of every kind.
    /// What the DNS reply said (dns probes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Box<DnsResult>>,
    /// What the health service said (grpc probes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<Box<GrpcResult>>,
}

impl LastResult {
    /// A result with nothing a probe learned yet (no HTTP status, phases or kind facts): what
    /// a kind learned is added by its own code, so a new kind's field is added here only.
    pub fn new(success: bool, reason: Reason, message: String, duration: String) -> Self {
        Self {
            success,
            reason,
            message,
            duration,
            http_status: None,
            phases: None,
            dns: None,
            grpc: None,
        }
    }
}

/// The DNS reply of the last probe.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsResult {
    /// The server asked, `address:port`.
    pub server: String,
    /// udp, tcp or tls (tcp after a truncated UDP answer).
    pub transport: String,
    /// Response code, e.g. NOERROR.
    pub rcode: String,
    /// Header flags that were set, as dig names them (qr, aa, tc, rd, ra, ad, cd).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// The first 10 records of the queried type, as `dig +short` prints them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<String>,
    /// Records of the queried type in the answer section (all of them, not only those shown).
    #[serde(default)]
    pub answer_count: i64,
    /// Lowest TTL in the answer section, in seconds.
    #[serde(default, rename = "minTTL", skip_serializing_if = "Option::is_none")]
    pub min_ttl: Option<i64>,
    /// The UDP answer was truncated (TC bit), so the query was repeated over TCP.
    #[serde(default)]
    pub truncated: bool,
}

/// The health service's answer of the last probe.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrpcResult {
    /// The call's gRPC status code (0 = OK, 5 = NOT_FOUND, 12 = UNIMPLEMENTED, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i32>,
    /// The status code's name, e.g. OK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// SERVING, NOT_SERVING or UNKNOWN, when the call succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_status: Option<String>,
}

/// Per-phase durations, e.g. `0.012s`; absent when the phase did not happen.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseDurations {
    /// Obtaining the OAuth2 token (`spec.http.auth`), when one was fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<String>,
    /// DNS: sending the query and reading the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}

/// What the TLS handshake showed, captured before verification.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsFacts {
    /// Negotiated protocol version, e.g. `TLSv1.3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Negotiated cipher suite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher_suite: Option<String>,
    /// Leaf subject DN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Leaf issuer DN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Leaf serial number (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// Leaf DNS SANs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    /// Leaf validity start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Time>,
    /// Leaf expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
    /// Earliest expiry of any certificate the server sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_earliest_not_after: Option<Time>,
    /// Whether chain, hostname and validity window verified.
    #[serde(default)]
    pub verified: bool,
}
