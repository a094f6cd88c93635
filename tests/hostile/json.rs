//! Hostile JSON bodies against `expect.json`: deep nesting, numbers out of range, huge
//! integers, long strings, invalid UTF-8, control characters in keys and values, a body that is
//! not JSON. Each ends in a `BodyMismatch` whose message is bounded and escaped, never a panic.

use canary_operator::{api::Reason, probe::Outcome};
use canary_test_harness::{
    refs::{MapRefs, probe_once, spec},
    targets::{Reply, TestServer, Transport},
};
use serde_json::json;

use crate::words::FORGED;

async fn judge(body: Vec<u8>, assertion: serde_json::Value) -> Outcome {
    let server = TestServer::start(Transport::Plain, move |_| Reply::Full {
        status: 200,
        headers: vec![],
        body: body.clone(),
    })
    .await;
    let url = format!("http://127.0.0.1:{}/", server.port());
    let check = json!({"timeout": "5s", "http": {"url": url, "expect": {"json": [assertion]}}});
    probe_once(&spec(check), &MapRefs::default()).await
}

fn assert_safe(outcome: &Outcome, words: &str) {
    assert_eq!(outcome.reason, Reason::BodyMismatch, "{}", outcome.message);
    assert!(
        outcome.message.contains(words),
        "{:?} lacks {words:?}",
        outcome.message
    );
    assert!(outcome.message.len() <= 1024, "{}", outcome.message.len());
    assert!(
        !outcome
            .message
            .chars()
            .any(|c| c.is_control() || c == '\u{202E}'),
        "{:?}",
        outcome.message
    );
}

#[tokio::test]
async fn hostile_json_bodies_fail_bounded_and_escaped() {
    let exists = json!({"path": "$.a", "exists": true});
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000)).into_bytes();
    assert_safe(
        &judge(deep, exists.clone()).await,
        "recursion limit exceeded",
    );
    let huge = b"{\"a\": 1e99999}".to_vec();
    assert_safe(&judge(huge, exists.clone()).await, "number out of range");
    let utf8 = b"{\"a\": \"\xc3\x28\"}".to_vec();
    assert_safe(&judge(utf8, exists.clone()).await, "the body is not JSON");
    let text = format!("{FORGED}{}", "x".repeat(100_000)).into_bytes();
    assert_safe(&judge(text, exists).await, "the body is not JSON");
    let long =
        serde_json::to_vec(&json!({"a": format!("{FORGED}{}", "y".repeat(500_000))})).unwrap();
    let outcome = judge(long, json!({"path": "$.a", "equals": "ok"})).await;
    assert_safe(&outcome, "$.a is \"down\\n2030");
    let keys = serde_json::to_vec(&json!({"items": {FORGED: 1, "b": 2}})).unwrap();
    let outcome = judge(keys, json!({"path": "$.items.*", "equals": 2})).await;
    assert_safe(&outcome, "$.items.* (at $['items']['down");
    let big = b"{\"a\": 123456789012345678901234567890123456789}".to_vec();
    let outcome = judge(big, json!({"path": "$.a", "equals": 1.2345678901234567e38})).await;
    assert_eq!(outcome.reason, Reason::Succeeded, "{}", outcome.message);
}
