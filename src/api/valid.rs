//! A spec after validation: every field typed and parsed once ([`super::validate()`] builds
//! it), so the engine never goes back to the strings users wrote. References (Secrets,
//! ConfigMaps) stay references: resolving them is the probe builder's job.

use std::{num::NonZeroU32, time::Duration};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use regex::bytes::Regex;

use super::{
    auth::ValidOAuth2,
    cronjob::ValidCronJob,
    dns::ValidDns,
    expect::{HeaderCheck, JsonCheck},
    grpc::ValidGrpc,
    heartbeat::ValidHeartbeat,
    http::HttpVersion,
    locations::ValidLocations,
    maintenance::MaintenanceWindows,
    tcp::Endpoint,
    tls::ValidTlsPolicy,
};

/// A spec that passed validation.
#[derive(Debug, Clone)]
pub struct ValidSpec {
    pub interval: Duration,
    /// One deadline for the whole probe, DNS through body.
    pub timeout: Duration,
    pub suspend: bool,
    pub failure_threshold: NonZeroU32,
    pub success_threshold: NonZeroU32,
    pub probe: ProbeKind,
    pub tls_policy: ValidTlsPolicy,
    pub maintenance: MaintenanceWindows,
    /// Probed by spokes of these locations, never here (`spec.locations`).
    pub locations: Option<ValidLocations>,
}

/// What to probe: exactly one kind per HealthCheck.
#[derive(Debug, Clone)]
pub enum ProbeKind {
    Http(Box<ValidHttp>),
    Tcp(Endpoint),
    Tls(Endpoint),
    Dns(Box<ValidDns>),
    Grpc(Box<ValidGrpc>),
    /// Pushed pings, judged by the runner's state machine: nothing to dial.
    Heartbeat(Box<ValidHeartbeat>),
    /// A CronJob's scheduled runs, read from the API server by the operator.
    CronJob(Box<ValidCronJob>),
}

impl ProbeKind {
    /// The kind's name as in the spec (`http`, `tcp`, `tls`, `dns`, `grpc`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Http(_) => "http",
            Self::Tcp(_) => "tcp",
            Self::Tls(_) => "tls",
            Self::Dns(_) => "dns",
            Self::Grpc(_) => "grpc",
            Self::Heartbeat(_) => "heartbeat",
            Self::CronJob(_) => "cronJob",
        }
    }

    /// What is probed, safe to show anywhere: the URL without userinfo or query,
    /// `host:port`, or the DNS query (`example.com A @10.96.0.10:53`).
    pub fn target(&self) -> String {
        match self {
            Self::Http(http) => match &http.connect_to {
                Some(dial) => format!("{} via {dial}", redact(&http.url)),
                None => redact(&http.url),
            },
            Self::Tcp(endpoint) | Self::Tls(endpoint) => endpoint.to_string(),
            Self::Dns(dns) => dns.describe(),
            Self::Grpc(grpc) => grpc.target.to_string(),
            Self::Heartbeat(heartbeat) => heartbeat.describe(),
            Self::CronJob(cronjob) => cronjob.describe(),
        }
    }
}

/// A URL as messages, labels and pages show it: no userinfo, no query, no fragment (they may
/// carry secrets).
pub fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// A validated HTTP request and its expectations.
#[derive(Debug, Clone)]
pub struct ValidHttp {
    pub url: url::Url,
    pub method: Method,
    pub version: HttpVersion,
    pub headers: Vec<ValidHeader>,
    pub body: Option<Bytes>,
    pub follow_redirects: bool,
    pub max_body_bytes: u64,
    pub expect: HttpExpectations,
    /// An OAuth2 client-credentials grant whose token is sent as `Authorization: Bearer`.
    /// Boxed: 280 bytes inline in every HTTP check's runner, set on few.
    pub auth: Option<Box<ValidOAuth2>>,
    /// `connectTo`: where requests to the URL's host and port are dialled instead.
    pub connect_to: Option<Endpoint>,
}

/// One request header with its value, or where to read it.
#[derive(Debug, Clone)]
pub struct ValidHeader {
    pub name: HeaderName,
    pub value: HeaderSource,
}

/// Where a header value comes from.
#[derive(Debug, Clone)]
pub enum HeaderSource {
    Literal(HeaderValue),
    From(ValueRef),
}

/// What the final HTTP response must satisfy.
#[derive(Debug, Clone, Default)]
pub struct HttpExpectations {
    pub status: Vec<StatusMatch>,
    pub body_contains: Option<String>,
    pub body_not_contains: Option<String>,
    /// Matched on the first `regex_body_limit` bytes of the body.
    pub body_regex: Option<Regex>,
    pub regex_body_limit: u64,
    pub max_duration: Option<Duration>,
    /// Checked on the first `regex_body_limit` bytes parsed as JSON.
    pub json: Vec<JsonCheck>,
    pub headers: Vec<HeaderCheck>,
    /// Evaluated on the first `regex_body_limit` bytes (as JSON when they parse).
    pub cel: Option<std::sync::Arc<super::cel::CelExpression>>,
}

impl HttpExpectations {
    /// Whether any expectation reads the body.
    pub fn inspects_body(&self) -> bool {
        self.body_contains.is_some()
            || self.body_not_contains.is_some()
            || self.body_regex.is_some()
            || !self.json.is_empty()
            || self.cel.is_some()
    }

    /// Whether the body is buffered (up to `regex_body_limit`).
    pub fn buffers_body(&self) -> bool {
        self.body_regex.is_some() || !self.json.is_empty() || self.cel.is_some()
    }
}

/// Accepted HTTP status: one code or a class such as `2xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMatch {
    Code(u16),
    Class(u16),
}

impl StatusMatch {
    /// Whether `status` is accepted.
    pub fn matches(self, status: u16) -> bool {
        match self {
            Self::Code(code) => code == status,
            Self::Class(class) => status / 100 == class,
        }
    }
}

impl std::fmt::Display for StatusMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(code) => write!(f, "{code}"),
            Self::Class(class) => write!(f, "{class}xx"),
        }
    }
}

/// Which kind of object a reference points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReferenceKind {
    Secret,
    ConfigMap,
}

impl ReferenceKind {
    /// The Kubernetes kind, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "Secret",
            Self::ConfigMap => "ConfigMap",
        }
    }
}

/// One object a spec reads, by name, in the HealthCheck's own namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    pub kind: ReferenceKind,
    pub name: String,
}

/// One key of a referenced object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ValueRef {
    pub object: Reference,
    pub key: String,
}

impl ValidSpec {
    /// Every object this spec reads, sorted and without duplicates, so the operator can fetch
    /// exactly those (by name) before building the probe.
    pub fn references(&self) -> Vec<Reference> {
        let mut refs: Vec<Reference> = Vec::new();
        let headers = match &self.probe {
            ProbeKind::Http(http) => http.headers.as_slice(),
            ProbeKind::Grpc(grpc) => grpc.metadata.as_slice(),
            ProbeKind::Tcp(_)
            | ProbeKind::Tls(_)
            | ProbeKind::Dns(_)
            | ProbeKind::Heartbeat(_)
            | ProbeKind::CronJob(_) => &[],
        };
        refs.extend(headers.iter().filter_map(|h| match &h.value {
            HeaderSource::From(source) => Some(source.object.clone()),
            HeaderSource::Literal(_) => None,
        }));
        if let ProbeKind::Http(http) = &self.probe {
            refs.extend(http.auth.iter().flat_map(|auth| auth.references()));
        }
        if let ProbeKind::Heartbeat(heartbeat) = &self.probe {
            refs.push(heartbeat.token.object.clone());
        }
        let policy = &self.tls_policy;
        refs.extend(policy.ca_bundle.iter().map(|r| r.object.clone()));
        let secrets = policy.client_certificate.iter();
        let secrets = secrets.chain(&policy.expect_served_certificate);
        refs.extend(secrets.map(|name| Reference {
            kind: ReferenceKind::Secret,
            name: name.clone(),
        }));
        refs.sort();
        refs.dedup();
        refs
    }
}
