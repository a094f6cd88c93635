//! `expect.json` and `expect.headers` against real loopback servers: a Spring Boot actuator
//! health body, a Kubernetes `/readyz?verbose` body (plain text, so a clear not-JSON failure),
//! and a nested custom body, each passing and failing with the message naming the path; bodies
//! larger than regexBodyLimit or cut at maxBodyBytes; header assertions.

use canary_operator::{api::Reason, probe::Outcome};
use canary_test_harness::{
    refs::{MapRefs, probe_once, spec},
    targets::{Recorded, Reply, TestServer, Transport},
};
use serde_json::{Value, json};

const ACTUATOR: &str = r#"{"status":"DOWN","components":{"db":{"status":"DOWN","details":{"database":"PostgreSQL","error":"org.springframework.jdbc.CannotGetJdbcConnectionException: Failed to obtain JDBC Connection"}},"diskSpace":{"status":"UP","details":{"total":499963174912,"free":91300323328,"threshold":10485760,"path":"/app/.","exists":true}},"ping":{"status":"UP"},"livenessState":{"status":"UP"},"readinessState":{"status":"UP"}},"groups":["liveness","readiness"]}"#;

const READYZ: &str = "[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]poststarthook/start-apiextensions-controllers ok\n[-]poststarthook/crd-informer-synced failed: reason withheld\nreadyz check failed\n";

const CUSTOM: &str = r#"{"service":{"name":"orders","version":"2.14.0","regions":[{"name":"eu-west","replicas":3,"ready":3,"latencyMs":12.5},{"name":"us-east","replicas":3,"ready":2,"latencyMs":40}]},"queue":{"depth":17,"consumers":[]},"flags":{"maintenance":false}}"#;

fn json_reply(body: &'static str) -> Reply {
    Reply::Full {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

async fn serve(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> TestServer {
    TestServer::start(Transport::Plain, handler).await
}

async fn probe(server: &TestServer, http: Value) -> Outcome {
    let mut http = http;
    http["url"] = json!(format!("http://127.0.0.1:{}/health", server.port()));
    probe_once(
        &spec(json!({"timeout": "5s", "http": http})),
        &MapRefs::default(),
    )
    .await
}

async fn expect(server: &TestServer, expect: Value) -> Outcome {
    probe(server, json!({"expect": expect})).await
}

fn assert_fails(outcome: &Outcome, reason: Reason, words: &[&str]) {
    assert_eq!(outcome.reason, reason, "{}", outcome.message);
    for word in words {
        assert!(
            outcome.message.contains(word),
            "{:?} lacks {word:?}",
            outcome.message
        );
    }
}

#[tokio::test]
async fn spring_boot_actuator_health_is_judged_by_component() {
    let server = serve(|_| json_reply(ACTUATOR)).await;
    let passing = json!({"status": [200], "json": [
        {"path": "$.components.diskSpace.status", "equals": "UP"},
        {"path": "$.components.ping.status", "in": ["UP", "UNKNOWN"]},
        {"path": "$.components.diskSpace.details.threshold", "equals": 10485760.0},
        {"path": "$.components[?@.status == 'DOWN']", "count": {"max": 1}},
        {"path": "$.groups[*]", "count": {"min": 2, "max": 2}},
        {"path": "$.components.redis", "exists": false},
    ]});
    let outcome = expect(&server, passing).await;
    assert_eq!(outcome.reason, Reason::Succeeded, "{}", outcome.message);
    let failing = expect(
        &server,
        json!({"json": [
            {"path": "$.components.ping.status", "equals": "UP"},
            {"path": "$.components.db.status", "in": ["UP", "UNKNOWN"]},
        ]}),
    )
    .await;
    assert_fails(
        &failing,
        Reason::BodyMismatch,
        &[r#"$.components.db.status is "DOWN", expected one of ["UP","UNKNOWN"]"#],
    );
    let every = expect(
        &server,
        json!({"json": [{"path": "$.components.*.status", "equals": "UP"}]}),
    )
    .await;
    assert_fails(
        &every,
        Reason::BodyMismatch,
        &[
            "$.components.*.status (at $['components']['db']['status'])",
            "\"DOWN\"",
        ],
    );
}

#[tokio::test]
async fn kubernetes_readyz_verbose_is_plain_text_and_fails_clearly() {
    let server = serve(|_| Reply::ok(READYZ)).await;
    let outcome = expect(
        &server,
        json!({"json": [{"path": "$.status", "equals": "ok"}]}),
    )
    .await;
    assert_fails(
        &outcome,
        Reason::BodyMismatch,
        &[
            "the body is not JSON",
            "line 1 column 2",
            "\"[+]ping ok\\n[+]log ok",
        ],
    );
    let text = expect(&server, json!({"bodyNotContains": "[-]"})).await;
    assert_fails(&text, Reason::BodyMismatch, &["[-]"]);
}

#[tokio::test]
async fn a_nested_custom_body_passes_and_fails_naming_the_path() {
    let server = serve(|_| json_reply(CUSTOM)).await;
    let passing = json!({"json": [
        {"path": "$.service.version", "matches": "^2\\."},
        {"path": "$.service.regions[*].replicas", "equals": 3},
        {"path": "$.service.regions[0].latencyMs", "in": [12.5, 13]},
        {"path": "$.queue.consumers[*]", "count": {"max": 0}},
        {"path": "$..maintenance", "equals": false},
        {"path": "$.service.regions[?@.name == 'eu-west']", "exists": true},
    ]});
    let outcome = expect(&server, passing).await;
    assert_eq!(outcome.reason, Reason::Succeeded, "{}", outcome.message);
    let cases = [
        (
            json!({"path": "$.service.regions[*].ready", "equals": 3}),
            "$.service.regions[*].ready (at $['service']['regions'][1]['ready']) is 2, expected 3",
        ),
        (
            json!({"path": "$.service.regions[1].latencyMs", "matches": "^4"}),
            "$.service.regions[1].latencyMs is 40, a number, not a string: matches needs a string",
        ),
        (
            json!({"path": "$.queue.consumers[*]", "count": {"min": 1}}),
            "$.queue.consumers[*] selects 0 nodes, expected at least 1",
        ),
        (
            json!({"path": "$.service.owner", "equals": "team"}),
            "$.service.owner selects nothing, expected \"team\"",
        ),
        (
            json!({"path": "$.queue", "exists": false}),
            "$.queue is {\"consumers\":[],\"depth\":17}, expected nothing there",
        ),
    ];
    for (assertion, message) in cases {
        let outcome = expect(&server, json!({"json": [assertion]})).await;
        assert_fails(&outcome, Reason::BodyMismatch, &[message]);
    }
}

#[tokio::test]
async fn a_body_past_regex_body_limit_or_cut_at_max_body_bytes_is_not_parsed() {
    let server = serve(|_| Reply::Zeros {
        status: 200,
        len: 3 << 20,
    })
    .await;
    let json = json!([{"path": "$", "exists": true}]);
    let over = probe(
        &server,
        json!({"maxBodyBytes": "4Mi", "expect": {"json": json, "regexBodyLimit": "1Mi"}}),
    )
    .await;
    assert_fails(
        &over,
        Reason::BodyMismatch,
        &["larger than regexBodyLimit (1048576 bytes)", "whole body"],
    );
    let cut = probe(
        &server,
        json!({"maxBodyBytes": "64Ki", "expect": {"json": json}}),
    )
    .await;
    assert_fails(
        &cut,
        Reason::BodyMismatch,
        &["cut at maxBodyBytes (65536 bytes)"],
    );
    let small = serve(|_| json_reply(CUSTOM)).await;
    let exact = probe(
        &small,
        json!({"maxBodyBytes": CUSTOM.len(), "expect": {"json": json}}),
    )
    .await;
    assert_eq!(
        exact.reason,
        Reason::Succeeded,
        "a body exactly maxBodyBytes long is whole: {}",
        exact.message
    );
}

#[tokio::test]
async fn header_assertions_name_the_header() {
    let server = serve(|_| Reply::Full {
        status: 200,
        headers: vec![
            (
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            ),
            ("Cache-Control".into(), "no-store".into()),
            ("Set-Cookie".into(), "session=s3cr3t".into()),
        ],
        body: CUSTOM.as_bytes().to_vec(),
    })
    .await;
    let passing = json!({"headers": [
        {"name": "content-type", "matches": "^application/json"},
        {"name": "Cache-Control", "equals": "no-store"},
        {"name": "X-Powered-By", "absent": true},
        {"name": "Set-Cookie", "absent": false},
    ], "json": [{"path": "$.flags.maintenance", "equals": false}]});
    let outcome = expect(&server, passing).await;
    assert_eq!(outcome.reason, Reason::Succeeded, "{}", outcome.message);
    let wrong = expect(
        &server,
        json!({"headers": [{"name": "Cache-Control", "equals": "public"}]}),
    )
    .await;
    assert_fails(
        &wrong,
        Reason::HeaderMismatch,
        &[r#"header cache-control is "no-store", expected "public""#],
    );
    let missing = expect(
        &server,
        json!({"headers": [{"name": "ETag", "matches": "."}]}),
    )
    .await;
    assert_fails(
        &missing,
        Reason::HeaderMismatch,
        &["header etag is absent, expected a value matching /./"],
    );
    let secret = expect(
        &server,
        json!({"headers": [{"name": "Set-Cookie", "absent": true}]}),
    )
    .await;
    assert_fails(
        &secret,
        Reason::HeaderMismatch,
        &["header set-cookie is <set>"],
    );
    assert!(!secret.message.contains("s3cr3t"), "{}", secret.message);
}
