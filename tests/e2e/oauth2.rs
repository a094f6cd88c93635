//! `http.auth.oauth2ClientCredentials` through the operator: the client secret is read from the
//! API server under the rules of every reference (the label gate makes an unlabelled Secret
//! `ReferenceForbidden`), the token is reused across runs, and rotating the Secret drops it (the
//! next token is asked for with the new secret). Neither reaches the HealthCheck's status.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use base64::Engine;
use canary_test_harness::{
    cluster::{http_check, secret},
    targets::{Reply, TestServer, Transport},
    wait::eventually,
};
use serde_json::{Value, json};

use crate::Scenario;

const NS: &str = "oauth2";
const LABEL: &str = "canary.dev/reference=allowed";

/// A token endpoint issuing `tok3n-N`, valid for an hour.
async fn idp() -> TestServer {
    let issued = Arc::new(AtomicUsize::new(0));
    TestServer::start(Transport::Plain, move |_| {
        let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
        let body = json!({"access_token": format!("tok3n-{n}"), "expires_in": 3600});
        Reply::ok(&body.to_string())
    })
    .await
}

/// The client secrets the token endpoint was asked with (from the Basic credentials).
fn secrets_seen(idp: &TestServer) -> Vec<String> {
    (idp.requests().iter())
        .filter_map(|r| r.header("authorization")?.strip_prefix("Basic "))
        .filter_map(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(|pair| {
            String::from_utf8_lossy(&pair)
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn client_secret(name: &str, value: &str, labelled: bool) -> Value {
    let mut object = secret(NS, name, "Opaque", &[("client-secret", value)]);
    if labelled {
        object["metadata"]["labels"] = json!({"canary.dev/reference": "allowed"});
    }
    object
}

fn oauth_check(name: &str, target: &TestServer, idp: &TestServer, secret: &str) -> Value {
    let grant = json!({"tokenURL": idp.url("/token"), "clientID": "canary",
        "clientSecretRef": {"name": secret, "key": "client-secret"}});
    http_check(
        NS,
        name,
        &target.url("/"),
        json!({"http": {"auth": {"oauth2ClientCredentials": grant}}}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_secret_follows_the_reference_rules_and_its_rotation_drops_the_token() {
    let idp = idp().await;
    let target = TestServer::start(Transport::Plain, |r| {
        match r
            .header("authorization")
            .is_some_and(|a| a.starts_with("Bearer tok3n-"))
        {
            true => Reply::ok("up"),
            false => Reply::status(401, "no"),
        }
    })
    .await;
    let objects = [
        client_secret("idp", "client-secret-v1", true),
        client_secret("idp-unlabelled", "client-secret-x", false),
        oauth_check("oauth", &target, &idp, "idp"),
        oauth_check("gated", &target, &idp, "idp-unlabelled"),
    ];
    let args = ["--secret-reference-label", LABEL, "--reference-ttl", "1s"];
    let s = Scenario::start(NS, &args, &objects).await;
    s.watch.ready_as("oauth", "True", "Succeeded").await;
    let gated = s
        .watch
        .ready_as("gated", "False", "ReferenceForbidden")
        .await;
    assert!(gated["status"].to_string().contains(LABEL), "{gated}");
    s.operator
        .wait_runs(NS, "oauth", Some("success"), 3.0)
        .await;
    assert_eq!(
        secrets_seen(&idp),
        ["client-secret-v1"],
        "one token for every run"
    );
    s.cluster
        .kubectl
        .apply(&[client_secret("idp", "client-secret-v2", true)])
        .await;
    eventually(
        Duration::from_secs(20),
        "a token asked for with the rotated secret",
        Duration::from_millis(200),
        async || match secrets_seen(&idp).last().map(String::as_str) {
            Some("client-secret-v2") => Ok(()),
            other => Err(format!("last: {other:?}")),
        },
    )
    .await;
    let status = s.watch.ready_as("oauth", "True", "Succeeded").await["status"].to_string();
    for hidden in ["client-secret-v", "client-secret-x", "tok3n-"] {
        assert!(
            !status.contains(hidden),
            "status shows {hidden:?}: {status}"
        );
    }
}
