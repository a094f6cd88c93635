//! Credentials stay with their origin: on a redirect to another scheme, host or port, the
//! Authorization, Proxy-Authorization and Cookie headers, every header read from a Secret,
//! and the client certificate are withheld, over an https -> http downgrade too.

use canary_operator::{api::Reason, probe::Outcome};
use serde_json::{Value, json};

use canary_test_harness::{
    refs::{MapRefs, probe_once, spec},
    targets::{
        localhost_tls, pki,
        server::{Recorded, Reply, TestServer, Transport, tls_config},
    },
};

fn secrets() -> MapRefs {
    MapRefs::default()
        .secret("probe", "token", "Bearer s3cret")
        .secret("probe", "key", "api-key-value")
}

/// Headers that are credentials, one that is read from a Secret, and one that is not.
fn headers() -> Value {
    json!([
        {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "probe", "key": "token"}}},
        {"name": "Proxy-Authorization", "value": "Basic cHJveHk="},
        {"name": "Cookie", "value": "session=abc"},
        {"name": "X-Api-Key", "valueFrom": {"secretKeyRef": {"name": "probe", "key": "key"}}},
        {"name": "X-Probe", "value": "canary"},
    ])
}

fn assert_no_credentials(request: &Recorded) {
    for name in [
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-api-key",
    ] {
        assert_eq!(
            request.header(name),
            None,
            "{name} leaked to the redirect target"
        );
    }
    assert_eq!(
        request.header("x-probe"),
        Some("canary"),
        "plain headers still go"
    );
}

async fn recorder() -> TestServer {
    TestServer::start(Transport::Plain, |_| Reply::ok("ok")).await
}

async fn probe(url: String, extra: Value) -> Outcome {
    let mut spec_json = json!({"timeout": "5s", "http": {"url": url, "headers": headers()}});
    if let (Some(target), Some(extra)) = (spec_json.as_object_mut(), extra.as_object()) {
        target.extend(extra.clone());
    }
    probe_once(&spec(spec_json), &secrets()).await
}

#[tokio::test]
async fn a_redirect_to_another_port_gets_no_credentials() {
    let target = recorder().await;
    let location = format!("http://127.0.0.1:{}/landing", target.port());
    let origin =
        TestServer::start(Transport::Plain, move |_| Reply::redirect(302, &location)).await;
    let outcome = probe(format!("http://127.0.0.1:{}/", origin.port()), json!({})).await;
    assert_credentials_stayed(&outcome, &origin, &target);
}

/// The probe passed; the origin got the credentials, the redirect target none.
fn assert_credentials_stayed(outcome: &Outcome, origin: &TestServer, target: &TestServer) {
    assert_eq!(outcome.reason, Reason::Succeeded, "{}", outcome.message);
    let first = &origin.requests()[0];
    assert_eq!(first.header("authorization"), Some("Bearer s3cret"));
    assert_no_credentials(&target.requests()[0]);
}

#[tokio::test]
async fn a_redirect_to_another_host_gets_no_credentials_on_any_later_hop() {
    // 127.0.0.2 is another host on the same machine; the target redirects once more to
    // itself, and that hop stays without credentials too.
    let target = TestServer::start_on(
        "127.0.0.2:0".parse().unwrap(),
        Transport::Plain,
        |r| match r.path.as_str() {
            "/back" => Reply::ok("ok"),
            _ => Reply::redirect(302, "/back"),
        },
    )
    .await;
    let location = format!("http://127.0.0.2:{}/hop", target.port());
    let origin =
        TestServer::start(Transport::Plain, move |_| Reply::redirect(307, &location)).await;
    let outcome = probe(format!("http://127.0.0.1:{}/", origin.port()), json!({})).await;
    assert_eq!(outcome.reason, Reason::Succeeded, "{}", outcome.message);
    let requests = target.requests();
    assert_eq!(
        requests.len(),
        2,
        "the redirect and the same-host hop after it"
    );
    requests.iter().for_each(assert_no_credentials);
}

#[tokio::test]
async fn a_same_origin_redirect_keeps_credentials() {
    let origin = TestServer::start(Transport::Plain, |r| match r.path.as_str() {
        "/new" => Reply::ok("ok"),
        _ => Reply::redirect(301, "/new"),
    })
    .await;
    let outcome = probe(format!("http://127.0.0.1:{}/old", origin.port()), json!({})).await;
    assert_eq!(outcome.reason, Reason::Succeeded, "{}", outcome.message);
    let landing = &origin.requests()[1];
    assert_eq!(landing.header("authorization"), Some("Bearer s3cret"));
    assert_eq!(landing.header("x-api-key"), Some("api-key-value"));
}

#[tokio::test]
async fn an_https_to_http_downgrade_gets_no_credentials() {
    let target = recorder().await;
    let (ca, config) = localhost_tls("Downgrade CA");
    let location = format!("http://localhost:{}/plain", target.port());
    let origin = TestServer::start(Transport::Tls(config), move |_| {
        Reply::redirect(302, &location)
    })
    .await;
    let refs = secrets().config_map("ca", "ca.crt", ca.pem.clone());
    let spec_json = json!({
        "timeout": "5s",
        "http": {"url": format!("https://localhost:{}/", origin.port()), "headers": headers()},
        "tlsPolicy": {"caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}}},
    });
    let outcome = probe_once(&spec(spec_json), &refs).await;
    assert_credentials_stayed(&outcome, &origin, &target);
}

#[tokio::test]
async fn the_client_certificate_is_presented_only_to_the_configured_origin() {
    let ca = pki::Ca::root("mTLS CA");
    let leaf = ca.leaf(
        &["localhost"],
        time::Duration::days(-1),
        time::Duration::days(30),
    );
    let client = ca.client("canary-probe");
    let mtls = || {
        tls_config(
            vec![leaf.der.clone()],
            leaf.key(),
            &[&rustls::version::TLS13],
            Some(ca.der.clone()),
        )
    };
    let target = TestServer::start(Transport::Tls(mtls()), |_| Reply::ok("ok")).await;
    let location = format!("https://localhost:{}/", target.port());
    let origin = TestServer::start(Transport::Tls(mtls()), move |_| {
        Reply::redirect(302, &location)
    })
    .await;
    let refs = MapRefs::default()
        .config_map("ca", "ca.crt", ca.pem.clone())
        .secret("client", "tls.crt", client.pem.clone())
        .secret("client", "tls.key", client.key_pem.clone());
    let spec_json = json!({
        "timeout": "5s",
        "http": {"url": format!("https://localhost:{}/", origin.port())},
        "tlsPolicy": {
            "caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}},
            "clientCertificate": {"secretName": "client"},
        },
    });
    let outcome = probe_once(&spec(spec_json), &refs).await;
    assert_eq!(
        origin.requests().len(),
        1,
        "the configured origin got the certificate"
    );
    assert!(
        target.requests().is_empty(),
        "the redirect target got no certificate: {}",
        outcome.message
    );
    assert_eq!(
        outcome.reason,
        Reason::TLSHandshakeFailed,
        "{}",
        outcome.message
    );
}
