//! The families of what a probe learned beyond its verdict (the HTTP status, TLS session, DNS
//! reply, gRPC call): one [`KindFamily`] variant per family and one [`KindSeries`] field per
//! value, recorded from the outcome's [`Facts`]. A new probe kind's metrics are added here only.

use crate::probe::{Facts, KindFacts, TlsCapture};

/// One family of a kind's facts (every one a gauge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KindFamily {
    HttpStatus,
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
    /// When a heartbeat check's last ping arrived.
    HeartbeatLastPing,
}

impl KindFamily {
    /// Every kind family.
    pub(super) const ALL: [KindFamily; 9] = [
        Self::HttpStatus,
        Self::TlsCertNotAfter,
        Self::TlsChainEarliestNotAfter,
        Self::TlsVersion,
        Self::DnsResponseCode,
        Self::DnsAnswerRecords,
        Self::GrpcStatusCode,
        Self::GrpcServingStatus,
        Self::HeartbeatLastPing,
    ];

    /// The exposed name.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::HttpStatus => "canary_check_http_status_code",
            Self::TlsCertNotAfter => "canary_tls_cert_not_after_timestamp_seconds",
            Self::TlsChainEarliestNotAfter => {
                "canary_tls_chain_earliest_not_after_timestamp_seconds"
            }
            Self::TlsVersion => "canary_tls_version_info",
            Self::DnsResponseCode => "canary_dns_response_code",
            Self::DnsAnswerRecords => "canary_dns_answer_records",
            Self::GrpcStatusCode => "canary_grpc_status_code",
            Self::GrpcServingStatus => "canary_grpc_serving_status",
            Self::HeartbeatLastPing => "canary_heartbeat_last_ping_timestamp_seconds",
        }
    }

    /// The HELP text.
    pub(super) fn help(self) -> &'static str {
        match self {
            Self::HttpStatus => "HTTP status of the last response.",
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
            Self::HeartbeatLastPing => {
                "Unix time the last ping of a heartbeat check arrived (on the replica judging it)."
            }
            Self::GrpcServingStatus => {
                "Serving status of the last health check answer (0 UNKNOWN, 1 SERVING, 2 NOT_SERVING); absent when the call failed."
            }
        }
    }

    /// Labels beyond namespace and name.
    pub(super) fn labels(self) -> &'static [&'static str] {
        match self {
            Self::TlsVersion => &["version"],
            _ => &[],
        }
    }
}

/// What one check's kind facts say, kept between runs.
#[derive(Debug, Default)]
pub(super) struct KindSeries {
    http_status: Option<u16>,
    cert_not_after: Option<f64>,
    chain_not_after: Option<f64>,
    tls_version: Option<Box<str>>,
    dns_rcode: Option<u16>,
    dns_answers: Option<usize>,
    grpc_status: Option<u32>,
    grpc_serving: Option<i64>,
    last_ping: Option<f64>,
}

/// One sample: a label beyond namespace and name, if any, and the value.
pub(super) type KindSample<'a> = (Option<(&'static str, &'a str)>, f64);

impl KindSeries {
    /// Records a run's facts; `kind` is the check's kind as in the spec (`grpc`). Values stay
    /// from an earlier run when a probe failed before an answer, except the serving status: a
    /// failed call says nothing about serving.
    pub(super) fn record(&mut self, facts: &Facts, kind: &str) {
        if let Some(tls) = facts.tls.as_ref().filter(|tls| tls.completed()) {
            self.record_tls(tls);
        }
        match &facts.kind {
            KindFacts::None => {}
            KindFacts::Http { status } => self.http_status = Some(*status),
            KindFacts::Dns(dns) => {
                self.dns_rcode = Some(dns.rcode);
                self.dns_answers = Some(dns.answer_count);
            }
            KindFacts::Grpc(grpc) => self.grpc_status = grpc.status_code.or(self.grpc_status),
            KindFacts::Heartbeat { last_ping } => {
                self.last_ping = last_ping.map(|at| at.as_millisecond() as f64 / 1000.0);
            }
        }
        if kind == "grpc" {
            self.grpc_serving = match &facts.kind {
                KindFacts::Grpc(grpc) => grpc.serving_status,
                _ => None,
            };
        }
    }

    /// TLS metrics come only from a completed handshake: the facts of a chain that failed
    /// verification are in status, but an expiry gauge of a certificate nobody trusts (a load
    /// balancer's default one, say) would feed the expiry alerts with a stranger's dates. The
    /// last trusted values stay until a handshake completes again.
    fn record_tls(&mut self, tls: &TlsCapture) {
        if let Some(leaf) = tls.leaf() {
            self.cert_not_after = Some(leaf.not_after.as_second() as f64);
        }
        if let Some(earliest) = tls.chain_earliest_not_after() {
            self.chain_not_after = Some(earliest.as_second() as f64);
        }
        if let Some(version) = &tls.version {
            self.tls_version = Some(version.as_str().into());
        }
    }

    /// The sample of `family`, if the check has one.
    pub(super) fn sample(&self, family: KindFamily) -> Option<KindSample<'_>> {
        let plain = |value: Option<f64>| value.map(|v| (None, v));
        match family {
            KindFamily::HttpStatus => plain(self.http_status.map(f64::from)),
            KindFamily::TlsCertNotAfter => plain(self.cert_not_after),
            KindFamily::TlsChainEarliestNotAfter => plain(self.chain_not_after),
            KindFamily::TlsVersion => {
                (self.tls_version.as_deref()).map(|v| (Some(("version", v)), 1.0))
            }
            KindFamily::DnsResponseCode => plain(self.dns_rcode.map(f64::from)),
            KindFamily::DnsAnswerRecords => plain(self.dns_answers.map(|n| n as f64)),
            KindFamily::GrpcStatusCode => plain(self.grpc_status.map(f64::from)),
            KindFamily::GrpcServingStatus => plain(self.grpc_serving.map(|n| n as f64)),
            KindFamily::HeartbeatLastPing => plain(self.last_ping),
        }
    }
}
