//! What a probe learned about its target, beyond the verdict: one [`Facts`] on every
//! [`super::Outcome`]. TLS session facts are kept beside the kind's own, since four kinds
//! (http, tls, DNS over TLS, grpc with TLS) speak TLS and status and metrics show them alike;
//! everything else a kind learns is one variant of [`KindFacts`], so a new kind adds a variant
//! and every reader (status, metrics, `canary check`) is pointed at it by an exhaustive `match`.

use super::{CertFacts, DnsFacts, GrpcFacts, Outcome};
use crate::api::LastResult;

/// Facts of one probe, also when it failed or timed out after learning them.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Facts of the last TLS session, also when verification failed.
    pub tls: Option<TlsCapture>,
    /// What the probe's kind learned.
    pub kind: KindFacts,
}

/// What a probe learned that belongs to its kind.
#[derive(Debug, Clone, Default)]
pub enum KindFacts {
    /// Nothing beyond TLS: tcp and tls probes, a probe that failed before an answer, a check
    /// that did not run.
    #[default]
    None,
    /// The last HTTP status seen (http probes that got a response).
    Http { status: u16 },
    /// What the DNS reply said (dns probes that got one).
    Dns(DnsFacts),
    /// What the gRPC call returned (grpc probes that got an answer).
    Grpc(GrpcFacts),
    /// When a heartbeat check's last ping arrived (status has the ping itself).
    Heartbeat { last_ping: Option<jiff::Timestamp> },
}

impl Facts {
    /// These facts as they may be shown: every word a target chose made safe.
    pub(super) fn shown(self) -> Self {
        Self {
            tls: self.tls.map(TlsCapture::shown),
            kind: match self.kind {
                KindFacts::Dns(dns) => KindFacts::Dns(dns.shown()),
                kind @ (KindFacts::None
                | KindFacts::Http { .. }
                | KindFacts::Grpc(_)
                | KindFacts::Heartbeat { .. }) => kind,
            },
        }
    }
}

impl KindFacts {
    /// Writes these facts into their kind's part of `lastResult`.
    pub fn write_status(&self, result: &mut LastResult) {
        match self {
            Self::None | Self::Heartbeat { .. } => {}
            Self::Http { status } => result.http_status = Some(i32::from(*status)),
            Self::Dns(dns) => result.dns = Some(Box::new(dns.status())),
            Self::Grpc(grpc) => result.grpc = Some(Box::new(grpc.status())),
        }
    }

    /// Whether the run timed a probe (its duration is a latency for the duration histogram):
    /// not for a verdict on pushed pings.
    pub fn timed(&self) -> bool {
        !matches!(self, Self::Heartbeat { .. })
    }

    /// What the target answered, as `canary check` shows it: the HTTP status, the DNS
    /// response code, the gRPC serving status (else the call's status).
    pub fn answer(&self) -> Option<String> {
        match self {
            Self::None => None,
            Self::Http { status } => Some(status.to_string()),
            Self::Dns(dns) => Some(dns.rcode_name.clone()),
            Self::Grpc(grpc) => grpc.answer(),
            Self::Heartbeat { last_ping } => last_ping.map(|at| format!("last ping {at}")),
        }
    }
}

/// Each kind's facts by name, for tests and for code about one kind.
impl Outcome {
    /// The last HTTP status seen (http probes).
    pub fn http_status(&self) -> Option<u16> {
        match self.facts.kind {
            KindFacts::Http { status } => Some(status),
            _ => None,
        }
    }

    /// Facts of the last TLS session, also when verification failed.
    pub fn tls(&self) -> Option<&TlsCapture> {
        self.facts.tls.as_ref()
    }

    /// What the DNS reply said (dns probes that got one).
    pub fn dns(&self) -> Option<&DnsFacts> {
        match &self.facts.kind {
            KindFacts::Dns(dns) => Some(dns),
            _ => None,
        }
    }

    /// What the gRPC call returned (grpc probes that got an answer).
    pub fn grpc(&self) -> Option<&GrpcFacts> {
        match &self.facts.kind {
            KindFacts::Grpc(grpc) => Some(grpc),
            _ => None,
        }
    }
}

/// What a TLS handshake showed: negotiated parameters and the served chain.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsCapture {
    pub version: Option<String>,
    pub cipher_suite: Option<String>,
    /// Leaf first.
    pub chain: Vec<CertFacts>,
    /// Chain, hostname and validity window verified.
    pub verified: bool,
}

impl TlsCapture {
    /// Whether the handshake completed (a version was negotiated); a chain captured from a
    /// handshake that failed verification has facts but no version.
    pub fn completed(&self) -> bool {
        self.version.is_some()
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> Option<&CertFacts> {
        self.chain.first()
    }

    /// These facts as they may be shown: the certificates' names made safe (see
    /// [`CertFacts::shown`]).
    pub fn shown(self) -> Self {
        Self {
            chain: self.chain.iter().map(CertFacts::shown).collect(),
            ..self
        }
    }

    /// Earliest expiry of any certificate the server sent.
    pub fn chain_earliest_not_after(&self) -> Option<jiff::Timestamp> {
        self.chain.iter().map(|c| c.not_after).min()
    }
}
