//! Go-style durations (`500ms`, `30s`, `1h30m`) as users write them: one newtype that carries
//! its own schema (pattern, length and a CEL bound), a parser with checked arithmetic, and the
//! compact formatter every message uses.

use std::{borrow::Cow, fmt, time::Duration};

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::validate::FieldError;

/// Whole-number Go durations in ms, s, m and h, as Flux and Prometheus write them.
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";
/// No duration field may exceed this (10 years), whatever its own bound.
pub const MAX_DURATION: Duration = Duration::from_secs(87_600 * 3600);
/// Longest accepted text, so a value cannot cost the API server much to evaluate.
const MAX_LENGTH: usize = 32;

/// A Go-style duration string, kept as written (`kubectl get -o yaml` shows what was applied).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(transparent)]
pub struct GoDuration(String);

impl GoDuration {
    /// A duration from text (checked only by [`GoDuration::parse`]).
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parses the text for `field`, rejecting values above `max` (itself at most 10 years).
    pub fn parse(&self, field: &str, max: Duration) -> Result<Duration, FieldError> {
        parse_duration(field, &self.0, max)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for GoDuration {
    fn schema_name() -> Cow<'static, str> {
        "GoDuration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": MAX_LENGTH,
            "x-kubernetes-validations": [{
                "rule": "duration(self) <= duration('87600h')",
                "message": "must be a duration of at most 87600h (10 years)",
            }],
        })
    }
}

/// Parses a Go-style duration such as `500ms` or `1h30m`; never panics, however large the
/// numbers (checked arithmetic), and names `field` in every error.
pub fn parse_duration(field: &str, value: &str, max: Duration) -> Result<Duration, FieldError> {
    let invalid = |why: String| FieldError {
        field: field.into(),
        message: format!(
            "{value:?} is not a valid duration ({why}); use e.g. 500ms, 30s, 5m, 1h30m"
        ),
    };
    let max = max.min(MAX_DURATION);
    let too_long = || FieldError {
        field: field.into(),
        message: format!("{value:?} exceeds the maximum of {}", fmt_go(max)),
    };
    if value.is_empty() || value.len() > MAX_LENGTH {
        return Err(invalid(format!("expected 1 to {MAX_LENGTH} characters")));
    }
    let mut total_ms: u128 = 0;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid("expected digits followed by ms, s, m or h".into()));
        }
        let (number, tail) = rest.split_at(digits);
        let (unit_ms, tail): (u128, &str) = if let Some(t) = tail.strip_prefix("ms") {
            (1, t)
        } else if let Some(t) = tail.strip_prefix('s') {
            (1_000, t)
        } else if let Some(t) = tail.strip_prefix('m') {
            (60_000, t)
        } else if let Some(t) = tail.strip_prefix('h') {
            (3_600_000, t)
        } else {
            return Err(invalid("expected digits followed by ms, s, m or h".into()));
        };
        // At most 32 characters: the number fits u128; the product is checked anyway.
        let number: u128 = number.parse().map_err(|_| too_long())?;
        total_ms = number
            .checked_mul(unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(too_long)?;
        rest = tail;
    }
    let millis = u64::try_from(total_ms).map_err(|_| too_long())?;
    let duration = Duration::from_millis(millis);
    if duration > max {
        return Err(too_long());
    }
    Ok(duration)
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
            let frac = format!("{frac:03}");
            out.push_str(&format!("{s}.{}s", frac.trim_end_matches('0')));
        } else {
            out.push_str(&format!("{s}s"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<Duration, FieldError> {
        parse_duration("spec.interval", value, MAX_DURATION)
    }

    #[test]
    fn durations_follow_go_syntax() {
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("1m500ms").unwrap(), Duration::from_millis(60_500));
        for bad in ["", "10", "-1s", "1.5s", "1d", "s", "1 s", "1s ", "1us"] {
            let error = parse(bad).unwrap_err();
            assert_eq!(error.field, "spec.interval", "{bad}");
        }
        assert_eq!(fmt_go(Duration::from_secs(5400)), "1h30m");
        assert_eq!(fmt_go(Duration::from_millis(2500)), "2.5s");
        assert_eq!(fmt_go(Duration::from_millis(150)), "150ms");
    }

    #[test]
    fn huge_values_are_field_errors_not_panics() {
        for huge in [
            "99999999999999999999h",
            "99999999999999999999999999999ms",
            "87601h",
            "9223372036854775807s",
        ] {
            let error = parse(huge).unwrap_err();
            assert!(
                error.message.contains("exceeds the maximum"),
                "{huge}: {error}"
            );
        }
        assert_eq!(parse("87600h").unwrap(), MAX_DURATION);
        let bounded = parse_duration("f", "25h", Duration::from_secs(24 * 3600)).unwrap_err();
        assert!(bounded.message.contains("maximum of 24h"), "{bounded}");
    }
}
