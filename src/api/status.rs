//! `HealthCheck` status: Kubernetes-shaped state (conditions, observedGeneration) plus the
//! last result and the TLS facts of the served certificate.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::reason::Reason;

/// The condition type Canary maintains.
pub const READY: &str = "Ready";
/// kstatus' condition for a spec or reference that needs a human (True only then).
pub const STALLED: &str = "Stalled";

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
    /// `Ready`: True = passing, False = failing, Unknown = not run yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// When the last probe ran.
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
    pub last_result: Option<LastResult>,
    /// Facts about the served certificate and TLS session, reported even when verification fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFacts>,
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
}

/// Per-phase durations, e.g. `0.012s`; absent when the phase did not happen.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseDurations {
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
