//! A target's words are data: what a hostile server puts in a `grpc-message`, DNS records
//! (CAA values, names whose `xn--` labels hickory decodes), certificate names, HTTP reason
//! phrases, `Location` headers and bodies reaches the outcome (and so status, Events, logs, the
//! page and `canary check`) with control characters escaped and lengths cut, while expectations
//! still match the raw values. Before the fix, the first three carried raw newlines and ESC.

use std::time::Duration;

use canary_operator::{
    api::{HealthCheckStatus, Reason},
    probe::{self, Outcome, ProbeContext},
    readiness::{StatusInputs, next_status},
};
use canary_test_harness::{
    refs::{MapRefs, build, spec},
    targets::{
        Ca, Reply, TestServer, Transport, days,
        dns::{DnsReply, DnsServer, answer, record},
        grpc::{GrpcServer, Offer},
        tls13,
    },
};
use hickory_proto::rr::{Name, RData, rdata};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// A complete forged log line, a carriage return, terminal escapes and a bidi override.
pub const FORGED: &str = "down\n2030-01-01T00:00:00.000000Z  INFO canary: check is ready check=shop/api\r\u{1b}[2J\u{1b}[32mall good\u{202E}";

/// Longest message an outcome carries.
const MAX_MESSAGE: usize = 1024;

async fn run(spec_json: Value) -> Outcome {
    let probe = build(&spec(spec_json), &MapRefs::default());
    probe::run(&probe, &ProbeContext::default()).await
}

/// Whether `c` would act on a terminal or a log parser rather than be read.
fn acts(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Asserts the probe failed with `reason` and its message is shown as data.
fn assert_failed_as_data(outcome: &Outcome, reason: Reason) {
    assert_eq!(outcome.reason, reason, "{}", outcome.message);
    assert_data(&outcome.message, "the message");
}

/// Asserts `text` is shown as data: nothing in it acts, and it is cut.
pub fn assert_data(text: &str, what: &str) {
    assert!(
        !text.chars().any(acts),
        "{what} carries raw controls: {text:?}"
    );
    assert!(
        text.chars().count() <= MAX_MESSAGE,
        "{what} is {} characters long",
        text.chars().count()
    );
}

#[tokio::test]
async fn a_grpc_message_is_escaped_and_cut() {
    let words = format!("{FORGED}{}", "x".repeat(5000));
    let server = GrpcServer::start(Offer::Fails(14, words), None).await;
    let target = format!("127.0.0.1:{}", server.port());
    let outcome = run(json!({"timeout": "3s", "grpc": {"target": target}})).await;
    assert_failed_as_data(&outcome, Reason::UnexpectedStatus);
    assert!(
        outcome.message.contains("down\\n2030-01-01") && outcome.message.contains("\\u{1b}[2J"),
        "the words are still there to read: {}",
        outcome.message
    );
    assert!(
        outcome.message.ends_with('…') && outcome.message.chars().count() < 400,
        "the message is cut to 256 characters: {}",
        outcome.message
    );
    // Status, and the transition that Events and logs are made of, carry the same text.
    let inputs = StatusInputs {
        failure_threshold: 1,
        success_threshold: 1,
        ..StatusInputs::default()
    };
    let next = next_status(&HealthCheckStatus::default(), &outcome, inputs);
    let transition = next.transition.expect("a transition to False");
    assert_data(
        &transition.message,
        "the transition's message (Event note, log line)",
    );
    for condition in &next.status.conditions {
        assert_data(&condition.message, "a condition's message");
    }
}

/// `xn--` + the punycode of ESC `[31m` and `é`: hickory decodes it to a name holding ESC.
fn hostile_name() -> Name {
    Name::from_labels(vec![&b"xn--\x1b[31m-fsa"[..], b"example"]).unwrap()
}

/// A CAA record whose value holds a forged line: built as `issue "zzz…"`, then the value's
/// bytes replaced on the wire (hickory will not build such a value).
fn caa_reply(query: &hickory_proto::op::Message) -> DnsReply {
    // Labels of at most 63 bytes, as long as the forged text.
    let placeholder: String = (0..FORGED.len())
        .map(|i| if i % 50 == 49 { '.' } else { 'z' })
        .collect();
    let caa = rdata::CAA::new_issue(false, Some(Name::from_ascii(&placeholder).unwrap()), vec![]);
    let reply = answer(query, vec![record(query, 60, RData::CAA(caa))]);
    let mut bytes = reply.to_vec().unwrap();
    let at = (bytes.windows(placeholder.len()))
        .position(|w| w == placeholder.as_bytes())
        .expect("the placeholder on the wire");
    bytes[at..at + FORGED.len()].copy_from_slice(FORGED.as_bytes());
    DnsReply::Raw(bytes)
}

#[tokio::test]
async fn dns_caa_values_and_decoded_punycode_names_are_escaped() {
    let server = DnsServer::start(|q, _| match q.queries[0].query_type.to_string().as_str() {
        "CAA" => caa_reply(q),
        _ => DnsReply::Message(answer(
            q,
            vec![record(q, 60, RData::MX(rdata::MX::new(10, hostile_name())))],
        )),
    })
    .await;
    let dns = |record_type: &str, expect: Value| {
        json!({"timeout": "2s", "dns": {"server": server.addr.to_string(),
            "query": {"name": "shop.example", "type": record_type}, "expect": expect}})
    };
    // Expectations read the raw value: ESC and the newline match.
    let caa = run(dns(
        "CAA",
        json!({"answers": {"matchRegex": "\\n2030.*\\x1b\\[2J"}}),
    ))
    .await;
    assert_eq!(caa.reason, Reason::Succeeded, "{}", caa.message);
    let mx = run(dns(
        "MX",
        json!({"answers": {"containsAll": ["10 mail.example"]}}),
    ))
    .await;
    assert_eq!(mx.reason, Reason::BodyMismatch, "{}", mx.message);
    for (outcome, shown) in [(&caa, "\\u{1b}[2J"), (&mx, "\\u{1b}[31m")] {
        assert_data(&outcome.message, "the message");
        assert!(outcome.message.contains(shown), "{}", outcome.message);
        let facts = outcome.dns().expect("DNS facts");
        for answer in &facts.answers {
            assert_data(answer, "an answer in status");
        }
    }
}

#[tokio::test]
async fn certificate_names_are_escaped_and_expectations_match_them_raw() {
    let issuer = "Evil\nCA\u{1b}[31m";
    let ca = Ca::root(issuer);
    let leaf = ca.leaf(&["evil\u{1b}[2J.example"], days(-1), days(90));
    let server = TestServer::start(Transport::Tls(tls13(&leaf)), |_| Reply::ok("ok")).await;
    let outcome = run(json!({"timeout": "3s",
        "tls": {"host": "127.0.0.1", "port": server.port()},
        "tlsPolicy": {"verify": false, "expectedIssuer": issuer}}))
    .await;
    assert_eq!(outcome.reason, Reason::Succeeded, "{}", outcome.message);
    assert_data(&outcome.message, "the message");
    assert!(
        outcome.message.contains("evil\\u{1b}[2J.example"),
        "{}",
        outcome.message
    );
    let leaf = outcome.tls().and_then(|t| t.leaf()).expect("leaf");
    for (field, text) in [("subject", &leaf.subject), ("issuer", &leaf.issuer)] {
        assert_data(text, field);
    }
    assert!(
        leaf.issuer.contains("Evil\\nCA\\u{1b}[31m"),
        "{}",
        leaf.issuer
    );
    leaf.dns_names.iter().for_each(|n| assert_data(n, "a SAN"));
}

/// A server that answers every connection with `head` and then holds it open.
async fn raw_server(head: Vec<u8>) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let head = head.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let _ = stream.write_all(&head).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    (port, task)
}

#[tokio::test]
async fn reason_phrases_locations_and_bodies_never_reach_messages_raw() {
    // A reason phrase and a body with obs-text, tabs and control bytes: neither is shown.
    let body = b"body\n\x1b[2J 2030-01-01 INFO forged\x07";
    let mut head = format!(
        "HTTP/1.1 503 \u{fe}evil\tphrase\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    head.extend_from_slice(body);
    let (port, _task) = raw_server(head).await;
    let url = format!("http://127.0.0.1:{port}/");
    let outcome =
        run(json!({"timeout": "2s", "http": {"url": url, "expect": {"bodyRegex": "^ok$"}}})).await;
    assert_failed_as_data(&outcome, Reason::UnexpectedStatus);
    assert!(!outcome.message.contains("evil") && !outcome.message.contains("forged"));
    // A redirect loop through a 6,000-character Location: the message stays short.
    let long = format!("/{}?token=secret\tx", "a".repeat(6000));
    let target = long.clone();
    let looping = TestServer::start(Transport::Plain, move |_| Reply::redirect(302, &target)).await;
    let outcome = run(json!({"timeout": "5s", "http": {"url": looping.url("/")}})).await;
    assert_eq!(
        outcome.reason,
        Reason::TooManyRedirects,
        "{}",
        outcome.message
    );
    assert_data(&outcome.message, "the message");
    assert!(!outcome.message.contains("secret"), "{}", outcome.message);
}
