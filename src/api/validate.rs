//! Semantic validation of a spec, re-checking every schema and CEL rule (not every cluster
//! enforces them, and files given to `canary check` meet no API server) and parsing the
//! string-typed fields into the values the engine runs on.

use std::{fmt, time::Duration};

use regex::Regex;

use super::parse::{compile_regex, parse_max_body, parse_pin, parse_status, parse_url};
pub use super::parse::{fmt_go, parse_duration, parse_quantity};

use super::spec::{HealthCheckSpec, HttpProbe, SocketTarget, TlsPolicy};

/// Largest body Canary will read, whatever a spec asks (bounded memory per probe).
pub const MAX_BODY_BYTES_LIMIT: u64 = 64 * 1024 * 1024;
/// Default `maxBodyBytes`.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;

/// One rule a spec breaks, with the field named as the API server would name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path such as `spec.http.url`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
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

/// The parsed form of a valid spec's string fields.
#[derive(Debug, Clone)]
pub struct ParsedSpec {
    pub interval: Duration,
    pub timeout: Duration,
    pub http: Option<ParsedHttp>,
    pub tls_policy: ParsedTlsPolicy,
}

/// Parsed HTTP fields.
#[derive(Debug, Clone)]
pub struct ParsedHttp {
    pub url: url::Url,
    pub max_body_bytes: u64,
    pub status: Vec<StatusMatch>,
    pub body_regex: Option<Regex>,
    pub max_duration: Option<Duration>,
}

/// Parsed TLS policy fields.
#[derive(Debug, Clone)]
pub struct ParsedTlsPolicy {
    pub min_remaining_validity: Duration,
    /// SHA-256 digests of pinned SubjectPublicKeyInfo.
    pub pins: Vec<[u8; 32]>,
}

/// Collects field errors so a user sees every problem at once.
#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn take<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        result.map_err(|error| self.0.push(error)).ok()
    }
}

/// Checks every rule of the schema and the CEL rules, returning the parsed values.
pub fn validate(spec: &HealthCheckSpec) -> Result<ParsedSpec, Vec<FieldError>> {
    let mut errors = Errors::default();
    let interval = errors.take(parse_duration("spec.interval", &spec.interval));
    let timeout = errors.take(parse_duration("spec.timeout", &spec.timeout));
    if let Some(interval) = interval.filter(|i| *i < Duration::from_secs(1)) {
        errors.push(
            "spec.interval",
            format!("{} is below the minimum of 1s", fmt_go(interval)),
        );
    }
    if let (Some(interval), Some(timeout)) = (interval, timeout) {
        if timeout >= interval {
            errors.push(
                "spec.timeout",
                format!(
                    "{} must be shorter than spec.interval ({})",
                    spec.timeout, spec.interval
                ),
            );
        }
        if timeout.is_zero() {
            errors.push("spec.timeout", "must be greater than 0");
        }
    }
    for (field, value) in [
        ("spec.failureThreshold", spec.failure_threshold),
        ("spec.successThreshold", spec.success_threshold),
    ] {
        if !(1..=1000).contains(&value) {
            errors.push(field, format!("{value} is outside 1..1000"));
        }
    }
    let kinds = [spec.http.is_some(), spec.tcp.is_some(), spec.tls.is_some()];
    if kinds.iter().filter(|set| **set).count() != 1 {
        errors.push(
            "spec",
            "exactly one of spec.http, spec.tcp or spec.tls must be set",
        );
    }
    let http = spec
        .http
        .as_ref()
        .and_then(|http| validate_http(http, &mut errors));
    for (field, target) in [("spec.tcp", &spec.tcp), ("spec.tls", &spec.tls)] {
        if let Some(target) = target {
            validate_target(field, target, &mut errors);
        }
    }
    let tls_policy = validate_tls_policy(spec.tls_policy.as_ref(), &mut errors);
    match (errors.0.is_empty(), interval, timeout, tls_policy) {
        (true, Some(interval), Some(timeout), Some(tls_policy)) => Ok(ParsedSpec {
            interval,
            timeout,
            http,
            tls_policy,
        }),
        _ => Err(errors.0),
    }
}

fn validate_http(http: &HttpProbe, errors: &mut Errors) -> Option<ParsedHttp> {
    let url = errors.take(parse_url(&http.url));
    for (i, header) in http.headers.iter().enumerate() {
        let field = format!("spec.http.headers[{i}]");
        if http::HeaderName::from_bytes(header.name.as_bytes()).is_err() {
            errors.push(
                format!("{field}.name"),
                format!("{:?} is not a valid header name", header.name),
            );
        }
        if header.value.is_some() == header.value_from.is_some() {
            errors.push(
                field.clone(),
                "exactly one of value or valueFrom must be set",
            );
        }
        if let Some(value) = &header.value
            && http::HeaderValue::from_str(value).is_err()
        {
            errors.push(
                format!("{field}.value"),
                "must not contain control characters",
            );
        }
        if let Some(source) = &header.value_from
            && source.secret_key_ref.is_some() == source.config_map_key_ref.is_some()
        {
            errors.push(
                format!("{field}.valueFrom"),
                "exactly one of secretKeyRef or configMapKeyRef must be set",
            );
        }
    }
    let max_body_bytes = errors.take(parse_max_body(http.max_body_bytes.as_ref()));
    let status: Vec<StatusMatch> = (http.expect.status.iter().enumerate())
        .filter_map(|(i, s)| errors.take(parse_status(i, s)))
        .collect();
    if http.expect.status.is_empty() {
        errors.push(
            "spec.http.expect.status",
            "must list at least one code or class",
        );
    }
    let body_regex = match &http.expect.body_regex {
        Some(pattern) => errors.take(compile_regex(pattern)),
        None => None,
    };
    let max_duration = match &http.expect.max_duration {
        Some(value) => errors.take(parse_duration("spec.http.expect.maxDuration", value)),
        None => None,
    };
    Some(ParsedHttp {
        url: url?,
        max_body_bytes: max_body_bytes?,
        status,
        body_regex,
        max_duration,
    })
}

fn validate_target(field: &str, target: &SocketTarget, errors: &mut Errors) {
    if target.host.trim().is_empty() {
        errors.push(format!("{field}.host"), "Required value");
    }
    if !(1..=65535).contains(&target.port) {
        errors.push(
            format!("{field}.port"),
            format!("{} is outside 1..65535", target.port),
        );
    }
}

fn validate_tls_policy(policy: Option<&TlsPolicy>, errors: &mut Errors) -> Option<ParsedTlsPolicy> {
    let default = TlsPolicy::default();
    let policy = policy.unwrap_or(&default);
    let min_remaining_validity = errors.take(parse_duration(
        "spec.tlsPolicy.minRemainingValidity",
        &policy.min_remaining_validity,
    ));
    if !(0..=100).contains(&policy.min_remaining_lifetime_percent) {
        errors.push(
            "spec.tlsPolicy.minRemainingLifetimePercent",
            "must be within 0..100",
        );
    }
    if let Some(source) = &policy.ca_bundle
        && source.secret_key_ref.is_some() == source.config_map_key_ref.is_some()
    {
        errors.push(
            "spec.tlsPolicy.caBundle",
            "exactly one of secretKeyRef or configMapKeyRef must be set",
        );
    }
    let pins = (policy.pinned_public_keys.iter().enumerate())
        .filter_map(|(i, pin)| errors.take(parse_pin(i, pin)))
        .collect();
    Some(ParsedTlsPolicy {
        min_remaining_validity: min_remaining_validity?,
        pins,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::HttpExpect;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn http_spec(url: &str) -> HealthCheckSpec {
        serde_json::from_value(serde_json::json!({"http": {"url": url}})).unwrap()
    }

    #[test]
    fn defaults_validate_and_parse() {
        let parsed = validate(&http_spec("https://example.com/healthz")).unwrap();
        assert_eq!(parsed.interval, Duration::from_secs(60));
        assert_eq!(parsed.timeout, Duration::from_secs(10));
        let http = parsed.http.unwrap();
        assert_eq!(http.max_body_bytes, 1 << 20);
        assert_eq!(http.status, vec![StatusMatch::Class(2)]);
        assert_eq!(
            parsed.tls_policy.min_remaining_validity,
            Duration::from_secs(336 * 3600)
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut spec = http_spec("ftp://example.com");
        spec.interval = "5s".into();
        spec.timeout = "10s".into();
        spec.failure_threshold = -1;
        spec.tcp = Some(SocketTarget {
            host: "db".into(),
            port: 0,
        });
        spec.http.as_mut().unwrap().expect = HttpExpect {
            status: vec![IntOrString::String("6xx".into())],
            body_regex: Some("(".into()),
            ..HttpExpect::default()
        };
        let fields: Vec<String> = validate(&spec)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        for expected in [
            "spec.timeout",
            "spec.failureThreshold",
            "spec",
            "spec.http.url",
            "spec.http.expect.status[0]",
            "spec.http.expect.bodyRegex",
            "spec.tcp.port",
        ] {
            assert!(
                fields.iter().any(|f| f == expected),
                "{expected} missing from {fields:?}"
            );
        }
    }
}
