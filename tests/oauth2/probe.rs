//! The engine with an OAuth2 client: caching, expiry, refetch, failures, wire format.

use std::time::Duration;

use base64::Engine;
use canary_operator::{
    api::Reason,
    probe::{self, Outcome, Probe, ProbeContext},
};
use canary_test_harness::{
    refs::{MapRefs, build, spec},
    targets::Reply,
    wait::eventually,
};
use serde_json::{Value, json};

use crate::idp::{Api, Idp, SECRET, check};

fn built(check: Value) -> Probe {
    build(
        &spec(check),
        &MapRefs::default().secret("idp", "secret", format!("{SECRET}\n")),
    )
}

async fn run(probe: &Probe) -> Outcome {
    probe::run(probe, &ProbeContext::default()).await
}

fn assert_reason(outcome: &Outcome, reason: Reason) {
    assert_eq!(outcome.reason, reason, "{}", outcome.message);
}

#[tokio::test]
async fn a_token_is_fetched_once_and_reused_across_runs() {
    let (idp, api) = (Idp::start(json!(3600)).await, Api::start().await);
    let probe = built(check(&api, &idp, "Basic"));
    let first = run(&probe).await;
    assert_reason(&first, Reason::Succeeded);
    assert!(first.phases.auth.is_some(), "the fetch is the phase auth");
    for _ in 0..4 {
        let again = run(&probe).await;
        assert_reason(&again, Reason::Succeeded);
        assert_eq!(again.phases.auth, None, "a cached token costs no auth time");
    }
    assert_eq!(idp.issued(), 1, "one token for five runs");
    // Whatever logs a probe with `{:?}` shows neither the cached token nor the secret.
    let debugged = format!("{probe:?}");
    assert!(
        debugged.contains("Secret(..)") && debugged.contains("Sensitive"),
        "{debugged}"
    );
    assert!(
        !debugged.contains(SECRET) && !debugged.contains("tok3n-"),
        "{debugged}"
    );
    assert_eq!(api.authorizations(), vec!["Bearer tok3n-1"; 5]);
}

#[tokio::test]
async fn a_token_is_refreshed_after_it_expires() {
    // expires_in 1s: reused for 0.9s (the margin is a tenth of a short lifetime).
    let (idp, api) = (Idp::start(json!(1)).await, Api::start().await);
    let probe = built(check(&api, &idp, "Basic"));
    assert_reason(&run(&probe).await, Reason::Succeeded);
    let refreshed = eventually(
        Duration::from_secs(10),
        "a second token",
        Duration::from_millis(100),
        async || {
            let outcome = run(&probe).await;
            match idp.issued() {
                2 => Ok(outcome),
                n => Err(format!("{n} issued, last run {:?}", outcome.reason)),
            }
        },
    )
    .await;
    assert_reason(&refreshed, Reason::Succeeded);
    assert_eq!(api.authorizations().last().unwrap(), "Bearer tok3n-2");
}

#[tokio::test]
async fn a_token_without_expires_in_is_reused_too() {
    let (idp, api) = (Idp::start(Value::Null).await, Api::start().await);
    let probe = built(check(&api, &idp, "Basic"));
    for _ in 0..3 {
        assert_reason(&run(&probe).await, Reason::Succeeded);
    }
    assert_eq!(idp.issued(), 1);
}

#[tokio::test]
async fn a_refused_cached_token_is_refetched_once_before_the_verdict() {
    let (idp, api) = (Idp::start(json!(3600)).await, Api::start().await);
    let probe = built(check(&api, &idp, "Basic"));
    assert_reason(&run(&probe).await, Reason::Succeeded);
    api.revoke_below(2);
    let retried = run(&probe).await;
    assert_reason(&retried, Reason::Succeeded);
    assert_eq!(idp.issued(), 2);
    assert_eq!(
        api.authorizations(),
        ["Bearer tok3n-1", "Bearer tok3n-1", "Bearer tok3n-2"]
    );
    api.revoke_below(usize::MAX);
    let refused = run(&probe).await;
    assert_reason(&refused, Reason::UnexpectedStatus);
    assert_eq!(refused.http_status(), Some(401));
    assert!(
        refused.message.contains("status 401") && refused.message.contains("freshly fetched"),
        "{}",
        refused.message
    );
    assert_eq!(idp.issued(), 3, "one refetch, not more");
    // The refused token is not kept: the next run asks again (and is refused without a retry).
    assert_reason(&run(&probe).await, Reason::UnexpectedStatus);
    assert_eq!(idp.issued(), 4);
}

#[tokio::test]
async fn a_failing_token_endpoint_is_auth_failed_naming_its_status_and_error() {
    let (idp, api) = (Idp::start(json!(3600)).await, Api::start().await);
    let echo =
        format!(r#"{{"error":"invalid_client","error_description":"secret {SECRET} is wrong"}}"#);
    idp.refuse(Reply::status(401, &echo));
    let outcome = run(&built(check(&api, &idp, "Basic"))).await;
    assert_reason(&outcome, Reason::AuthFailed);
    let expected = format!(
        "token endpoint {}: answered 401: invalid_client",
        idp.token_url()
    );
    assert!(
        outcome.message.starts_with(&expected),
        "{}",
        outcome.message
    );
    assert!(!outcome.message.contains(SECRET), "{}", outcome.message);
    let phases: Vec<&str> = outcome.phases.iter().map(|(name, _)| name).collect();
    assert_eq!(
        phases,
        ["auth"],
        "the token endpoint's DNS and connect count as auth"
    );
    assert!(
        api.server.requests().is_empty(),
        "the target is not asked without a token"
    );
}

#[tokio::test]
async fn basic_style_sends_form_encoded_credentials_in_an_authorization_header() {
    let (idp, api) = (Idp::start(json!(3600)).await, Api::start().await);
    assert_reason(
        &run(&built(check(&api, &idp, "Basic"))).await,
        Reason::Succeeded,
    );
    let request = &idp.server.requests()[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/oauth2/token")
    );
    assert_eq!(
        request.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let basic = request
        .header("authorization")
        .unwrap()
        .strip_prefix("Basic ")
        .unwrap();
    let pair = base64::engine::general_purpose::STANDARD
        .decode(basic)
        .unwrap();
    // RFC 6749 2.3.1: each part form-urlencoded before the Basic encoding.
    assert_eq!(
        String::from_utf8(pair).unwrap(),
        "canary+probe:s3cr3t%3Awith%2Bodd%2Fchars"
    );
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("grant_type", "client_credentials"),
            ("scope", "health:read openid"),
            ("audience", "https://api.example"),
            ("resource", "urn:shop"),
        ]
    );
}

#[tokio::test]
async fn post_style_sends_the_credentials_as_form_fields() {
    let (idp, api) = (Idp::start(json!(3600)).await, Api::start().await);
    assert_reason(
        &run(&built(check(&api, &idp, "Post"))).await,
        Reason::Succeeded,
    );
    let request = &idp.server.requests()[0];
    assert_eq!(request.header("authorization"), None);
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    assert!(
        form.contains(&("client_id".into(), "canary probe".into())),
        "{form:?}"
    );
    assert!(
        form.contains(&("client_secret".into(), SECRET.into())),
        "{form:?}"
    );
    assert_eq!(form[0], ("grant_type".into(), "client_credentials".into()));
}

#[tokio::test]
async fn a_missing_client_secret_is_reference_not_found() {
    let (idp, api) = (Idp::start(json!(3600)).await, Api::start().await);
    let valid = canary_operator::api::validate(&spec(check(&api, &idp, "Basic"))).unwrap();
    let error = probe::build(&valid, &MapRefs::default()).unwrap_err();
    assert_eq!(error.reason(), Reason::ReferenceNotFound);
    assert!(
        error
            .to_string()
            .starts_with("spec.http.auth.oauth2ClientCredentials.clientSecretRef"),
        "{error}"
    );
}

/// The cache lives in the built probe: a runner is replaced (and its cache dropped) when its
/// revision changes, which a rotated client secret or an edited auth block does, and only then.
#[tokio::test]
async fn a_rotated_secret_or_an_edited_grant_replaces_the_runner_and_its_cache() {
    use canary_operator::runner::{Origin, RunnerSpec};
    let (idp, api) = (Idp::start(json!(3600)).await, Api::start().await);
    let ctx = std::sync::Arc::new(ProbeContext::default());
    let revision = |spec_json: Value, secret: &str| {
        let spec = spec(spec_json);
        let valid = canary_operator::api::validate(&spec);
        let refs = MapRefs::default().secret("idp", "secret", secret);
        RunnerSpec::build(Origin::default(), &spec, &valid, &refs, &ctx).revision
    };
    let base = revision(check(&api, &idp, "Basic"), SECRET);
    assert_eq!(
        base,
        revision(check(&api, &idp, "Basic"), SECRET),
        "same spec and secret"
    );
    assert_ne!(
        base,
        revision(check(&api, &idp, "Basic"), "rotated"),
        "rotated secret"
    );
    let mut scoped = check(&api, &idp, "Basic");
    scoped["http"]["auth"]["oauth2ClientCredentials"]["scopes"] = json!(["other"]);
    assert_ne!(base, revision(scoped, SECRET), "edited grant");
}
