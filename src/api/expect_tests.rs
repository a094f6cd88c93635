//! Validation of `expect.json` and `expect.headers`: valid assertions compile, invalid ones are
//! named by their field.

use super::*;
use crate::api::{HealthCheckSpec, validate};
use serde_json::json;

/// The field errors of a spec with these expectations.
fn errors(expect: Value) -> Vec<String> {
    let spec: HealthCheckSpec =
        serde_json::from_value(json!({"http": {"url": "http://a", "expect": expect}})).unwrap();
    match validate(&spec) {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect(),
    }
}

#[test]
fn valid_assertions_compile() {
    let expect = json!({"json": [
        {"path": "$.status", "equals": "UP"},
        {"path": "$.components.db.status", "in": ["UP", "UNKNOWN"]},
        {"path": "$.items", "exists": true},
        {"path": "$.version", "matches": "^2\\."},
        {"path": "$.items[*]", "count": {"min": 1, "max": 500}},
        {"path": "$..status", "exists": false},
    ], "headers": [
        {"name": "Content-Type", "matches": "json"},
        {"name": "X-A", "equals": "b"},
        {"name": "Server", "absent": true},
    ]});
    assert_eq!(errors(expect), Vec::<String>::new());
}

#[test]
fn invalid_assertions_are_named_by_field() {
    let cases = [
        (
            json!({"json": [{"path": "status", "equals": 1}]}),
            "spec.http.expect.json[0].path: invalid RFC 9535 JSONPath",
        ),
        (
            json!({"json": [{"path": "$..a..b", "exists": true}]}),
            "spec.http.expect.json[0].path: at most one descendant segment",
        ),
        (
            json!({"json": [{"path": "$.a"}]}),
            "spec.http.expect.json[0]: exactly one of",
        ),
        (
            json!({"json": [{"path": "$.a", "equals": 1, "count": {"min": 1}}]}),
            "spec.http.expect.json[0]: exactly one of",
        ),
        (
            json!({"json": [{"path": "$.a", "matches": "("}]}),
            "spec.http.expect.json[0].matches: invalid regular expression",
        ),
        (
            json!({"json": [{"path": "$.a", "count": {}}]}),
            "spec.http.expect.json[0].count: set min, max or both",
        ),
        (
            json!({"json": [{"path": "$.a", "count": {"min": 2, "max": 1}}]}),
            "spec.http.expect.json[0].count: min must not be greater than max",
        ),
        (
            json!({"json": [{"path": "$.a", "count": {"min": -1}}]}),
            "spec.http.expect.json[0].count.min: -1 is outside",
        ),
        (
            json!({"json": [{"path": "$.a", "in": vec![0; 65]}]}),
            "spec.http.expect.json[0].in: 65 entries",
        ),
        (
            json!({"json": [{"path": format!("$.{}", "a".repeat(1100)), "exists": true}]}),
            "spec.http.expect.json[0].path: 1102 bytes",
        ),
        (
            json!({"json": vec![json!({"path": "$", "exists": true}); 33]}),
            "spec.http.expect.json: 33 entries",
        ),
        (
            json!({"headers": [{"name": "bad name", "absent": true}]}),
            "spec.http.expect.headers[0].name",
        ),
        (
            json!({"headers": [{"name": "a", "equals": "x", "matches": "x"}]}),
            "spec.http.expect.headers[0]: exactly one of",
        ),
        (
            json!({"headers": [{"name": "a", "matches": "["}]}),
            "spec.http.expect.headers[0].matches: invalid regular expression",
        ),
    ];
    for (expect, want) in cases {
        let found = errors(expect.clone());
        assert!(
            found.iter().any(|e| e.starts_with(want)),
            "{expect}: expected {want:?} in {found:?}"
        );
    }
}
