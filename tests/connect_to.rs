//! `http.connectTo` (curl's `--connect-to`): `https://app.test/` probed on loopback with the
//! Host header and SNI of the URL, checked by the servers; the deny list applied to the
//! dialled address; a certificate for another name still a hostname mismatch.

use std::sync::Arc;

use canary_operator::{
    api::{Reason, validate},
    probe::{self, Outcome, ProbeContext},
};
use canary_test_harness::{
    refs::{MapRefs, build, probe_once, spec},
    targets::{Ca, Leaf, Reply, TestServer, Transport, days, h2::H2Server, tls13},
};
use rustls::{ServerConfig, server::ResolvesServerCertUsingSni, sign::CertifiedKey};
use serde_json::{Value, json};

/// A TLS 1.3 server config that completes a handshake only for SNI `name` (rustls refuses
/// any other name, or none), presenting `leaf`.
fn sni_only(name: &str, leaf: &Leaf) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = CertifiedKey::from_der(vec![leaf.der.clone()], leaf.key(), &provider).unwrap();
    let mut resolver = ResolvesServerCertUsingSni::new();
    resolver.add(name, key).unwrap();
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    Arc::new(config)
}

/// A CA and, trusted through ConfigMap `ca`, a leaf it signed for `names`.
fn pki(names: &[&str]) -> (MapRefs, Leaf) {
    let ca = Ca::root("ConnectTo CA");
    let leaf = ca.leaf(names, days(-1), days(90));
    (MapRefs::default().config_map("ca", "ca.crt", ca.pem), leaf)
}

fn trusting_ca(http: Value) -> Value {
    json!({
        "timeout": "3s",
        "http": http,
        "tlsPolicy": {"caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}}},
    })
}

fn assert_reason(outcome: &Outcome, reason: Reason) {
    assert_eq!(outcome.reason, reason, "{}", outcome.message);
}

#[tokio::test]
async fn https_app_test_is_probed_on_loopback_with_its_own_host_and_sni() {
    let (refs, leaf) = pki(&["app.test"]);
    let server = TestServer::start(Transport::Tls(sni_only("app.test", &leaf)), |r| {
        match r.header("host") {
            Some("app.test") => Reply::ok("ok"),
            _ => Reply::status(421, "misdirected"),
        }
    })
    .await;
    let dial = format!("127.0.0.1:{}", server.port());
    let spec = spec(trusting_ca(
        json!({"url": "https://app.test/healthz", "connectTo": dial}),
    ));
    let outcome = probe_once(&spec, &refs).await;
    assert_reason(&outcome, Reason::Succeeded);
    assert!(outcome.tls().unwrap().verified);
    let requests = server.requests();
    assert_eq!(requests[0].header("host"), Some("app.test"));
    assert_eq!(requests[0].path, "/healthz");
    assert_eq!(
        validate(&spec).unwrap().probe.target(),
        format!("https://app.test/healthz via {dial}")
    );
    // The server does check SNI: another server name does not get through the handshake.
    let mut other = trusting_ca(json!({"url": "https://app.test/healthz", "connectTo": dial}));
    other["tlsPolicy"]["serverName"] = json!("other.test");
    let outcome = probe_once(&canary_test_harness::refs::spec(other), &refs).await;
    assert_reason(&outcome, Reason::TLSHandshakeFailed);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn http2_over_tls_and_in_cleartext_keep_the_authority() {
    let (refs, leaf) = pki(&["app.test"]);
    let tls = H2Server::start(Some(sni_only("app.test", &leaf)), 200, "ok").await;
    let spec_json = trusting_ca(json!({"url": "https://app.test:8443/", "version": "2",
        "connectTo": format!("127.0.0.1:{}", tls.port())}));
    assert_reason(
        &probe_once(&spec(spec_json), &refs).await,
        Reason::Succeeded,
    );
    assert_eq!(
        tls.requests()[0].authority.as_deref(),
        Some("app.test:8443")
    );

    let clear = H2Server::start(None, 200, "ok").await;
    let spec_json = json!({"http": {"url": "http://app.test/", "version": "2",
        "connectTo": format!("localhost:{}", clear.port())}});
    let outcome = probe_once(&spec(spec_json), &MapRefs::default()).await;
    assert_reason(&outcome, Reason::Succeeded);
    assert_eq!(clear.requests()[0].authority.as_deref(), Some("app.test"));
}

#[tokio::test]
async fn redirects_to_the_same_host_go_through_connect_to_and_others_resolve() {
    let elsewhere = TestServer::start(Transport::Plain, |r| {
        Reply::ok(r.header("host").unwrap_or_default())
    })
    .await;
    let away = format!("http://127.0.0.1:{}/final", elsewhere.port());
    let server = TestServer::start(Transport::Plain, move |r| match r.path.as_str() {
        "/" => Reply::redirect(302, "/next"),
        "/next" => Reply::redirect(302, &away),
        _ => Reply::status(500, "connectTo followed a redirect to another host"),
    })
    .await;
    let spec_json = json!({"http": {"url": "http://app.test/", "connectTo": format!("127.0.0.1:{}", server.port()),
        "expect": {"bodyContains": "127.0.0.1"}}});
    let outcome = probe_once(&spec(spec_json), &MapRefs::default()).await;
    assert_reason(&outcome, Reason::Succeeded);
    let hosts: Vec<(String, Option<String>)> = (server.requests().into_iter())
        .map(|r| (r.path.clone(), r.header("host").map(str::to_string)))
        .collect();
    let app = Some("app.test".to_string());
    assert_eq!(hosts, [("/".into(), app.clone()), ("/next".into(), app)]);
    assert_eq!(elsewhere.requests()[0].path, "/final");
}

#[tokio::test]
async fn the_deny_list_judges_the_connect_to_address() {
    let server = TestServer::start_on(([127, 0, 0, 2], 0).into(), Transport::Plain, |_| {
        Reply::ok("ok")
    })
    .await;
    let check = build(
        &spec(
            json!({"http": {"url": "http://app.test/", "connectTo": format!("127.0.0.2:{}", server.port())}}),
        ),
        &MapRefs::default(),
    );
    let strict = ProbeContext::denying(vec!["127.0.0.2/32".parse().unwrap()]);
    let outcome = probe::run(&check, &strict).await;
    assert_reason(&outcome, Reason::TargetDenied);
    assert!(outcome.message.contains("127.0.0.2"), "{}", outcome.message);
    assert_eq!(server.accepted(), 0, "a denied address is never dialled");
    // The same check under the default deny list reaches the server.
    let allowed = probe::run(&check, &ProbeContext::default()).await;
    assert_reason(&allowed, Reason::Succeeded);

    let metadata =
        spec(json!({"http": {"url": "http://app.test/", "connectTo": "169.254.169.254:80"}}));
    let outcome = probe_once(&metadata, &MapRefs::default()).await;
    assert_reason(&outcome, Reason::TargetDenied);
}

#[tokio::test]
async fn a_certificate_for_another_name_is_a_hostname_mismatch() {
    let (refs, leaf) = pki(&["other.test"]);
    let server = TestServer::start(Transport::Tls(tls13(&leaf)), |_| Reply::ok("ok")).await;
    let spec_json = trusting_ca(json!({"url": "https://app.test/",
        "connectTo": format!("127.0.0.1:{}", server.port())}));
    let outcome = probe_once(&spec(spec_json), &refs).await;
    assert_reason(&outcome, Reason::CertificateHostnameMismatch);
    assert!(server.requests().is_empty());
}

#[test]
fn invalid_connect_to_values_are_refused_with_the_field_named() {
    for (value, says) in [
        ("127.0.0.1", "the port is required"),
        ("::1:8443", "IPv6 address in brackets"),
        ("[::1]:0", "from 1 to 65535"),
    ] {
        let spec = spec(json!({"http": {"url": "https://app.test/", "connectTo": value}}));
        let errors = validate(&spec).unwrap_err();
        assert_eq!(errors[0].field, "spec.http.connectTo", "{value}");
        assert!(errors[0].message.contains(says), "{value}: {}", errors[0]);
    }
}
