//! No input panics: huge numbers, paths for names, and arbitrary strings in every field end
//! in a field-named error or a valid spec (property test).

use canary_operator::{
    api::{HealthCheckSpec, validate},
    probe,
};
use proptest::prelude::*;
use serde_json::{Value, json};

use canary_test_harness::refs::{MapRefs, spec};

fn fields_of(spec_json: Value) -> Vec<String> {
    match validate(&spec(spec_json)) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().map(|e| e.field).collect(),
    }
}

#[test]
fn huge_durations_are_field_errors_not_panics() {
    let url = "http://127.0.0.1:1/";
    for (spec_json, field) in [
        (
            json!({"http": {"url": url, "expect": {"maxDuration": "99999999999999999999h"}}}),
            "spec.http.expect.maxDuration",
        ),
        (
            json!({"http": {"url": url}, "tlsPolicy": {"minRemainingValidity": "99999999999999999999h"}}),
            "spec.tlsPolicy.minRemainingValidity",
        ),
        (
            json!({"interval": "9223372036854775807s", "http": {"url": url}}),
            "spec.interval",
        ),
        (
            json!({"interval": "25h", "timeout": "1s", "http": {"url": url}}),
            "spec.interval",
        ),
        (
            json!({"timeout": "100000000h", "http": {"url": url}}),
            "spec.timeout",
        ),
    ] {
        let fields = fields_of(spec_json.clone());
        assert!(fields.iter().any(|f| f == field), "{spec_json}: {fields:?}");
    }
}

#[test]
fn reference_names_and_keys_that_are_paths_are_refused() {
    let header = |name: &str, key: &str| {
        json!({"http": {"url": "http://127.0.0.1:1/", "headers": [
            {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": name, "key": key}}}
        ]}})
    };
    let name_field = "spec.http.headers[0].valueFrom.secretKeyRef.name";
    let key_field = "spec.http.headers[0].valueFrom.secretKeyRef.key";
    for name in ["/etc", "../../x", "..", "a/b"] {
        assert_eq!(fields_of(header(name, "token")), [name_field], "{name}");
    }
    for key in ["../token", "/etc/passwd", "..", "a/b"] {
        assert_eq!(fields_of(header("probe", key)), [key_field], "{key}");
    }
    let client = json!({"tls": {"host": "localhost", "port": 443},
        "tlsPolicy": {"clientCertificate": {"secretName": "../../etc"}}});
    assert_eq!(
        fields_of(client),
        ["spec.tlsPolicy.clientCertificate.secretName"]
    );
}

#[test]
fn bounded_body_limits_are_enforced() {
    let url = "http://127.0.0.1:1/";
    let too_big =
        json!({"http": {"url": url, "expect": {"bodyRegex": "x", "regexBodyLimit": "5Mi"}}});
    assert_eq!(fields_of(too_big), ["spec.http.expect.regexBodyLimit"]);
    let huge_body = json!({"http": {"url": url, "maxBodyBytes": "1Gi"}});
    assert_eq!(fields_of(huge_body), ["spec.http.maxBodyBytes"]);
}

/// A JSON value of the kind a hostile user could put in any field.
fn hostile_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        "[0-9]{1,30}(ms|s|m|h)".prop_map(Value::from),
        "[0-9]{1,25}(Ki|Mi|Gi|k|M|G)?".prop_map(Value::from),
        "(https?|ftp)://[a-z0-9.:\\[\\]@%-]{0,30}(/[ -~]{0,20})?".prop_map(Value::from),
        "sha256/[A-Za-z0-9+/=]{0,50}".prop_map(Value::from),
        Just(Value::Null),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every field path of the spec, so each gets hostile values.
const PATHS: &[&str] = &[
    "/interval",
    "/timeout",
    "/failureThreshold",
    "/successThreshold",
    "/suspend",
    "/http/url",
    "/http/method",
    "/http/headers",
    "/http/body",
    "/http/maxBodyBytes",
    "/http/followRedirects",
    "/http/expect/status",
    "/http/expect/bodyContains",
    "/http/expect/bodyNotContains",
    "/http/expect/bodyRegex",
    "/http/expect/regexBodyLimit",
    "/http/expect/maxDuration",
    "/tcp/host",
    "/tcp/port",
    "/tls/host",
    "/tls/port",
    "/http/version",
    "/dns/server",
    "/dns/transport",
    "/dns/query/name",
    "/dns/query/type",
    "/dns/query/class",
    "/dns/query/recursionDesired",
    "/dns/expect/rcodes",
    "/dns/expect/answers/minCount",
    "/dns/expect/answers/maxCount",
    "/dns/expect/answers/containsAll",
    "/dns/expect/answers/equals",
    "/dns/expect/answers/matchRegex",
    "/dns/expect/authenticatedData",
    "/grpc/target",
    "/grpc/tls",
    "/grpc/service",
    "/grpc/authority",
    "/grpc/metadata",
    "/grpc/expect/servingStatus",
    "/tlsPolicy/verify",
    "/tlsPolicy/serverName",
    "/tlsPolicy/minRemainingValidity",
    "/tlsPolicy/minRemainingLifetimePercent",
    "/tlsPolicy/minVersion",
    "/tlsPolicy/caBundle",
    "/tlsPolicy/expectedDNSNames",
    "/tlsPolicy/expectedIssuer",
    "/tlsPolicy/pinnedPublicKeys",
    "/tlsPolicy/clientCertificate",
];

fn set(target: &mut Value, path: &str, value: Value) {
    let mut node = target;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if !node.is_object() {
            *node = json!({});
        }
        let Some(map) = node.as_object_mut() else {
            return;
        };
        if i + 1 == parts.len() {
            map.insert((*part).into(), value);
            return;
        }
        node = map.entry(*part).or_insert_with(|| json!({}));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// validate() and probe::build never panic: a document either fails to deserialize (the
    /// API server's schema and `canary check` report that), or validates into a spec that
    /// builds, or names the fields it breaks.
    #[test]
    fn no_input_panics_validate_or_build(
        base in prop::sample::select(vec![
            json!({"http": {"url": "http://127.0.0.1:1/"}}),
            json!({"dns": {"query": {"name": "example.com"}}}),
            json!({"grpc": {"target": "127.0.0.1:1"}}),
        ]),
        edits in prop::collection::vec((prop::sample::select(PATHS), hostile_value()), 1..6)
    ) {
        let mut document = base;
        for (path, value) in edits {
            set(&mut document, path, value);
        }
        let Ok(spec) = serde_json::from_value::<HealthCheckSpec>(document) else {
            return Ok(());
        };
        match validate(&spec) {
            Ok(valid) => {
                let refs = MapRefs::default();
                let _ = probe::build(&valid, &refs);
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for error in errors {
                    prop_assert!(error.field.starts_with("spec"), "{error}");
                    prop_assert!(!error.message.is_empty());
                }
            }
        }
    }
}
