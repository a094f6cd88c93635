//! Semantic validation of a spec, re-checking every schema and CEL rule (not every cluster
//! enforces them, and files given to `canary check` meet no API server) and parsing every
//! string-typed field, once, into a [`ValidSpec`].

use std::{fmt, num::NonZeroU32, time::Duration};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};

use super::{
    cronjob::validate_cronjob,
    dns::validate_dns,
    duration::{GoDuration, MAX_DURATION, fmt_go},
    grpc::validate_grpc,
    heartbeat::validate_heartbeat,
    http::{HttpHeader, HttpProbe, parse_connect_to},
    locations::Locations,
    maintenance::MaintenanceWindows,
    parse::{
        check_data_key, check_object_name, compile_regex, parse_bytes, parse_status, parse_url,
    },
    spec::{HealthCheckSpec, KeyRef, ValueSource},
    tcp::validate_target,
    tls::validate_tls_policy,
    valid::{
        HeaderSource, HttpExpectations, ProbeKind, Reference, ReferenceKind, ValidHeader,
        ValidHttp, ValidSpec, ValueRef,
    },
};

/// Largest body Canary will read, whatever a spec asks (bounded time per probe).
pub const MAX_BODY_BYTES_LIMIT: u64 = 64 * 1024 * 1024;
/// Default `maxBodyBytes`.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Most body bytes `bodyRegex` may hold in memory (`regexBodyLimit`), and its default.
pub const REGEX_BODY_LIMIT_MAX: u64 = 4 * 1024 * 1024;
pub const DEFAULT_REGEX_BODY_LIMIT: u64 = 1024 * 1024;
/// Longest `spec.interval` (and so `spec.timeout`, and `expect.maxDuration`).
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Shortest `spec.interval`.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

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

/// Collects field errors so a user sees every problem at once.
#[derive(Default)]
pub(super) struct Errors(Vec<FieldError>);

impl Errors {
    pub(super) fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    pub(super) fn take<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        result.map_err(|error| self.0.push(error)).ok()
    }

    /// The schema's `maxLength`/`maxItems`, re-checked.
    pub(super) fn at_most(&mut self, field: &str, len: usize, max: usize, unit: &str) {
        if len > max {
            self.push(field, format!("{len} {unit} exceed the limit of {max}"));
        }
    }
}

/// Longest text of a body expectation, header value or issuer (the schema's maxLength).
pub(super) const MAX_TEXT: usize = 4096;

/// Checks every rule of the schema and the CEL rules, returning the spec fully parsed.
pub fn validate(spec: &HealthCheckSpec) -> Result<ValidSpec, Vec<FieldError>> {
    let mut errors = Errors::default();
    let schedule = validate_schedule(spec, &mut errors);
    let failure_threshold = errors.take(threshold("spec.failureThreshold", spec.failure_threshold));
    let success_threshold = errors.take(threshold("spec.successThreshold", spec.success_threshold));
    let probe = validate_kind(spec, &mut errors);
    let tls_policy = validate_tls_policy(spec.tls_policy.as_deref(), &mut errors);
    let windows = &spec.maintenance_windows;
    errors.at_most("spec.maintenanceWindows", windows.len(), 16, "windows");
    let maintenance = MaintenanceWindows::parse(windows)
        .map_err(|found| errors.0.extend(found))
        .ok();
    if spec.locations.is_some() && (spec.heartbeat.is_some() || spec.cron_job.is_some()) {
        errors.push("spec.locations", LOCATIONS_PROBE_ONLY);
    }
    let locations = match spec.locations.as_ref().map(Locations::validate) {
        Some(Err(found)) => {
            errors.0.extend(found);
            None
        }
        Some(Ok(valid)) => Some(Some(valid)),
        None => Some(None),
    };
    let valid = (|| {
        let (interval, timeout) = schedule?;
        Some(ValidSpec {
            interval,
            timeout,
            suspend: spec.suspend,
            failure_threshold: failure_threshold?,
            success_threshold: success_threshold?,
            probe: probe?,
            tls_policy: tls_policy?,
            maintenance: maintenance?,
            locations: locations?,
        })
    })();
    match valid {
        Some(valid) if errors.0.is_empty() => Ok(valid),
        _ => Err(errors.0),
    }
}

fn validate_schedule(spec: &HealthCheckSpec, errors: &mut Errors) -> Option<(Duration, Duration)> {
    let interval = errors.take(spec.interval.parse("spec.interval", MAX_INTERVAL));
    let timeout = errors.take(spec.timeout.parse("spec.timeout", MAX_INTERVAL));
    if let Some(interval) = interval.filter(|i| *i < MIN_INTERVAL) {
        errors.push(
            "spec.interval",
            format!("{} is below the minimum of 1s", fmt_go(interval)),
        );
    }
    let (interval, timeout) = (interval?, timeout?);
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
    Some((interval, timeout))
}

fn threshold(field: &str, value: i32) -> Result<NonZeroU32, FieldError> {
    u32::try_from(value)
        .ok()
        .filter(|v| (1..=1000).contains(v))
        .and_then(NonZeroU32::new)
        .ok_or_else(|| FieldError {
            field: field.into(),
            message: format!("{value} is outside 1..1000"),
        })
}

fn validate_kind(spec: &HealthCheckSpec, errors: &mut Errors) -> Option<ProbeKind> {
    // Every kind that is set is validated, so one pass reports every problem.
    let http = (spec.http.as_ref())
        .map(|h| validate_http(h, errors).map(|h| ProbeKind::Http(Box::new(h))));
    let tcp =
        (spec.tcp.as_ref()).map(|t| validate_target("spec.tcp", t, errors).map(ProbeKind::Tcp));
    let tls =
        (spec.tls.as_ref()).map(|t| validate_target("spec.tls", t, errors).map(ProbeKind::Tls));
    let dns =
        (spec.dns.as_ref()).map(|d| validate_dns(d, errors).map(|d| ProbeKind::Dns(Box::new(d))));
    let grpc = (spec.grpc.as_ref())
        .map(|g| validate_grpc(g, errors).map(|g| ProbeKind::Grpc(Box::new(g))));
    let heartbeat = (spec.heartbeat.as_ref()).map(|h| {
        not_applying(
            spec,
            "heartbeat checks (pings are judged against period or schedule, and grace)",
            errors,
        );
        validate_heartbeat(h, errors).map(|h| ProbeKind::Heartbeat(Box::new(h)))
    });
    let cronjob = (spec.cron_job.as_ref()).map(|c| {
        not_applying(
            spec,
            "cronJob checks (runs are judged at the CronJob's scheduled times)",
            errors,
        );
        validate_cronjob(c, errors).map(|c| ProbeKind::CronJob(Box::new(c)))
    });
    let mut set: Vec<Option<ProbeKind>> = [http, tcp, tls, dns, grpc, heartbeat, cronjob]
        .into_iter()
        .flatten()
        .collect();
    if set.len() != 1 {
        errors.push("spec", EXACTLY_ONE_KIND);
        return None;
    }
    set.pop().flatten()
}

/// The message of the "exactly one kind" rule, in the schema and here.
/// Heartbeats are pinged to one Canary and CronJobs live in one cluster: neither is probed from
/// elsewhere.
pub const LOCATIONS_PROBE_ONLY: &str = "spec.locations applies to http, tcp, tls, dns and grpc checks, not to heartbeat or cronJob checks";
pub const EXACTLY_ONE_KIND: &str = "exactly one of spec.http, spec.tcp, spec.tls, spec.dns, spec.grpc, spec.heartbeat or spec.cronJob must be set";

/// `spec.interval` and `spec.timeout` mean nothing to a pushed check: a value other than the
/// default (which the API server fills in) is refused rather than silently ignored.
fn not_applying(spec: &HealthCheckSpec, kind: &str, errors: &mut Errors) {
    use super::spec::{DEFAULT_INTERVAL, DEFAULT_TIMEOUT};
    let why = format!("does not apply to {kind}; remove it");
    if spec.interval.as_str() != DEFAULT_INTERVAL {
        errors.push("spec.interval", why.clone());
    }
    if spec.timeout.as_str() != DEFAULT_TIMEOUT {
        errors.push("spec.timeout", why);
    }
}

fn validate_http(http: &HttpProbe, errors: &mut Errors) -> Option<ValidHttp> {
    errors.at_most("spec.http.url", http.url.len(), 2048, "characters");
    let url = errors.take(parse_url(&http.url));
    let headers = validate_headers("spec.http.headers", &http.headers, errors);
    let max_body_bytes = errors.take(parse_bytes(
        "spec.http.maxBodyBytes",
        http.max_body_bytes.as_ref(),
        DEFAULT_MAX_BODY_BYTES,
        MAX_BODY_BYTES_LIMIT,
    ));
    let expect = validate_expect(http, errors);
    let auth = super::auth::validate_auth(http.auth.as_ref(), &http.headers, errors);
    let method = Method::from_bytes(http.method.as_str().as_bytes()).unwrap_or(Method::GET);
    let connect_to = optional(http.connect_to.as_ref(), |text| {
        errors.take(parse_connect_to(text))
    });
    Some(ValidHttp {
        url: url?,
        method,
        version: http.version,
        headers,
        body: http.body.clone().map(Bytes::from),
        follow_redirects: http.follow_redirects,
        max_body_bytes: max_body_bytes?,
        expect: expect?,
        auth: auth?.map(Box::new),
        connect_to: connect_to?,
    })
}

/// Headers (or gRPC metadata) named under `field`: each valid one, every problem reported.
pub(super) fn validate_headers(
    field: &str,
    headers: &[HttpHeader],
    errors: &mut Errors,
) -> Vec<ValidHeader> {
    errors.at_most(field, headers.len(), 64, "entries");
    (headers.iter().enumerate())
        .filter_map(|(i, header)| {
            let field = format!("{field}[{i}]");
            let name = errors.take(header_name(&field, &header.name));
            let value = match (&header.value, &header.value_from) {
                (Some(value), None) => errors.take(header_value(&field, value)),
                (None, Some(source)) => {
                    value_ref(&format!("{field}.valueFrom"), source, errors).map(HeaderSource::From)
                }
                _ => {
                    errors.push(field, "exactly one of value or valueFrom must be set");
                    None
                }
            };
            Some(ValidHeader {
                name: name?,
                value: value?,
            })
        })
        .collect()
}

fn header_name(field: &str, name: &str) -> Result<HeaderName, FieldError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| FieldError {
        field: format!("{field}.name"),
        message: format!("{name:?} is not a valid header name"),
    })
}

fn header_value(field: &str, value: &str) -> Result<HeaderSource, FieldError> {
    if value.len() > MAX_TEXT {
        return Err(FieldError {
            field: format!("{field}.value"),
            message: format!("{} bytes exceed the limit of {MAX_TEXT}", value.len()),
        });
    }
    HeaderValue::from_str(value)
        .map(HeaderSource::Literal)
        .map_err(|_| FieldError {
            field: format!("{field}.value"),
            message: "must not contain control characters".into(),
        })
}

fn validate_expect(http: &HttpProbe, errors: &mut Errors) -> Option<HttpExpectations> {
    let expect = &http.expect;
    errors.at_most(
        "spec.http.expect.status",
        expect.status.len(),
        64,
        "entries",
    );
    for (field, text) in [
        ("spec.http.expect.bodyContains", &expect.body_contains),
        (
            "spec.http.expect.bodyNotContains",
            &expect.body_not_contains,
        ),
        ("spec.http.expect.bodyRegex", &expect.body_regex),
    ] {
        errors.at_most(
            field,
            text.as_ref().map_or(0, String::len),
            MAX_TEXT,
            "bytes",
        );
    }
    if expect.status.is_empty() {
        errors.push(
            "spec.http.expect.status",
            "must list at least one code or class",
        );
    }
    let status = (expect.status.iter().enumerate())
        .filter_map(|(i, s)| errors.take(parse_status(i, s)))
        .collect();
    let body_regex = optional(expect.body_regex.as_ref(), |pattern| {
        errors.take(compile_regex(pattern))
    });
    let max_duration = optional(expect.max_duration.as_ref(), |value| {
        errors.take(value.parse("spec.http.expect.maxDuration", MAX_INTERVAL))
    });
    let json = super::expect::validate_json(&expect.json, errors);
    let headers = super::expect::validate_headers(&expect.headers, errors);
    let cel = optional(expect.cel.as_ref(), |text| {
        errors
            .take(super::cel::validate_cel(text))
            .map(std::sync::Arc::new)
    });
    let regex_body_limit = errors.take(parse_bytes(
        "spec.http.expect.regexBodyLimit",
        expect.regex_body_limit.as_ref(),
        DEFAULT_REGEX_BODY_LIMIT,
        REGEX_BODY_LIMIT_MAX,
    ));
    Some(HttpExpectations {
        status,
        body_contains: expect.body_contains.clone(),
        body_not_contains: expect.body_not_contains.clone(),
        body_regex: body_regex?,
        regex_body_limit: regex_body_limit?,
        max_duration: max_duration?,
        json: json?,
        headers: headers?,
        cel: cel?,
    })
}

/// A key reference, its object name and key checked as the API server checks them.
pub(super) fn value_ref(
    field: &str,
    source: &ValueSource,
    errors: &mut Errors,
) -> Option<ValueRef> {
    let (kind, key_ref, sub): (ReferenceKind, &KeyRef, &str) =
        match (&source.secret_key_ref, &source.config_map_key_ref) {
            (Some(r), None) => (ReferenceKind::Secret, r, "secretKeyRef"),
            (None, Some(r)) => (ReferenceKind::ConfigMap, r, "configMapKeyRef"),
            _ => {
                errors.push(
                    field,
                    "exactly one of secretKeyRef or configMapKeyRef must be set",
                );
                return None;
            }
        };
    let name = errors.take(check_object_name(
        &format!("{field}.{sub}.name"),
        &key_ref.name,
    ));
    let key = errors.take(check_data_key(&format!("{field}.{sub}.key"), &key_ref.key));
    name.and(key).map(|()| ValueRef {
        object: Reference {
            kind,
            name: key_ref.name.clone(),
        },
        key: key_ref.key.clone(),
    })
}

/// Parses an optional field: `Some(None)` when absent, `None` when present but invalid.
pub(super) fn optional<T, U>(
    value: Option<&T>,
    parse: impl FnOnce(&T) -> Option<U>,
) -> Option<Option<U>> {
    match value {
        Some(value) => parse(value).map(Some),
        None => Some(None),
    }
}

/// A duration flag of the command line (`30s`, `5m`), bounded like every spec duration.
pub fn duration_flag(value: &str) -> Result<Duration, String> {
    GoDuration::new(value)
        .parse("flag", MAX_DURATION)
        .map_err(|e| e.message)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{HttpExpect, SocketTarget, StatusMatch};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn http_spec(url: &str) -> HealthCheckSpec {
        serde_json::from_value(serde_json::json!({"http": {"url": url}})).unwrap()
    }

    #[test]
    fn defaults_validate_and_parse() {
        let parsed = validate(&http_spec("https://example.com/healthz")).unwrap();
        assert_eq!(parsed.interval, Duration::from_secs(60));
        assert_eq!(parsed.timeout, Duration::from_secs(10));
        assert_eq!(parsed.failure_threshold.get(), 1);
        let ProbeKind::Http(http) = parsed.probe else {
            panic!("an http probe")
        };
        assert_eq!(http.max_body_bytes, 1 << 20);
        assert_eq!(http.expect.status, vec![StatusMatch::Class(2)]);
        assert_eq!(
            parsed.tls_policy.min_remaining_validity,
            Duration::from_secs(336 * 3600)
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let mut spec = http_spec("ftp://example.com");
        spec.interval = GoDuration::new("5s");
        spec.timeout = GoDuration::new("10s");
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
