//! Hostile bodies against `expect.cel`: deep nesting, numbers out of range, huge integers,
//! long strings, invalid UTF-8. Each ends in a bounded, escaped `BodyMismatch` (or a pass
//! where the body is fine), never a panic.

use canary_operator::{api::Reason, probe::Outcome};
use canary_test_harness::{
    refs::{MapRefs, probe_once, spec},
    targets::{Reply, TestServer, Transport},
};
use serde_json::json;

use crate::words::FORGED;

async fn judge(body: Vec<u8>, expression: &str) -> Outcome {
    let server = TestServer::start(Transport::Plain, move |_| Reply::Full {
        status: 200,
        headers: vec![],
        body: body.clone(),
    })
    .await;
    let url = format!("http://127.0.0.1:{}/", server.port());
    let check = json!({"timeout": "5s", "http": {"url": url, "expect": {"cel": expression}}});
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
        !(outcome.message.chars()).any(|c| c.is_control() || c == '\u{202E}'),
        "{:?}",
        outcome.message
    );
}

#[tokio::test]
async fn hostile_bodies_under_cel_fail_bounded_and_escaped() {
    // Deeper than the JSON parser's 128 levels: not JSON, so `body` is the text.
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000)).into_bytes();
    assert_safe(&judge(deep.clone(), "body.a == 1").await, "failed: ");
    let outcome = judge(deep, "size(body) == 400000").await;
    assert_eq!(outcome.reason, Reason::Succeeded, "{}", outcome.message);
    // 128 levels parse; comparing the nested lists recurses within the evaluator's stack.
    let nested = format!("{}1{}", "[".repeat(120), "]".repeat(120)).into_bytes();
    assert_safe(&judge(nested.clone(), "body == [1]").await, "was false");
    assert_safe(
        &judge(nested, "body").await,
        "returned a list of 1, not a bool",
    );
    let huge = b"{\"a\": 1e99999}".to_vec();
    assert_safe(&judge(huge, "body.a > 0").await, "failed: ");
    let big = b"{\"a\": 123456789012345678901234567890123456789}".to_vec();
    let outcome = judge(big, "body.a > 1.0e38").await;
    assert_eq!(outcome.reason, Reason::Succeeded, "{}", outcome.message);
    let long = serde_json::to_vec(&json!({"a": format!("{FORGED}{}", "y".repeat(500_000))}));
    assert_safe(
        &judge(long.unwrap(), "body.a").await,
        "returned the string \"down\\n2030",
    );
    let utf8 = b"{\"a\": \"\xc3\x28\"}".to_vec();
    let outcome = judge(utf8.clone(), "body.startsWith('{')").await;
    assert_eq!(
        outcome.reason,
        Reason::Succeeded,
        "invalid UTF-8 is text: {}",
        outcome.message
    );
    assert_safe(&judge(utf8, "body.a == 'x'").await, "failed: ");
    let text = format!("{FORGED}{}", "x".repeat(100_000)).into_bytes();
    assert_safe(&judge(text, "body.endsWith('y')").await, "was false");
}
