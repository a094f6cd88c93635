//! Assertions on what an HTTP response says, beyond its status: `expect.json` (RFC 9535
//! JSONPath over the body, with equals / in / exists / matches / count) and `expect.headers`
//! (a response header equals, matches, is absent or present). Spec types, their validated
//! forms, and the validation that names the failing field.

use http::HeaderName;
use regex::bytes::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json_path::JsonPath;

use super::{
    parse::compile_regex_at,
    validate::{Errors, FieldError, MAX_TEXT},
};

/// Most assertions in `expect.json` and in `expect.headers`.
pub const MAX_ASSERTIONS: usize = 32;
/// Longest JSONPath, in bytes.
pub const MAX_PATH: usize = 1024;
/// Most descendant segments (`..`) in one path: each multiplies the nodes a query visits by
/// the body's depth, so two on a hostile body could select billions of nodes.
const MAX_DESCENDANTS: usize = 1;
/// Largest `count` bound.
const MAX_COUNT: i64 = 1_000_000;

/// One assertion on the JSON body: a path and exactly one predicate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.equals) ? 1 : 0) + (has(self.__in__) ? 1 : 0) + (has(self.exists) ? 1 : 0) + (has(self.matches) ? 1 : 0) + (has(self.count) ? 1 : 0) == 1",
    "message": "exactly one of equals, in, exists, matches or count must be set"
}]))]
pub struct JsonAssertion {
    /// RFC 9535 JSONPath, such as $.components.db.status (at most one `..`).
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
    /// Every node selected equals this JSON value (numbers compare as numbers: 1 equals 1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value_schema")]
    pub equals: Option<Value>,
    /// Every node selected equals one of these JSON values.
    #[serde(rename = "in", default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value_list_schema")]
    pub in_: Option<Vec<Value>>,
    /// true: the path selects at least one node; false: it selects none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// Every node selected is a string matching this regular expression (RE2 syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub matches: Option<String>,
    /// How many nodes the path selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<CountRange>,
}

/// Bounds on a number of nodes, both inclusive.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.min) || has(self.max)) && (!has(self.min) || !has(self.max) || self.min <= self.max)",
    "message": "set min, max or both, with min <= max"
}]))]
pub struct CountRange {
    /// At least this many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub min: Option<i64>,
    /// At most this many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub max: Option<i64>,
}

/// One assertion on a response header (of the last response, after redirects).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.equals) ? 1 : 0) + (has(self.matches) ? 1 : 0) + (has(self.absent) ? 1 : 0) == 1",
    "message": "exactly one of equals, matches or absent must be set"
}]))]
pub struct HeaderAssertion {
    /// Header name (case-insensitive).
    #[schemars(
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"),
        length(min = 1, max = 256)
    )]
    pub name: String,
    /// The header's value (its values joined by ", " when repeated) is exactly this text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub equals: Option<String>,
    /// The header's value matches this regular expression (RE2 syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub matches: Option<String>,
    /// true: the header is not sent; false: it is sent, with any value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub absent: Option<bool>,
}

fn any_value_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"x-kubernetes-preserve-unknown-fields": true})
}

fn any_value_list_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "maxItems": 64,
        "items": {"x-kubernetes-preserve-unknown-fields": true},
    })
}

/// A validated JSON assertion.
#[derive(Debug, Clone)]
pub struct JsonCheck {
    /// The path as written, for messages.
    pub text: String,
    pub path: JsonPath,
    pub predicate: JsonPredicate,
}

/// What the nodes a path selects must satisfy.
#[derive(Debug, Clone)]
pub enum JsonPredicate {
    Equals(Value),
    In(Vec<Value>),
    Exists(bool),
    Matches(Regex),
    Count { min: Option<u64>, max: Option<u64> },
}

/// A validated header assertion.
#[derive(Debug, Clone)]
pub struct HeaderCheck {
    pub name: HeaderName,
    pub predicate: HeaderPredicate,
}

/// What a response header must look like.
#[derive(Debug, Clone)]
pub enum HeaderPredicate {
    Equals(String),
    Matches(Regex),
    /// true: must be missing; false: must be sent.
    Absent(bool),
}

/// Validates `spec.http.expect.json`; `None` when any assertion is invalid (all are reported).
pub(super) fn validate_json(list: &[JsonAssertion], errors: &mut Errors) -> Option<Vec<JsonCheck>> {
    let field = "spec.http.expect.json";
    errors.at_most(field, list.len(), MAX_ASSERTIONS, "entries");
    let checks: Vec<_> = (list.iter().enumerate())
        .map(|(i, a)| errors.take(json_check(&format!("{field}[{i}]"), a)))
        .collect();
    checks.into_iter().collect()
}

fn json_check(field: &str, assertion: &JsonAssertion) -> Result<JsonCheck, FieldError> {
    let error = |at: &str, message: String| FieldError {
        field: format!("{field}{at}"),
        message,
    };
    let text = &assertion.path;
    if text.len() > MAX_PATH {
        return Err(error(
            ".path",
            format!("{} bytes exceed the limit of {MAX_PATH}", text.len()),
        ));
    }
    if text.matches("..").count() > MAX_DESCENDANTS {
        return Err(error(
            ".path",
            "at most one descendant segment (..) is allowed".into(),
        ));
    }
    let path = JsonPath::parse(text)
        .map_err(|e| error(".path", format!("invalid RFC 9535 JSONPath: {e}")))?;
    let mut set = Vec::new();
    let a = assertion;
    if let Some(value) = &a.equals {
        set.push(JsonPredicate::Equals(value.clone()));
    }
    if let Some(values) = &a.in_ {
        if values.len() > 64 {
            return Err(error(
                ".in",
                format!("{} entries exceed the limit of 64", values.len()),
            ));
        }
        set.push(JsonPredicate::In(values.clone()));
    }
    if let Some(exists) = a.exists {
        set.push(JsonPredicate::Exists(exists));
    }
    if let Some(pattern) = &a.matches {
        set.push(JsonPredicate::Matches(regex_at(
            &format!("{field}.matches"),
            pattern,
        )?));
    }
    if let Some(count) = &a.count {
        set.push(count_predicate(&format!("{field}.count"), count)?);
    }
    let predicate = exactly_one(set).ok_or_else(|| {
        error(
            "",
            "exactly one of equals, in, exists, matches or count must be set".into(),
        )
    })?;
    Ok(JsonCheck {
        text: text.clone(),
        path,
        predicate,
    })
}

fn count_predicate(field: &str, count: &CountRange) -> Result<JsonPredicate, FieldError> {
    let bound = |at: &str, value: Option<i64>| match value {
        Some(v) if !(0..=MAX_COUNT).contains(&v) => Err(FieldError {
            field: format!("{field}.{at}"),
            message: format!("{v} is outside 0..{MAX_COUNT}"),
        }),
        v => Ok(v.map(|v| v.unsigned_abs())),
    };
    let (min, max) = (bound("min", count.min)?, bound("max", count.max)?);
    let message = match (min, max) {
        (None, None) => "set min, max or both",
        (Some(lo), Some(hi)) if lo > hi => "min must not be greater than max",
        _ => return Ok(JsonPredicate::Count { min, max }),
    };
    Err(FieldError {
        field: field.into(),
        message: message.into(),
    })
}

/// Validates `spec.http.expect.headers`.
pub(super) fn validate_headers(
    list: &[HeaderAssertion],
    errors: &mut Errors,
) -> Option<Vec<HeaderCheck>> {
    let field = "spec.http.expect.headers";
    errors.at_most(field, list.len(), MAX_ASSERTIONS, "entries");
    let checks: Vec<_> = (list.iter().enumerate())
        .map(|(i, a)| errors.take(header_check(&format!("{field}[{i}]"), a)))
        .collect();
    checks.into_iter().collect()
}

fn header_check(field: &str, assertion: &HeaderAssertion) -> Result<HeaderCheck, FieldError> {
    let name = HeaderName::from_bytes(assertion.name.as_bytes()).map_err(|_| FieldError {
        field: format!("{field}.name"),
        message: format!("{:?} is not a valid header name", assertion.name),
    })?;
    let mut set = Vec::new();
    if let Some(text) = &assertion.equals {
        if text.len() > MAX_TEXT {
            return Err(FieldError {
                field: format!("{field}.equals"),
                message: format!("{} bytes exceed the limit of {MAX_TEXT}", text.len()),
            });
        }
        set.push(HeaderPredicate::Equals(text.clone()));
    }
    if let Some(pattern) = &assertion.matches {
        set.push(HeaderPredicate::Matches(regex_at(
            &format!("{field}.matches"),
            pattern,
        )?));
    }
    if let Some(absent) = assertion.absent {
        set.push(HeaderPredicate::Absent(absent));
    }
    let predicate = exactly_one(set).ok_or_else(|| FieldError {
        field: field.into(),
        message: "exactly one of equals, matches or absent must be set".into(),
    })?;
    Ok(HeaderCheck { name, predicate })
}

fn regex_at(field: &str, pattern: &str) -> Result<Regex, FieldError> {
    if pattern.len() > MAX_TEXT {
        return Err(FieldError {
            field: field.into(),
            message: format!("{} bytes exceed the limit of {MAX_TEXT}", pattern.len()),
        });
    }
    compile_regex_at(field, pattern)
}

fn exactly_one<T>(mut set: Vec<T>) -> Option<T> {
    if set.len() == 1 { set.pop() } else { None }
}

#[cfg(test)]
#[path = "expect_tests.rs"]
mod tests;
