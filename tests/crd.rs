//! The CRD: the committed file matches the Rust types, and its schema (structural rules and CEL)
//! accepts the shipped examples and rejects bad documents with the field named, the way the
//! API server will; its CEL rules stay far under kube-apiserver's cost limits.

use canary_operator::{api, files};
use canary_test_apiserver::schema::cost::{self, PER_CRD_LIMIT, PER_EXPRESSION_LIMIT};
use canary_test_apiserver::schema::validate_custom_resource;
use serde_json::{Value, json};

const CRD_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/crds/healthchecks.canary.dev.yaml"
);

fn crd() -> Value {
    serde_json::to_value(<api::HealthCheck as kube::CustomResourceExt>::crd()).unwrap()
}

#[test]
fn committed_crd_matches_the_types() {
    let committed = std::fs::read_to_string(CRD_PATH).unwrap();
    let generated = api::crd_yaml().unwrap();
    assert!(
        committed == generated,
        "crds/healthchecks.canary.dev.yaml is stale: run `cargo run -- crd > crds/healthchecks.canary.dev.yaml`"
    );
}

/// `canary crd NAME` prints each CRD Canary owns exactly as committed in `crds/NAME.yaml`,
/// and `crds/` holds no other.
#[test]
fn every_crd_canary_owns_is_committed_as_canary_crd_prints_it() {
    for name in api::CRD_NAMES {
        let path = format!("{}/crds/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
        let committed = std::fs::read_to_string(&path).unwrap();
        let generated = api::crd_yaml_named(name).unwrap().unwrap();
        assert!(
            committed == generated,
            "crds/{name}.yaml is stale: run `cargo run -- crd {name} > crds/{name}.yaml`"
        );
        let printed = std::process::Command::new(env!("CARGO_BIN_EXE_canary"))
            .args(["crd", name])
            .output()
            .unwrap();
        assert!(printed.status.success());
        assert_eq!(String::from_utf8(printed.stdout).unwrap(), generated);
    }
    let files: Vec<String> = committed_crds().into_iter().map(|(file, _)| file).collect();
    assert_eq!(files.len(), api::CRD_NAMES.len(), "{files:?}");
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_canary"))
        .args(["crd", "widgets.canary.dev"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}

/// The local API server takes every committed CRD's schema as kube would (structural).
#[test]
fn every_committed_crd_has_a_structural_schema() {
    for (file, crd) in committed_crds() {
        let errors = canary_test_apiserver::schema::check_crd_schemas(&crd);
        assert!(errors.is_empty(), "{file}: {errors:?}");
    }
}

#[test]
fn a_check_discovery_is_defaulted_and_needs_a_source() {
    let crd =
        serde_json::to_value(<api::CheckDiscovery as kube::CustomResourceExt>::crd()).unwrap();
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["chd"]));
    assert_eq!(crd["spec"]["names"]["categories"], json!(["canary"]));
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    let object = |spec: Value| {
        json!({"apiVersion": "canary.dev/v1alpha1", "kind": "CheckDiscovery",
               "metadata": {"name": "d", "namespace": "shop"}, "spec": spec})
    };
    let template = json!({"interval": "30s", "http": {"expect": {"status": [200]}}});
    let defaulted = validate_custom_resource(
        &crd,
        &object(json!({"sources": {"ingress": {}, "service": {"ports": ["http", 8443]}}, "template": template})),
    )
    .unwrap();
    let spec = &defaulted["spec"];
    assert_eq!(
        (&spec["optIn"], &spec["dial"], &spec["policy"]),
        (&json!("Annotation"), &json!("Host"), &json!("Sync"))
    );
    assert_eq!(spec["maxChecks"], 200);
    assert_eq!(spec["sources"]["ingress"]["paths"], "First");
    assert_eq!(
        spec["template"], template,
        "the template is kept as written"
    );
    let errors = validate_custom_resource(&crd, &object(json!({"sources": {}}))).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.field == "spec.sources" && e.to_string().contains("at least one")),
        "{errors:?}"
    );
    let errors = validate_custom_resource(
        &crd,
        &object(json!({"sources": {"ingress": {}}, "optIn": "Some"})),
    )
    .unwrap_err();
    assert!(errors.iter().any(|e| e.field == "spec.optIn"), "{errors:?}");
}

#[test]
fn crd_has_names_columns_and_status_subresource() {
    let crd = crd();
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["chc"]));
    assert_eq!(crd["spec"]["names"]["categories"], json!(["canary"]));
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["subresources"]["status"], json!({}));
    let columns: Vec<&str> = (version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter())
    .map(|c| c["name"].as_str().unwrap())
    .collect();
    assert_eq!(
        columns,
        [
            "Ready",
            "Reason",
            "Since",
            "Latency",
            "Cert-Expires",
            "Last-Run",
            "Locations",
            "Age",
            "Target",
            "Interval",
            "Probed-By",
            "Message"
        ]
    );
    // What a status write per run would be needed to keep fresh is for -o wide only.
    let wide_only: Vec<&str> = (version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter())
    .filter(|c| c["priority"] == 1)
    .map(|c| c["name"].as_str().unwrap())
    .collect();
    assert_eq!(
        wide_only,
        ["Last-Run", "Target", "Interval", "Probed-By", "Message"]
    );
}

#[test]
fn examples_are_accepted_and_defaulted() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let quickstart = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart");
    let loaded = files::load(&[dir.into(), quickstart.into()]).unwrap();
    assert!(loaded.len() >= 10);
    let kinds: Vec<&str> = (loaded.iter())
        .filter_map(|item| api::validate(&item.resource.spec).ok())
        .map(|valid| valid.probe.name())
        .collect();
    for kind in ["http", "tcp", "tls", "dns", "grpc"] {
        assert!(
            kinds.contains(&kind),
            "no {kind} example in examples/: {kinds:?}"
        );
    }
    for item in loaded {
        let object = serde_json::to_value(&item.resource).unwrap();
        let defaulted = validate_custom_resource(&crd(), &object)
            .unwrap_or_else(|e| panic!("{} rejected: {e:?}", item.origin()));
        assert!(defaulted["spec"]["interval"].is_string());
    }
    let minimal = json!({
        "apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
        "metadata": {"name": "m", "namespace": "default"},
        "spec": {"http": {"url": "https://example.com"}},
    });
    let defaulted = validate_custom_resource(&crd(), &minimal).unwrap();
    let spec = &defaulted["spec"];
    assert_eq!(spec["interval"], "60s");
    assert_eq!(spec["timeout"], "10s");
    assert_eq!(spec["failureThreshold"], 1);
    assert_eq!(spec["http"]["method"], "GET");
    assert_eq!(spec["http"]["maxBodyBytes"], "1Mi");
    assert_eq!(spec["http"]["expect"]["status"], json!(["2xx"]));
}

#[test]
fn bad_documents_are_rejected_with_the_field_named() {
    let cases = [
        (
            json!({"http": {"method": "GET"}}),
            "spec.http.url",
            "Required value",
        ),
        (
            json!({"http": {"url": "https://a"}, "tcp": {"host": "a", "port": 1}}),
            "spec",
            "exactly one of spec.http, spec.tcp, spec.tls, spec.dns, spec.grpc, spec.heartbeat or spec.cronJob",
        ),
        (
            json!({"tcp": {"host": "a", "port": 1}, "interval": "5s", "timeout": "5s"}),
            "spec.timeout",
            "spec.timeout (5s) must be shorter than spec.interval (5s)",
        ),
        (
            json!({"tcp": {"host": "a", "port": 1}, "failureThreshold": -1}),
            "spec.failureThreshold",
            "",
        ),
        (
            json!({"tcp": {"host": "a", "port": 1}, "interval": "1d"}),
            "spec.interval",
            "",
        ),
        (
            json!({"http": {"url": "https://a", "method": "FETCH"}}),
            "spec.http.method",
            "Unsupported value",
        ),
        (
            json!({"tcp": {"host": "a", "port": 70000}}),
            "spec.tcp.port",
            "",
        ),
        (
            json!({"tls": {"host": "a", "port": 443}, "tlsPolicy": {"minVersion": "1.1"}}),
            "spec.tlsPolicy.minVersion",
            "",
        ),
        (
            json!({"tls": {"host": "a", "port": 443}, "tlsPolicy": {"pinnedPublicKeys": ["md5/x"]}}),
            "spec.tlsPolicy.pinnedPublicKeys[0]",
            "",
        ),
        (
            json!({"http": {"url": "https://a", "expect": {"status": [200, "7xx"]}}}),
            "spec.http.expect.status",
            "a code from 100 to 599 or a class",
        ),
        (
            json!({"tcp": {"host": "a", "port": 1}, "interval": "99999999999999999999h"}),
            "spec.interval",
            "",
        ),
        (
            json!({"http": {"url": "https://a", "expect": {"status": [600]}}}),
            "spec.http.expect.status",
            "a code from 100 to 599 or a class",
        ),
        (
            json!({"http": {"url": "https://a", "expect": {"status": ["1a0"]}}}),
            "spec.http.expect.status",
            "a code from 100 to 599 or a class",
        ),
        (
            json!({"http": {"url": "https://a", "expect": {"status": ["0200"]}}}),
            "spec.http.expect.status",
            "a code from 100 to 599 or a class",
        ),
        (
            json!({"http": {"url": "https://a", "expect": {"status": [99, "20"]}}}),
            "spec.http.expect.status",
            "a code from 100 to 599 or a class",
        ),
        (
            json!({"http": {"url": "https://a", "expect": {"maxDuration": "25h"}}}),
            "spec.http.expect.maxDuration",
            "at most 24h",
        ),
    ];
    for (spec, field, message) in cases {
        assert_rejected(&spec, field, message);
    }
}

#[test]
fn bad_dns_grpc_and_http2_documents_are_rejected_with_the_field_named() {
    let cases = [
        (
            json!({"dns": {"query": {"name": "a.example"}}, "grpc": {"target": "a:50051"}}),
            "spec",
            "exactly one of spec.http, spec.tcp, spec.tls, spec.dns, spec.grpc, spec.heartbeat or spec.cronJob",
        ),
        (
            json!({"dns": {"query": {"name": "a.example", "type": "ANY"}}}),
            "spec.dns.query.type",
            "Unsupported value",
        ),
        (
            json!({"dns": {"query": {"name": "a.example"}, "transport": "quic"}}),
            "spec.dns.transport",
            "Unsupported value",
        ),
        (
            json!({"dns": {"query": {"name": "a.example"}, "expect": {"rcodes": ["NOPE"]}}}),
            "spec.dns.expect.rcodes[0]",
            "Unsupported value",
        ),
        (
            json!({"dns": {"query": {"name": "a.example"}, "server": "10.0.0.1:x"}}),
            "spec.dns.server",
            "",
        ),
        (
            json!({"grpc": {"target": "payments"}}),
            "spec.grpc.target",
            "",
        ),
        (
            json!({"grpc": {"target": "a:50051", "expect": {"servingStatus": ["MAYBE"]}}}),
            "spec.grpc.expect.servingStatus[0]",
            "Unsupported value",
        ),
        (
            json!({"http": {"url": "https://a.example", "version": "3"}}),
            "spec.http.version",
            "Unsupported value",
        ),
        (
            json!({"http": {"url": "https://a.example", "connectTo": "::1:443"}}),
            "spec.http.connectTo",
            "",
        ),
        (
            json!({"http": {"url": "https://a.example", "connectTo": "10.0.0.1"}}),
            "spec.http.connectTo",
            "",
        ),
    ];
    for (spec, field, message) in cases {
        assert_rejected(&spec, field, message);
    }
}

/// Asserts that the CRD's schema rejects `spec` naming `field` with `message`, and that the
/// controller's own validation agrees (so a resource that slips past is InvalidSpec).
fn assert_rejected(spec: &Value, field: &str, message: &str) {
    let object = json!({
        "apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
        "metadata": {"name": "bad", "namespace": "default"}, "spec": spec.clone(),
    });
    let errors =
        validate_custom_resource(&crd(), &object).expect_err(&format!("{spec} must be rejected"));
    assert!(
        errors
            .iter()
            .any(|e| e.field == field && e.to_string().contains(message)),
        "{spec}: expected {field}: {message} in {errors:?}"
    );
    let parsed: Result<api::HealthCheckSpec, _> = serde_json::from_value(spec.clone());
    if let Ok(parsed) = parsed {
        assert!(
            api::validate::validate(&parsed).is_err(),
            "{spec} passed semantic validation"
        );
    }
}

#[test]
fn status_codes_and_classes_pass_the_rule_as_integers_or_strings() {
    let status = json!([100, 599, "204", "599", "1xx", "5xx"]);
    let object = json!({
        "apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
        "metadata": {"name": "codes", "namespace": "default"},
        "spec": {"http": {"url": "https://a.example", "expect": {"status": status}}},
    });
    let valid = validate_custom_resource(&crd(), &object).unwrap();
    assert_eq!(valid["spec"]["http"]["expect"]["status"], status);
}

/// `in` is a CEL keyword: the rule names it `__in__`, as kube escapes it. Each predicate
/// alone passes; `in` with another is refused, so the escape is seen.
#[test]
fn json_and_header_assertions_need_exactly_one_predicate() {
    let spec = |assertion: Value| {
        json!({"http": {"url": "https://a.example",
        "expect": {"json": [assertion], "headers": [{"name": "Server", "absent": true}]}}})
    };
    for one in [
        json!({"path": "$.a", "equals": {"b": [1, "x", null]}}),
        json!({"path": "$.a", "in": ["UP", 1, true]}),
        json!({"path": "$.a", "exists": false}),
        json!({"path": "$.a", "matches": "^2\\."}),
        json!({"path": "$.a[*]", "count": {"min": 0}}),
    ] {
        let object = json!({
            "apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
            "metadata": {"name": "one", "namespace": "default"}, "spec": spec(one.clone()),
        });
        let valid = validate_custom_resource(&crd(), &object).unwrap();
        assert_eq!(valid["spec"]["http"]["expect"]["json"][0], one);
        let parsed: api::HealthCheckSpec = serde_json::from_value(spec(one)).unwrap();
        api::validate::validate(&parsed).unwrap();
    }
    let both = json!({"path": "$.a", "in": [1], "exists": true});
    assert_rejected(
        &spec(both),
        "spec.http.expect.json[0]",
        "exactly one of equals, in, exists, matches or count must be set",
    );
}

/// Every CRD in `crds/`, by file name.
fn committed_crds() -> Vec<(String, Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/crds");
    let mut paths: Vec<_> = (std::fs::read_dir(dir).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    (paths.into_iter())
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (
                p.display().to_string(),
                serde_saphyr::from_str(&text).unwrap(),
            )
        })
        .collect()
}

/// kube refuses a CRD whose CEL expressions are estimated over its limits; a tenth leaves room
/// for rules to come and for changes in kube's estimates. Run with `--nocapture` for the costs.
#[test]
fn every_cel_expression_of_every_crd_stays_under_a_tenth_of_kubes_cost_limits() {
    let crds = committed_crds();
    assert!(!crds.is_empty(), "no CRD in crds/");
    for (file, crd) in crds {
        // CheckReport has no CEL rule: the estimator must find rules exactly where there are.
        let has_rules = crd.to_string().contains("x-kubernetes-validations");
        for schema in cost::estimate_crd(&crd) {
            assert_eq!(
                !schema.expressions.is_empty(),
                has_rules,
                "{file}: CEL rules found"
            );
            for e in &schema.expressions {
                println!(
                    "{file}: {:>9} = {:>7} x {:<3} {}: {}",
                    e.total, e.cost, e.cardinality, e.field, e.expression
                );
                assert!(
                    e.total <= PER_EXPRESSION_LIMIT / 10,
                    "{file}: {} is estimated at {} (kube's limit: {PER_EXPRESSION_LIMIT}): {}",
                    e.field,
                    e.total,
                    e.expression
                );
            }
            let total = schema.total();
            println!("{file}: {total} in total for {}", schema.field);
            assert!(
                total <= PER_CRD_LIMIT / 10,
                "{file}: {total} in total (kube's limit: {PER_CRD_LIMIT})"
            );
        }
        assert!(cost::check_crd(&crd).is_empty(), "{file}");
    }
}

/// Why the status rule has no regex: kube estimates an int-or-string at up to 3 MiB, so
/// `matches` over 64 of them is refused, and the whole CRD with it.
#[test]
fn a_regex_over_the_status_list_would_get_the_crd_refused() {
    let mut crd = crd();
    let rule = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/http\
        /properties/expect/properties/status/x-kubernetes-validations/0/rule";
    *crd.pointer_mut(rule).unwrap() =
        json!("self.all(s, string(s).matches('^([1-5][0-9][0-9]|[1-5]xx)$'))");
    let errors: Vec<String> = (cost::check_crd(&crd).iter())
        .map(ToString::to_string)
        .collect();
    let rule = "spec.validation.openAPIV3Schema.properties[spec].properties[http].properties[expect]\
        .properties[status].x-kubernetes-validations[0].rule";
    let hint = "(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where \
        arrays, maps, and strings are declared)";
    assert_eq!(
        errors,
        [
            format!(
                "{rule}: Forbidden: estimated rule cost exceeds budget by factor of 16.1x {hint}"
            ),
            format!(
                "{rule}: Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 schema"
            ),
            format!(
                "spec.validation.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds budget by factor of 1.6x {hint}"
            ),
        ]
    );
}

/// Every CEL rule of the CRD (path and message), so each can be broken on purpose.
fn cel_rules(node: &Value, path: &str, rules: &mut Vec<(String, String)>) {
    for rule in node["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        // kube reports a rule with a fieldPath on that field.
        let at = rule["fieldPath"].as_str().unwrap_or_default();
        let field = format!("{path}{at}");
        // A messageExpression shows the values given: what it says for this field's case.
        let message = match rule["messageExpression"].as_str() {
            Some(expression) => (SHOWN.iter())
                .find(|(at, _)| *at == field.trim_start_matches('.'))
                .map(|(_, shown)| shown.to_string())
                .unwrap_or_else(|| panic!("no SHOWN message for {field}: {expression}")),
            None => rule["message"].as_str().unwrap_or_default().to_string(),
        };
        rules.push((field, message));
    }
    for (name, child) in node["properties"].as_object().into_iter().flatten() {
        cel_rules(child, &format!("{path}.{name}"), rules);
    }
    if node["items"].is_object() {
        cel_rules(&node["items"], &format!("{path}[0]"), rules);
    }
}

/// What each rule with a messageExpression says for the case that breaks it below.
const SHOWN: [(&str, &str); 1] = [(
    "spec.timeout",
    "spec.timeout (5s) must be shorter than spec.interval (5s)",
)];

/// A rule kube would refuse to compile (a type error) passes this server's parser; breaking
/// every rule here proves each one evaluates, the way kube evaluates it.
#[test]
fn every_cel_rule_refuses_a_document_that_breaks_it() {
    let tcp = json!({"host": "a", "port": 1});
    let secret = json!({"name": "s", "key": "k"});
    let heartbeat = json!({"tokenSecretRef": secret, "period": "1h"});
    let both = json!({"secretKeyRef": secret, "configMapKeyRef": secret});
    let header = |extra: Value| {
        let mut header = json!({"name": "X-A"});
        header
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        header
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({"tcp": tcp, "tls": tcp}), "spec"),
        (
            json!({"tcp": tcp, "interval": "5s", "timeout": "5s"}),
            "spec.timeout",
        ),
        (
            json!({"tcp": tcp, "interval": "500ms", "timeout": "100ms"}),
            "spec.interval",
        ),
        (
            json!({"tcp": tcp, "interval": "25h", "timeout": "1s"}),
            "spec.interval",
        ),
        (json!({"tcp": tcp, "interval": "87601h"}), "spec.interval"),
        (
            json!({"heartbeat": heartbeat.clone(), "interval": "5m"}),
            "spec",
        ),
        (
            json!({"cronJob": {"name": "nightly-backup"}, "timeout": "5s"}),
            "spec",
        ),
        (
            json!({"cronJob": {"name": "nightly-backup", "startGrace": "87601h"}}),
            "spec.cronJob.startGrace",
        ),
        (
            json!({"cronJob": {"name": "nightly-backup", "maxRunDuration": "87601h"}}),
            "spec.cronJob.maxRunDuration",
        ),
        (
            json!({"heartbeat": {"tokenSecretRef": secret, "period": "1h", "schedule": "0 6 * * *"}}),
            "spec.heartbeat",
        ),
        (
            json!({"heartbeat": {"tokenSecretRef": secret, "period": "1h", "timezone": "UTC"}}),
            "spec.heartbeat.timezone",
        ),
        (
            json!({"heartbeat": {"tokenSecretRef": secret, "period": "87601h"}}),
            "spec.heartbeat.period",
        ),
        (
            json!({"heartbeat": {"tokenSecretRef": secret, "period": "1h", "grace": "87601h"}}),
            "spec.heartbeat.grace",
        ),
        (
            json!({"heartbeat": {"tokenSecretRef": secret, "period": "1h", "maxRunDuration": "87601h"}}),
            "spec.heartbeat.maxRunDuration",
        ),
        (
            json!({"heartbeat": {"tokenSecretRef": secret, "period": "9s"}}),
            "spec.heartbeat.period",
        ),
        (
            json!({"heartbeat": {"tokenSecretRef": secret, "period": "1h", "grace": "4s"}}),
            "spec.heartbeat.grace",
        ),
        (json!({"tcp": tcp, "timeout": "87601h"}), "spec.timeout"),
        (
            json!({"tcp": tcp, "maintenanceWindows": [{"schedule": "0 0 * * *", "duration": "87601h"}]}),
            "spec.maintenanceWindows[0].duration",
        ),
        (
            json!({"http": {"url": "https://a", "expect": {"maxDuration": "25h"}}}),
            "spec.http.expect",
        ),
        (
            json!({"http": {"url": "https://a", "expect": {"maxDuration": "87601h"}}}),
            "spec.http.expect.maxDuration",
        ),
        (
            json!({"http": {"url": "https://a", "expect": {"status": ["7xx"]}}}),
            "spec.http.expect.status",
        ),
        (
            json!({"http": {"url": "https://a", "headers": [header(json!({}))]}}),
            "spec.http.headers[0]",
        ),
        (
            json!({"http": {"url": "https://a", "headers": [header(json!({"valueFrom": both}))]}}),
            "spec.http.headers[0].valueFrom",
        ),
        (
            json!({"grpc": {"target": "a:1", "metadata": [{"name": "x"}]}}),
            "spec.grpc.metadata[0]",
        ),
        (
            json!({"grpc": {"target": "a:1", "metadata": [{"name": "x", "valueFrom": both}]}}),
            "spec.grpc.metadata[0].valueFrom",
        ),
        (
            json!({"tcp": tcp, "tlsPolicy": {"caBundle": both}}),
            "spec.tlsPolicy.caBundle",
        ),
        (
            json!({"http": {"url": "https://a", "expect": {"json": [{"path": "$.a", "equals": 1, "in": [1]}]}}}),
            "spec.http.expect.json[0]",
        ),
        (
            json!({"http": {"url": "https://a", "expect": {"json": [{"path": "$.a", "in": [1], "exists": true}]}}}),
            "spec.http.expect.json[0]",
        ),
        (
            json!({"http": {"url": "https://a", "expect": {"json": [{"path": "$.a"}]}}}),
            "spec.http.expect.json[0]",
        ),
        (
            json!({"http": {"url": "https://a", "expect": {"json": [{"path": "$.a", "count": {"min": 3, "max": 2}}]}}}),
            "spec.http.expect.json[0].count",
        ),
        (
            json!({"http": {"url": "https://a", "expect": {"headers": [{"name": "x", "equals": "a", "absent": true}]}}}),
            "spec.http.expect.headers[0]",
        ),
        (
            json!({"tcp": tcp, "tlsPolicy": {"minRemainingValidity": "87601h"}}),
            "spec.tlsPolicy.minRemainingValidity",
        ),
        (
            json!({"http": {"url": "https://a", "auth": {}}}),
            "spec.http.auth",
        ),
        (
            json!({"http": {"url": "https://a", "auth": {"oauth2ClientCredentials":
                {"tokenURL": "https://i/t", "clientSecretRef": secret}}}}),
            "spec.http.auth.oauth2ClientCredentials",
        ),
        (
            json!({"http": {"url": "https://a", "auth": {"oauth2ClientCredentials":
                {"tokenURL": "https://i/t", "clientID": "c", "clientSecretRef": secret,
                 "extraParams": {"scope": "x"}}}}}),
            "spec.http.auth.oauth2ClientCredentials.extraParams",
        ),
        (
            json!({"heartbeat": {"tokenSecretRef": secret, "period": "1h"}, "locations": {"names": ["a"]}}),
            "spec",
        ),
        (
            json!({"tcp": tcp, "locations": {"names": ["a", "b", "a"]}}),
            "spec.locations",
        ),
        (
            json!({"tcp": tcp, "locations": {"names": ["a", "b"], "minFailing": 3}}),
            "spec.locations",
        ),
    ];
    let schema = &crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut rules = Vec::new();
    cel_rules(schema, "", &mut rules);
    for (path, message) in &rules {
        let field = path.trim_start_matches('.');
        let broken = (cases.iter())
            .filter(|(_, at)| *at == field)
            .find(|(spec, _)| {
                let object = json!({"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
                "metadata": {"name": "bad", "namespace": "default"}, "spec": spec});
                let errors = validate_custom_resource(&crd(), &object)
                    .err()
                    .unwrap_or_default();
                errors
                    .iter()
                    .any(|e| e.field == field && e.to_string().contains(message.as_str()))
            });
        assert!(
            broken.is_some(),
            "no case breaks the rule at {field}: {message:?}"
        );
    }
    assert_eq!(rules.len(), 36, "a new rule needs a case here: {rules:?}");
}

/// Whether the local server checks as much of `format` as kube: date-time, and int32/int64
/// where explicit bounds inside the format's range say it all (status, which only Canary
/// writes, is not judged).
fn format_checked(node: &serde_json::Map<String, Value>, format: &Value) -> bool {
    let bounded = |limit: f64| {
        let within = |key: &str| {
            node.get(key)
                .and_then(Value::as_f64)
                .is_some_and(|v| v.abs() <= limit)
        };
        within("minimum") && within("maximum")
    };
    match format.as_str() {
        Some("date-time") => true,
        Some("int32") => bounded(f64::from(i32::MAX)),
        Some("int64") => true,
        _ => false,
    }
}

/// The schema keywords this project's local API server does not validate; kube does. The CRD
/// must not use them, or a bad document could pass every test here and fail on a cluster.
#[test]
fn the_crd_uses_only_schema_keywords_the_local_server_checks() {
    const UNCHECKED: [&str; 8] = [
        "oneOf",
        "allOf",
        "not",
        "multipleOf",
        "uniqueItems",
        "minProperties",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-map-type",
    ];
    fn walk(node: &Value, path: &str, found: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                for (key, child) in map {
                    if UNCHECKED.contains(&key.as_str()) {
                        found.push(format!("{path}.{key}"));
                    }
                    let status = path.contains("properties.status.properties");
                    if key == "format" && !status && !format_checked(map, child) {
                        found.push(format!("{path}.format={child}"));
                    }
                    walk(child, &format!("{path}.{key}"), found);
                }
            }
            Value::Array(items) => (items.iter()).for_each(|item| walk(item, path, found)),
            _ => {}
        }
    }
    for (file, crd) in committed_crds() {
        let mut found = Vec::new();
        walk(&crd["spec"], "spec", &mut found);
        assert!(
            found.is_empty(),
            "{file} uses keywords the local server ignores: {found:?}"
        );
    }
}

#[test]
fn bad_oauth2_client_credentials_are_rejected_with_the_field_named() {
    let auth = |grant: Value| json!({"http": {"url": "https://a.example", "auth": {"oauth2ClientCredentials": grant}}});
    let secret = json!({"name": "idp", "key": "secret"});
    let f = "spec.http.auth.oauth2ClientCredentials";
    let cases = [
        (
            auth(
                json!({"tokenURL": "ftp://idp/token", "clientID": "a", "clientSecretRef": secret}),
            ),
            format!("{f}.tokenURL"),
            "",
        ),
        (
            auth(json!({"tokenURL": "https://idp/token", "clientSecretRef": secret})),
            f.to_string(),
            "exactly one of clientID or clientIDRef",
        ),
        (
            auth(json!({"tokenURL": "https://idp/token", "clientID": "a",
                "clientIDRef": secret, "clientSecretRef": secret})),
            f.to_string(),
            "exactly one of clientID or clientIDRef",
        ),
        (
            auth(json!({"tokenURL": "https://idp/token", "clientID": "a",
                "clientSecretRef": secret, "extraParams": {"client_secret": "x"}})),
            format!("{f}.extraParams"),
            "may not set grant_type",
        ),
        (
            auth(json!({"tokenURL": "https://idp/token", "clientID": "a",
                "clientSecretRef": secret, "scopes": ["two words"]})),
            format!("{f}.scopes[0]"),
            "",
        ),
        (
            auth(json!({"tokenURL": "https://idp/token", "clientID": "a",
                "clientSecretRef": secret, "authStyle": "Digest"})),
            format!("{f}.authStyle"),
            "Unsupported value",
        ),
        (
            json!({"http": {"url": "https://a.example", "auth": {}}}),
            "spec.http.auth".to_string(),
            "must set oauth2ClientCredentials",
        ),
    ];
    for (spec, field, message) in cases {
        assert_rejected(&spec, &field, message);
    }
    let good = auth(
        json!({"tokenURL": "https://idp/token", "clientIDRef": secret,
        "clientSecretRef": secret, "scopes": ["read:health"], "audience": "api",
        "extraParams": {"resource": "urn:api"}}),
    );
    let object = json!({
        "apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
        "metadata": {"name": "good", "namespace": "default"}, "spec": good,
    });
    let defaulted = validate_custom_resource(&crd(), &object).unwrap();
    assert_eq!(
        defaulted["spec"]["http"]["auth"]["oauth2ClientCredentials"]["authStyle"],
        "Basic"
    );
}
