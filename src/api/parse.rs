//! Parsers for the string-typed fields of a spec (Go durations, quantities, status codes,
//! URLs, pins), each naming the field it failed on.

use std::{str::FromStr, sync::LazyLock, time::Duration};

use base64::Engine;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use regex::Regex;

use super::{
    spec::DURATION_PATTERN,
    validate::{DEFAULT_MAX_BODY_BYTES, FieldError, MAX_BODY_BYTES_LIMIT, StatusMatch},
};

/// Largest compiled `bodyRegex` program, so a hostile pattern cannot use unbounded memory.
const REGEX_SIZE_LIMIT: usize = 1024 * 1024;

static DURATION_RE: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // a constant pattern, covered by tests
    Regex::new(DURATION_PATTERN).unwrap()
});

/// Parses a Go-style duration as the schema allows it (`500ms`, `1h30m`).
pub fn parse_duration(field: &str, value: &str) -> Result<Duration, FieldError> {
    let invalid = |why: &str| FieldError {
        field: field.into(),
        message: format!(
            "{value:?} is not a valid duration ({why}); use e.g. 500ms, 30s, 5m, 1h30m"
        ),
    };
    if !DURATION_RE.is_match(value) {
        return Err(invalid("expected digits followed by ms, s, m or h"));
    }
    kube::core::Duration::from_str(value)
        .map(Duration::from)
        .map_err(|e| invalid(&e.to_string()))
}

pub(super) fn parse_url(value: &str) -> Result<url::Url, FieldError> {
    let error = |message: String| FieldError {
        field: "spec.http.url".into(),
        message,
    };
    let url =
        url::Url::parse(value).map_err(|e| error(format!("{value:?} is not a valid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(error(format!(
            "scheme {:?} is not supported; use http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(error(format!("{value:?} has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(error(
            "credentials in the URL are not allowed; use a header from a Secret".into(),
        ));
    }
    Ok(url)
}

pub(super) fn parse_max_body(value: Option<&IntOrString>) -> Result<u64, FieldError> {
    let field = "spec.http.maxBodyBytes";
    let bytes = match value {
        None => DEFAULT_MAX_BODY_BYTES,
        Some(IntOrString::Int(n)) => u64::try_from(*n).map_err(|_| FieldError {
            field: field.into(),
            message: format!("{n} must not be negative"),
        })?,
        Some(IntOrString::String(s)) => parse_quantity(s).ok_or_else(|| FieldError {
            field: field.into(),
            message: format!("{s:?} is not a byte quantity such as 65536, 64Ki or 1Mi"),
        })?,
    };
    if bytes > MAX_BODY_BYTES_LIMIT {
        return Err(FieldError {
            field: field.into(),
            message: format!("{bytes} exceeds the limit of 64Mi"),
        });
    }
    Ok(bytes)
}

/// Parses a whole-number Kubernetes quantity (`512`, `64Ki`, `1Mi`, `1M`).
pub fn parse_quantity(value: &str) -> Option<u64> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, suffix) = value.split_at(split);
    let multiplier: u64 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(multiplier)
}

pub(super) fn parse_status(index: usize, value: &IntOrString) -> Result<StatusMatch, FieldError> {
    let invalid = || FieldError {
        field: format!("spec.http.expect.status[{index}]"),
        message: "must be a status code (100-599) or a class such as \"2xx\"".into(),
    };
    match value {
        IntOrString::Int(code) => u16::try_from(*code)
            .ok()
            .filter(|c| (100..600).contains(c))
            .map(StatusMatch::Code)
            .ok_or_else(invalid),
        IntOrString::String(s) => match s.as_bytes() {
            [c @ b'1'..=b'5', b'x', b'x'] => Ok(StatusMatch::Class(u16::from(c - b'0'))),
            _ => s
                .parse::<u16>()
                .ok()
                .filter(|c| (100..600).contains(c))
                .map(StatusMatch::Code)
                .ok_or_else(invalid),
        },
    }
}

pub(super) fn compile_regex(pattern: &str) -> Result<Regex, FieldError> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| FieldError {
            field: "spec.http.expect.bodyRegex".into(),
            message: format!("invalid regular expression: {e}"),
        })
}

pub(super) fn parse_pin(index: usize, pin: &str) -> Result<[u8; 32], FieldError> {
    let invalid = || FieldError {
        field: format!("spec.tlsPolicy.pinnedPublicKeys[{index}]"),
        message: "must be sha256/ followed by the base64 SHA-256 digest of a SubjectPublicKeyInfo"
            .into(),
    };
    let encoded = pin.strip_prefix("sha256/").ok_or_else(invalid)?;
    let digest = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| invalid())?;
    digest.try_into().map_err(|_| invalid())
}

/// Formats a duration the Go way, compactly (`1h30m`, `2.5s`, `150ms`).
pub fn fmt_go(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let frac = duration.subsec_millis();
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || frac > 0 {
        if frac > 0 && h == 0 {
            out.push_str(&format!(
                "{s}.{}s",
                format!("{frac:03}").trim_end_matches('0')
            ));
        } else {
            out.push_str(&format!("{s}s"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::HttpMethod;

    #[test]
    fn durations_follow_go_syntax() {
        assert_eq!(
            parse_duration("f", "1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_duration("f", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        for bad in ["", "10", "-1s", "1.5s", "1d", "s"] {
            let error = parse_duration("spec.interval", bad).unwrap_err();
            assert_eq!(error.field, "spec.interval", "{bad}");
        }
        assert_eq!(fmt_go(Duration::from_secs(5400)), "1h30m");
        assert_eq!(fmt_go(Duration::from_millis(2500)), "2.5s");
        assert_eq!(fmt_go(Duration::from_millis(150)), "150ms");
    }

    #[test]
    fn quantities_and_status_classes() {
        assert_eq!(parse_quantity("1Mi"), Some(1 << 20));
        assert_eq!(parse_quantity("64Ki"), Some(65536));
        assert_eq!(parse_quantity("1000"), Some(1000));
        assert_eq!(parse_quantity("1.5Mi"), None);
        assert!(StatusMatch::Class(2).matches(204));
        assert!(!StatusMatch::Class(2).matches(301));
        assert_eq!(
            parse_status(0, &IntOrString::Int(418)).unwrap(),
            StatusMatch::Code(418)
        );
        assert!(parse_status(0, &IntOrString::Int(99)).is_err());
        assert_eq!(HttpMethod::default().as_str(), "GET");
    }

    #[test]
    fn pins_must_be_sha256_digests() {
        let pin = format!(
            "sha256/{}",
            base64::engine::general_purpose::STANDARD.encode([7u8; 32])
        );
        assert_eq!(parse_pin(0, &pin).unwrap(), [7u8; 32]);
        assert!(parse_pin(0, "sha1/AAAA").is_err());
        assert!(parse_pin(0, "sha256/AAAA").is_err());
    }
}
