//! `expect.cel` against real loopback servers: a Spring Boot actuator health body, a Kubernetes
//! `/readyz?verbose` body (plain text, so `body` is a string), and a nested custom body, each
//! passing and failing with the message naming the expression and what happened; and a hostile
//! but valid expression over a 1 MiB body, bounded by the probe's timeout, which never lets
//! the same check start a second evaluation and never blocks other checks.

use std::time::{Duration, Instant};

use canary_operator::{
    api::{Reason, validate},
    probe::{self, Outcome, ProbeContext, Target},
};
use canary_test_harness::{
    refs::{MapRefs, build, probe_once, spec},
    targets::{Reply, TestServer, Transport},
    wait::eventually,
};
use serde_json::{Value, json};

const ACTUATOR: &str = r#"{"status":"DOWN","components":{"db":{"status":"DOWN","details":{"database":"PostgreSQL"}},"diskSpace":{"status":"UP","details":{"total":499963174912,"free":91300323328,"threshold":10485760}},"ping":{"status":"UP"}},"groups":["liveness","readiness"]}"#;

const READYZ: &str = "[+]ping ok\n[+]log ok\n[+]etcd ok\n[-]poststarthook/crd-informer-synced failed: reason withheld\nreadyz check failed\n";

const CUSTOM: &str = r#"{"service":{"name":"orders","version":"2.14.0","regions":[{"name":"eu-west","replicas":3,"ready":3,"latencyMs":12.5},{"name":"us-east","replicas":3,"ready":2,"latencyMs":40}]},"queue":{"depth":17,"consumers":[]}}"#;

fn json_reply(body: &'static str) -> Reply {
    Reply::Full {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("X-Version".into(), "2.14.0".into()),
        ],
        body: body.as_bytes().to_vec(),
    }
}

fn check(server: &TestServer, timeout: &str, expect: Value) -> Value {
    let url = format!("http://127.0.0.1:{}/health", server.port());
    json!({"timeout": timeout, "interval": "60s", "http": {"url": url, "maxBodyBytes": "4Mi", "expect": expect}})
}

async fn cel(server: &TestServer, expression: &str) -> Outcome {
    let check = check(server, "5s", json!({"cel": expression}));
    probe_once(&spec(check), &MapRefs::default()).await
}

fn assert_fails(outcome: &Outcome, words: &[&str]) {
    assert_eq!(outcome.reason, Reason::BodyMismatch, "{}", outcome.message);
    for word in words {
        assert!(
            outcome.message.contains(word),
            "{:?} lacks {word:?}",
            outcome.message
        );
    }
}

fn assert_passes(outcome: &Outcome) {
    assert_eq!(outcome.reason, Reason::Succeeded, "{}", outcome.message);
}

#[tokio::test]
async fn spring_boot_actuator_health_is_judged_by_cel() {
    let server = TestServer::start(Transport::Plain, |_| json_reply(ACTUATOR)).await;
    assert_passes(
        &cel(
            &server,
            "body.components.diskSpace.status == 'UP' && size(body.groups) == 2 && status == 200 && headers['content-type'] == 'application/json'",
        )
        .await,
    );
    let outcome = cel(&server, "body.status == 'UP'").await;
    assert_fails(&outcome, &["cel `body.status == 'UP'` was false"]);
    let outcome = cel(&server, "body.components.redis.status == 'UP'").await;
    assert_fails(
        &outcome,
        &[
            "cel `body.components.redis.status == 'UP'` failed: ",
            "redis",
        ],
    );
}

#[tokio::test]
async fn kubernetes_readyz_verbose_is_text() {
    let server = TestServer::start(Transport::Plain, |_| Reply::ok(READYZ)).await;
    assert_passes(
        &cel(
            &server,
            "body.startsWith('[+]ping ok') && body.contains('[+]etcd ok')",
        )
        .await,
    );
    let outcome = cel(&server, "!body.contains('[-]')").await;
    assert_fails(&outcome, &["cel `!body.contains('[-]')` was false"]);
    let outcome = cel(&server, "body.status == 'ok'").await;
    assert_fails(&outcome, &["cel `body.status == 'ok'` failed: "]);
}

#[tokio::test]
async fn a_nested_custom_body_passes_and_fails_naming_the_expression() {
    let server = TestServer::start(Transport::Plain, |_| json_reply(CUSTOM)).await;
    assert_passes(
        &cel(
            &server,
            "body.service.regions.exists(r, r.latencyMs < 20.0) && body.queue.consumers.size() == 0 && headers['x-version'].startsWith('2.')",
        )
        .await,
    );
    let outcome = cel(
        &server,
        "body.service.regions.all(r, r.ready == r.replicas)",
    )
    .await;
    assert_fails(
        &outcome,
        &["regions.all(r, r.ready == r.replicas)` was false"],
    );
    let outcome = cel(&server, "body.queue.depth").await;
    assert_fails(&outcome, &["returned the int 17, not a bool"]);
}

#[tokio::test]
async fn a_body_past_regex_body_limit_or_cut_is_not_evaluated() {
    let server = TestServer::start(Transport::Plain, |_| Reply::Zeros {
        status: 200,
        len: 2 << 20,
    })
    .await;
    let url = format!("http://127.0.0.1:{}/", server.port());
    let over = json!({"http": {"url": url, "maxBodyBytes": "4Mi", "expect": {"cel": "true", "regexBodyLimit": "1Mi"}}});
    let outcome = probe_once(&spec(over), &MapRefs::default()).await;
    assert_fails(
        &outcome,
        &[
            "larger than regexBodyLimit (1048576 bytes)",
            "cel needs the whole body",
        ],
    );
    let cut = json!({"http": {"url": url, "maxBodyBytes": "64Ki", "expect": {"cel": "true"}}});
    let outcome = probe_once(&spec(cut), &MapRefs::default()).await;
    assert_fails(
        &outcome,
        &[
            "cut at maxBodyBytes (65536 bytes)",
            "cel needs the whole body",
        ],
    );
}

#[test]
fn syntax_errors_and_bounds_are_validation_errors_with_the_field() {
    let invalid = |expression: &str| {
        let check = json!({"http": {"url": "http://127.0.0.1/", "expect": {"cel": expression}}});
        let errors = validate(&spec(check)).expect_err(expression);
        let error = errors.iter().find(|e| e.field == "spec.http.expect.cel");
        error
            .unwrap_or_else(|| panic!("{errors:?}"))
            .message
            .clone()
    };
    assert!(invalid("body.status ==").contains("line 1, column 15"));
    assert!(invalid(&"(".repeat(100)).contains("nested deeper than 32"));
    assert!(invalid("a.all(x, a.all(y, a.all(z, true)))").contains("nested more than 2 deep"));
    assert!(invalid(&"1 == 1 && ".repeat(300)).contains("exceed the limit of 2048"));
}

/// `{"items":[0,1,2,...]}`, about 1 MiB.
fn mebibyte_of_items() -> Vec<u8> {
    let mut body = String::from(r#"{"items":["#);
    let mut i = 0;
    while body.len() < (1 << 20) - 16 {
        body.push_str(&format!("{i},"));
        i += 1;
    }
    body.push_str("0]}");
    body.into_bytes()
}

fn latch(probe: &probe::Probe) -> bool {
    match &probe.target {
        Target::Http(http) => http.cel.as_ref().is_some_and(|run| run.busy()),
        _ => false,
    }
}

/// Slack past the probe's timeout for a probe to return: its timer and a loaded machine.
const SLACK: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cel_expression_over_a_1_mib_body_is_evaluated_within_its_bound() {
    let body = mebibyte_of_items();
    let big = TestServer::start(Transport::Plain, move |_| Reply::Full {
        status: 200,
        headers: vec![],
        body: body.clone(),
    })
    .await;
    let small = TestServer::start(Transport::Plain, |_| json_reply(CUSTOM)).await;
    // Two nested comprehensions (the most allowed) over ~150,000 items: ~2e10 steps.
    let hostile = "body.items.all(x, body.items.all(y, y >= 0))";
    let timeout = Duration::from_secs(4);
    let slow = build(
        &spec(check(&big, "4s", json!({"cel": hostile}))),
        &MapRefs::default(),
    );
    let cheap = build(
        &spec(check(
            &small,
            "4s",
            json!({"cel": "body.queue.depth == 17"}),
        )),
        &MapRefs::default(),
    );
    let ctx = ProbeContext::default();
    let started = Instant::now();
    let first = probe::run(&slow, &ctx);
    let meanwhile = async {
        eventually(
            Duration::from_secs(4),
            "the first evaluation to start",
            Duration::from_millis(5),
            async || {
                latch(&slow)
                    .then_some(())
                    .ok_or_else(|| "latch free".to_string())
            },
        )
        .await;
        let second_started = Instant::now();
        let second = probe::run(&slow, &ctx).await;
        let second_took = second_started.elapsed();
        let other = probe::run(&cheap, &ctx).await;
        let still_busy = latch(&slow);
        (second, second_took, other, still_busy)
    };
    let (first, (second, second_took, other, still_busy)) = tokio::join!(first, meanwhile);
    let took = started.elapsed();
    assert_fails(
        &first,
        &[
            "cel `body.items.all(x, body.items.all(y, y >= 0))` did not finish within the probe's timeout",
        ],
    );
    assert!(took < timeout + SLACK, "returned after {took:?}");
    assert_fails(&second, &["previous evaluation is still running"]);
    assert!(
        second_took < Duration::from_secs(1),
        "the second probe waited {second_took:?}"
    );
    assert_passes(&other);
    assert!(
        still_busy,
        "the other check finished while the first evaluation ran"
    );
    // The tick stops the abandoned evaluation: the latch frees soon after the deadline.
    eventually(
        SLACK,
        "the evaluation to stop",
        Duration::from_millis(10),
        async || {
            (!latch(&slow))
                .then_some(())
                .ok_or_else(|| "still evaluating".to_string())
        },
    )
    .await;
}
