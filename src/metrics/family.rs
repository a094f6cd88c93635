//! The per-check metric families as one enum: a family is a variant with its name, help, type
//! and labels written beside it, and [`super::check`] renders each by an exhaustive `match`, so
//! a probe kind's families are added in one place and cannot be paired with another's samples.

use prometheus::proto::MetricType;

/// One per-check family. [`Family::ALL`] is the order of registration and exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    Success,
    Duration,
    PhaseDuration,
    Runs,
    LastRun,
    LastSuccess,
    HttpStatus,
    ConsecutiveFailures,
    InMaintenance,
    /// Facts of a completed TLS handshake (https, tls, DNS over TLS, gRPC with TLS).
    TlsCertNotAfter,
    TlsChainEarliestNotAfter,
    TlsVersion,
    /// Facts of a dns probe's reply.
    DnsResponseCode,
    DnsAnswerRecords,
    /// Facts of a grpc probe's health call.
    GrpcStatusCode,
    GrpcServingStatus,
    /// What a check is: kind, target, allow-listed labels.
    Info,
}

impl Family {
    /// Every family, in exposition order.
    pub(super) const ALL: [Family; 17] = [
        Self::Success,
        Self::Duration,
        Self::PhaseDuration,
        Self::Runs,
        Self::LastRun,
        Self::LastSuccess,
        Self::HttpStatus,
        Self::ConsecutiveFailures,
        Self::InMaintenance,
        Self::TlsCertNotAfter,
        Self::TlsChainEarliestNotAfter,
        Self::TlsVersion,
        Self::DnsResponseCode,
        Self::DnsAnswerRecords,
        Self::GrpcStatusCode,
        Self::GrpcServingStatus,
        Self::Info,
    ];

    /// The exposed name.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Success => "canary_check_success",
            Self::Duration => "canary_check_duration_seconds",
            Self::PhaseDuration => "canary_check_phase_duration_seconds",
            Self::Runs => "canary_check_runs_total",
            Self::LastRun => "canary_check_last_run_timestamp_seconds",
            Self::LastSuccess => "canary_check_last_success_timestamp_seconds",
            Self::HttpStatus => "canary_check_http_status_code",
            Self::ConsecutiveFailures => "canary_check_consecutive_failures",
            Self::InMaintenance => "canary_check_in_maintenance",
            Self::TlsCertNotAfter => "canary_tls_cert_not_after_timestamp_seconds",
            Self::TlsChainEarliestNotAfter => {
                "canary_tls_chain_earliest_not_after_timestamp_seconds"
            }
            Self::TlsVersion => "canary_tls_version_info",
            Self::DnsResponseCode => "canary_dns_response_code",
            Self::DnsAnswerRecords => "canary_dns_answer_records",
            Self::GrpcStatusCode => "canary_grpc_status_code",
            Self::GrpcServingStatus => "canary_grpc_serving_status",
            Self::Info => "canary_check_info",
        }
    }

    /// The HELP text.
    pub(super) fn help(self) -> &'static str {
        match self {
            Self::Success => {
                "1 if the last probe passed, else 0; absent while the check does not run (suspended, invalid)."
            }
            Self::Duration => "Duration of whole probes.",
            Self::PhaseDuration => "Time spent in each phase of the last probe.",
            Self::Runs => "Probes run, by result and reason.",
            Self::LastRun => "Unix time of the last probe.",
            Self::LastSuccess => "Unix time of the last passing probe.",
            Self::HttpStatus => "HTTP status of the last response.",
            Self::ConsecutiveFailures => "Failed probes in a row.",
            Self::InMaintenance => "1 while the last probe fell in a maintenance window, else 0.",
            Self::TlsCertNotAfter => "Unix time the served leaf certificate expires.",
            Self::TlsChainEarliestNotAfter => {
                "Unix time the first certificate of the served chain expires."
            }
            Self::TlsVersion => "Negotiated TLS version (value 1).",
            Self::DnsResponseCode => {
                "Response code of the last DNS reply (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, ...)."
            }
            Self::DnsAnswerRecords => {
                "Records of the queried type in the answer section of the last DNS reply."
            }
            Self::GrpcStatusCode => {
                "gRPC status of the last health check call (0 OK, 5 NOT_FOUND, 12 UNIMPLEMENTED, 14 UNAVAILABLE, ...)."
            }
            Self::GrpcServingStatus => {
                "Serving status of the last health check answer (0 UNKNOWN, 1 SERVING, 2 NOT_SERVING); absent when the call failed."
            }
            Self::Info => {
                "What a check probes (value 1): kind, target without secrets, and allow-listed labels of the resource."
            }
        }
    }

    /// The Prometheus type.
    pub(super) fn kind(self) -> MetricType {
        match self {
            Self::Duration => MetricType::HISTOGRAM,
            Self::Runs => MetricType::COUNTER,
            _ => MetricType::GAUGE,
        }
    }

    /// Labels beyond namespace and name ([`Family::Info`]'s come from the allow-list).
    pub(super) fn labels(self) -> &'static [&'static str] {
        match self {
            Self::PhaseDuration => &["phase"],
            Self::Runs => &["result", "reason"],
            Self::TlsVersion => &["version"],
            _ => &[],
        }
    }
}
