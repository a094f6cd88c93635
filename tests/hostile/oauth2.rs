//! A hostile token endpoint (`http.auth.oauth2ClientCredentials`): one that never answers
//! fails the probe within its one timeout as `AuthFailed` naming the phase; one that answers
//! 10 MiB is cut at 64 KiB (memory bounded through the real binary, 32 checks at once); one on
//! a denied address is never dialled. Every one of them is `AuthFailed`: the deny list's
//! refusal too, naming the deny list (the target itself was never the problem).

use std::{process::Stdio, time::Duration};

use canary_operator::{
    api::Reason,
    probe::{self, Outcome, ProbeContext},
};
use canary_test_harness::{
    procfs::wait_with_peak,
    refs::{MapRefs, build, spec},
    targets::{Reply, TestServer, Transport},
};
use serde_json::{Value, json};

const CANARY: &str = env!("CARGO_BIN_EXE_canary");
const SECRET: &str = "hostile-secret";

/// An http check of `target` whose token comes from `token_url`.
fn check(target: &str, token_url: &str, timeout: &str) -> Value {
    json!({"timeout": timeout, "http": {"url": target, "auth": {"oauth2ClientCredentials": {
        "tokenURL": token_url, "clientID": "canary",
        "clientSecretRef": {"name": "idp", "key": "secret"},
    }}}})
}

async fn run(check: Value, ctx: &ProbeContext) -> Outcome {
    let refs = MapRefs::default().secret("idp", "secret", SECRET);
    probe::run(&build(&spec(check), &refs), ctx).await
}

async fn target() -> TestServer {
    TestServer::start(Transport::Plain, |_| Reply::ok("up")).await
}

#[tokio::test]
async fn a_token_endpoint_that_never_answers_fails_within_the_timeout_as_auth_failed() {
    let (idp, api) = (
        TestServer::start(Transport::Plain, |_| Reply::Silent).await,
        target().await,
    );
    let token_url = idp.url("/token");
    let started = std::time::Instant::now();
    let outcome = run(
        check(&api.url("/"), &token_url, "1s"),
        &ProbeContext::default(),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(outcome.reason, Reason::AuthFailed, "{}", outcome.message);
    for words in ["within the 1s timeout", "OAuth2 token request", &token_url] {
        assert!(
            outcome.message.contains(words),
            "{words:?} in {}",
            outcome.message
        );
    }
    assert!(
        outcome
            .phases
            .auth
            .is_some_and(|t| t >= Duration::from_millis(900))
    );
    assert!(api.requests().is_empty());
}

#[tokio::test]
async fn a_ten_mib_token_answer_is_cut_at_64_kib() {
    let huge = Reply::Zeros {
        status: 200,
        len: 10 << 20,
    };
    let (idp, api) = (
        TestServer::start(Transport::Plain, move |_| huge.clone()).await,
        target().await,
    );
    let outcome = run(
        check(&api.url("/"), &idp.url("/token"), "5s"),
        &ProbeContext::default(),
    )
    .await;
    assert_eq!(outcome.reason, Reason::AuthFailed, "{}", outcome.message);
    assert!(
        outcome.message.contains("more than 64 KiB"),
        "{}",
        outcome.message
    );
}

/// Checks run at once against the 10 MiB answer: 320 MiB if any buffered it whole.
const CHECKS: usize = 32;
/// What `canary check` holds besides the answers (see budget.rs: 36-38 MiB for 64 checks).
const OWN_MIB: f64 = 48.0;

#[tokio::test]
async fn thirty_two_checks_against_a_ten_mib_token_answer_stay_small() {
    let huge = Reply::Zeros {
        status: 200,
        len: 10 << 20,
    };
    let (idp, api) = (
        TestServer::start(Transport::Plain, move |_| huge.clone()).await,
        target().await,
    );
    let (dir, secrets) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::create_dir(secrets.path().join("idp")).unwrap();
    std::fs::write(secrets.path().join("idp/secret"), SECRET).unwrap();
    let docs: Vec<String> = (0..CHECKS)
        .map(|i| {
            json!({"apiVersion": "canary.dev/v1alpha1", "kind": "HealthCheck",
                "metadata": {"name": format!("huge-{i}")},
                "spec": check(&api.url("/"), &idp.url("/token"), "10s")})
            .to_string()
        })
        .collect();
    std::fs::write(dir.path().join("checks.yaml"), docs.join("\n---\n")).unwrap();
    let child = tokio::process::Command::new(CANARY)
        .args(["check", "-o", "json", "--secrets-dir"])
        .arg(secrets.path())
        .arg("-f")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (out, peak) = wait_with_peak(child, Duration::from_secs(60), "canary check").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let list: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let reasons: Vec<&str> = (list["items"].as_array().expect("a List").iter())
        .map(|r| r["status"]["lastResult"]["reason"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(reasons, vec!["AuthFailed"; CHECKS]);
    assert!(
        peak < OWN_MIB + 16.0,
        "peak RSS {peak:.0} MiB for {CHECKS} checks"
    );
    eprintln!("peak RSS of canary check with {CHECKS} 10 MiB token answers: {peak:.1} MiB");
}

#[tokio::test]
async fn a_token_endpoint_on_a_denied_address_is_never_dialled() {
    let idp = TestServer::start_on("127.0.0.2:0".parse().unwrap(), Transport::Plain, |_| {
        Reply::ok(r#"{"access_token":"t"}"#)
    })
    .await;
    let api = target().await;
    let mut ctx = ProbeContext::default();
    ctx.deny.push("127.0.0.2/32".parse().unwrap());
    let outcome = run(check(&api.url("/"), &idp.url("/token"), "2s"), &ctx).await;
    assert_eq!(outcome.reason, Reason::AuthFailed, "{}", outcome.message);
    assert!(
        outcome.message.contains("deny list forbids") && outcome.message.contains("TargetDenied"),
        "{}",
        outcome.message
    );
    assert_eq!(idp.accepted(), 0, "the token endpoint was dialled");
    assert!(api.requests().is_empty());
}
