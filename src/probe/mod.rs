//! The probe engine: takes a resolved [`Probe`] (secrets already fetched) and returns an
//! [`Outcome`]. It knows nothing of Kubernetes, so `canary check`, standalone mode and the
//! operator share it unchanged.
//!
//! Every probe opens a fresh connection owned by the probe's scope and bounded by one deadline,
//! so whatever happens (success, error, timeout, huge body) the socket is closed when
//! [`run`] returns.

mod body;
mod budget;
mod build;
mod cel;
mod certs;
mod dns;
mod facts;
mod grpc;
mod headers;
mod heap;
mod http;
mod http2;
mod json;
mod net;
mod oauth2;
mod scoped;
mod served;
mod sniff;
mod tls;
mod trace;

use std::{sync::Arc, time::Duration};

use ipnet::IpNet;
use tokio::time::Instant;

use crate::api::{Endpoint, Reason, ValidDns, display_text, fmt_go};

pub use budget::{
    BodyBudget, DEFAULT_BODY_BUFFER_BUDGET, DEFAULT_BODY_BUFFER_BUDGET_FLAG, Reservation,
};
pub use build::{
    BuildError, NEEDS_OPERATOR, ReferenceError, ReferenceSource, build, heartbeat_token,
};
pub use cel::{CelFailure, CelRun, in_flight as cel_in_flight};
pub use certs::CertFacts;
pub use dns::{DnsFacts, first_nameserver};
pub use facts::{Facts, KindFacts, TlsCapture};
pub use grpc::{GrpcCheck, GrpcFacts, code_name, serving_name};
pub use http::{HttpCheck, ResolvedHeader};
pub use net::{canonical as canonical_ip, denied_in, prober_fault};
pub use oauth2::{
    MAX_MARGIN, MAX_TOKEN_RESPONSE, MAX_TOKEN_TTL, OAuth2Client, UNTIMED_TOKEN_TTL, margin,
};
pub use served::ExpectedLeaf;
pub use tls::{TlsSettings, provider, system_roots};
pub use trace::{Phase, PhaseTimings};

/// Redirect hops followed before giving up with `TooManyRedirects`.
pub const MAX_REDIRECTS: usize = 10;

/// A resolved, runnable probe.
#[derive(Debug, Clone)]
pub struct Probe {
    pub target: Target,
    /// One deadline for the whole probe, DNS through body.
    pub timeout: Duration,
    /// TLS expectations and trust, for https URLs, tls probes, DNS over TLS and gRPC with tls.
    pub tls: Arc<TlsSettings>,
}

/// What to probe.
#[derive(Debug, Clone)]
pub enum Target {
    Http(Box<HttpCheck>),
    Tcp(Endpoint),
    Tls(Endpoint),
    Dns(Box<ValidDns>),
    Grpc(Box<GrpcCheck>),
}

/// Operator-wide probing policy.
#[derive(Debug, Clone)]
pub struct ProbeContext {
    /// Resolved addresses in these networks are never connected to (`TargetDenied`).
    pub deny: Vec<IpNet>,
    /// The User-Agent of HTTP probes (a header in the spec overrides it).
    pub user_agent: String,
    /// Body bytes all probes may buffer at once (`--body-buffer-budget`).
    pub body_budget: BodyBudget,
}

impl Default for ProbeContext {
    fn default() -> Self {
        Self {
            deny: default_deny(),
            user_agent: user_agent(None),
            body_budget: BodyBudget::default(),
        }
    }
}

impl ProbeContext {
    /// The default context with another deny list.
    pub fn denying(deny: Vec<IpNet>) -> Self {
        Self {
            deny,
            ..Self::default()
        }
    }

    /// The default context with the operator's policy: its deny list and body budget.
    pub fn with_policy(policy: &ProbePolicy) -> Self {
        Self {
            deny: policy.deny_cidrs.clone(),
            body_budget: BodyBudget::new(policy.body_buffer_budget),
            ..Self::default()
        }
    }
}

/// The operator-wide probing policy as flags set it, for every mode.
#[derive(Debug, Clone)]
pub struct ProbePolicy {
    /// Networks probes may never connect to.
    pub deny_cidrs: Vec<IpNet>,
    /// Body bytes all probes may buffer at once.
    pub body_buffer_budget: u64,
}

impl Default for ProbePolicy {
    fn default() -> Self {
        Self {
            deny_cidrs: default_deny(),
            body_buffer_budget: DEFAULT_BODY_BUFFER_BUDGET,
        }
    }
}

/// Who probes when no identity is given (`--leader-election-identity`, `POD_NAME`): the host
/// name and process id, as `status.probedBy` and Lease holders name a replica.
pub fn default_identity() -> String {
    let host =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "canary".into());
    format!("{}-{}", host.trim(), std::process::id())
}

/// `canary/<version>`, with the replica's identity when there is one (`canary/0.1.0 (r2)`), so
/// a target's logs tell which replica probed.
pub fn user_agent(identity: Option<&str>) -> String {
    let version = env!("CARGO_PKG_VERSION");
    match identity {
        Some(identity) => format!("canary/{version} ({identity})"),
        None => format!("canary/{version}"),
    }
}

/// The default deny list, as the `--deny-cidrs` flag writes it: link-local in both families
/// (cloud metadata at 169.254.169.254, EC2's IPv6 metadata at fd00:ec2::254), Alibaba's
/// metadata address, and "this network" (0.0.0.0/8, ::), which reaches the local host.
pub const DEFAULT_DENY_CIDRS: &str =
    "169.254.0.0/16,fe80::/10,fd00:ec2::254/128,100.100.100.200/32,0.0.0.0/8,::/128";

/// [`DEFAULT_DENY_CIDRS`] parsed.
pub fn default_deny() -> Vec<IpNet> {
    DEFAULT_DENY_CIDRS
        .split(',')
        .filter_map(|net| net.parse().ok())
        .collect()
}

/// The result of one probe. Every word a target chose in it (message, certificate names, DNS
/// answers) is shown through [`display_text`]: [`run`] is the one place that makes it so.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub reason: Reason,
    pub message: String,
    /// Wall-clock start.
    pub started_at: jiff::Timestamp,
    pub duration: Duration,
    pub phases: PhaseTimings,
    /// What the probe learned: TLS session facts and its kind's own.
    pub facts: Facts,
}

impl Outcome {
    /// Whether every expectation held.
    pub fn success(&self) -> bool {
        self.reason == Reason::Succeeded
    }

    /// Whether a probe ran (false for reports such as Suspended or InvalidSpec).
    pub fn ran(&self) -> bool {
        !matches!(
            self.reason,
            Reason::Suspended
                | Reason::Pending
                | Reason::InvalidSpec
                | Reason::ReferenceNotFound
                | Reason::ReferenceForbidden
                | Reason::Reconciling
        )
    }

    /// An outcome for a check that could not run (invalid spec, missing reference).
    pub fn not_run(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: shown_message(message.into()),
            started_at: jiff::Timestamp::now(),
            duration: Duration::ZERO,
            phases: PhaseTimings::default(),
            facts: Facts::default(),
        }
    }
}

/// Longest message an outcome carries (the API convention's limit for condition messages).
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// `message` as an outcome carries it: through [`display_text`], cut to [`MAX_MESSAGE_CHARS`]
/// (the message itself when nothing needed changing, as almost always).
fn shown_message(message: String) -> String {
    let changed = match display_text(&message, MAX_MESSAGE_CHARS) {
        std::borrow::Cow::Owned(shown) => Some(shown),
        std::borrow::Cow::Borrowed(_) => None,
    };
    changed.unwrap_or(message)
}

/// Why a probe failed, as it travels up from where it was detected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: Reason,
    pub message: String,
}

impl Failure {
    fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// Runs one probe to completion or to its deadline; never panics on target behaviour.
pub async fn run(check: &Probe, ctx: &ProbeContext) -> Outcome {
    let started_at = jiff::Timestamp::now();
    let start = Instant::now();
    let trace = trace::Trace::new(start);
    let deadline = start + check.timeout;
    let result = tokio::time::timeout_at(deadline, probe(check, ctx, &trace, deadline)).await;
    let duration = start.elapsed();
    let phase = trace.phase();
    let learned = trace.finish();
    let (reason, message) = match result {
        Ok(Ok(message)) => (Reason::Succeeded, message),
        Ok(Err(failure)) => (failure.reason, failure.message),
        // A token endpoint that does not answer is the credentials' failure, not the target's.
        Err(_) => (
            match phase {
                Phase::Auth => Reason::AuthFailed,
                _ => Reason::Timeout,
            },
            format!(
                "no answer within the {} timeout (during {}){}",
                fmt_go(check.timeout),
                phase.describe(),
                learned
                    .note
                    .as_ref()
                    .map_or_else(String::new, |n| format!("; {n}"))
            ),
        ),
    };
    Outcome {
        reason,
        message: shown_message(message),
        started_at,
        duration,
        phases: learned.phases,
        facts: learned.facts.shown(),
    }
}

async fn probe(
    check: &Probe,
    ctx: &ProbeContext,
    trace: &trace::Trace,
    deadline: Instant,
) -> Result<String, Failure> {
    match &check.target {
        Target::Http(http) => oauth2::probe(http, &check.tls, ctx, trace, deadline).await,
        Target::Dns(dns) => dns::probe(dns, &check.tls, ctx, trace).await,
        Target::Grpc(grpc) => grpc::probe(grpc, &check.tls, ctx, trace, deadline).await,
        Target::Tcp(endpoint) => {
            let addrs = net::resolve(&endpoint.host, endpoint.port, ctx, trace).await?;
            let (_stream, addr) = net::connect(&addrs, ctx, trace).await?;
            Ok(format!("connected to {addr}"))
        }
        Target::Tls(endpoint) => {
            let addrs = net::resolve(&endpoint.host, endpoint.port, ctx, trace).await?;
            let (stream, addr) = net::connect(&addrs, ctx, trace).await?;
            let name = check
                .tls
                .policy
                .server_name
                .as_deref()
                .unwrap_or(&endpoint.host);
            let session =
                tls::handshake(stream, name, &check.tls, true, tls::Alpn::None, trace).await?;
            Ok(format!(
                "TLS handshake with {addr} succeeded ({})",
                session.summary()
            ))
        }
    }
}
