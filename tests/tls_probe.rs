//! The TLS matrix: real rustls servers with generated certificates; every case asserts the
//! exact reason and the facts reported, failures included.

use canary_operator::{api::Reason, probe::Outcome};
use canary_test_harness::{
    refs::{MapRefs, probe_once, spec},
    targets::{Ca, Leaf, Reply, TestServer, Transport, tls_config},
};
use rustls::{
    SupportedProtocolVersion,
    version::{TLS12, TLS13},
};
use serde_json::{Value, json};
use time::Duration;

/// A root, an intermediate signed by it, and the root trusted through ConfigMap `ca`.
struct Pki {
    root: Ca,
    intermediate: Ca,
}

fn pki() -> Pki {
    let root = Ca::root("Canary Test Root");
    let intermediate = root.intermediate("Canary Test Intermediate");
    Pki { root, intermediate }
}

impl Pki {
    fn leaf(&self, names: &[&str], from_days: i64, to_days: i64) -> Leaf {
        self.intermediate
            .leaf(names, Duration::days(from_days), Duration::days(to_days))
    }

    fn refs(&self) -> MapRefs {
        MapRefs::default().config_map("ca", "ca.crt", self.root.pem.clone())
    }
}

/// A TLS server presenting `leaf` and `chain_extra`, limited to `versions`.
async fn serve(
    leaf: &Leaf,
    chain_extra: &[&Ca],
    versions: &[&'static SupportedProtocolVersion],
) -> TestServer {
    let mut chain = vec![leaf.der.clone()];
    chain.extend(chain_extra.iter().map(|ca| ca.der.clone()));
    let config = tls_config(chain, leaf.key(), versions, None);
    TestServer::start(Transport::Tls(config), |_| Reply::ok("ok")).await
}

/// An HTTPS probe of `host` at `server`, trusting ConfigMap `ca`, with `policy`.
async fn https(server: &TestServer, host: &str, refs: &MapRefs, policy: Value) -> Outcome {
    let mut policy = policy;
    policy["caBundle"] = json!({"configMapKeyRef": {"name": "ca", "key": "ca.crt"}});
    let spec = spec(json!({
        "timeout": "5s",
        "http": {"url": format!("https://{host}:{}/healthz", server.port())},
        "tlsPolicy": policy,
    }));
    probe_once(&spec, refs).await
}

/// A leaf of the test PKI served with its intermediate over TLS 1.3.
struct Served {
    pki: Pki,
    leaf: Leaf,
    server: TestServer,
}

/// Serves a leaf for `names`, valid from `from_days` to `to_days` relative to now.
async fn served(names: &[&str], from_days: i64, to_days: i64) -> Served {
    let pki = pki();
    let leaf = pki.leaf(names, from_days, to_days);
    let server = serve(&leaf, &[&pki.intermediate], &[&TLS13]).await;
    Served { pki, leaf, server }
}

impl Served {
    /// Probes `https://localhost:PORT/healthz` with `policy`.
    async fn probe(&self, policy: Value) -> Outcome {
        https(&self.server, "localhost", &self.pki.refs(), policy).await
    }
}

fn assert_reason(outcome: &Outcome, reason: Reason) {
    assert_eq!(outcome.reason, reason, "message: {}", outcome.message);
}

fn assert_leaf_facts(outcome: &Outcome, leaf: &Leaf, names: &[&str]) {
    let facts = outcome.tls().expect("TLS facts must be reported");
    let reported = facts.leaf().expect("leaf facts");
    assert_eq!(
        reported.not_after.as_second(),
        leaf.not_after.unix_timestamp()
    );
    assert_eq!(
        reported.not_before.as_second(),
        leaf.not_before.unix_timestamp()
    );
    assert_eq!(reported.dns_names, names);
    assert!(
        reported.issuer.contains("Canary Test Intermediate"),
        "issuer {}",
        reported.issuer
    );
    assert!(
        reported.subject.contains(&format!("CN={}", names[0])),
        "subject {}",
        reported.subject
    );
    assert!(!reported.serial_number.is_empty());
}

#[tokio::test]
async fn valid_chain_via_ca_bundle_succeeds_with_facts() {
    let pki = pki();
    let leaf = pki.leaf(&["localhost", "api.test"], -1, 90);
    let server = serve(&leaf, &[&pki.intermediate], &[&TLS13, &TLS12]).await;
    let outcome = https(&server, "localhost", &pki.refs(), json!({})).await;
    assert_reason(&outcome, Reason::Succeeded);
    assert_leaf_facts(&outcome, &leaf, &["localhost", "api.test"]);
    let facts = outcome.tls().unwrap();
    assert!(facts.verified);
    assert_eq!(facts.version.as_deref(), Some("TLSv1.3"));
    assert!(facts.cipher_suite.as_deref().unwrap().starts_with("TLS13_"));
    assert_eq!(facts.chain.len(), 2);
    assert_eq!(outcome.http_status(), Some(200));
    assert!(outcome.phases.tls.is_some() && outcome.phases.connect.is_some());
}

#[tokio::test]
async fn expired_certificate_reports_expired_with_its_dates() {
    let served = served(&["localhost"], -30, -1).await;
    let outcome = served.probe(json!({})).await;
    assert_reason(&outcome, Reason::CertificateExpired);
    assert_leaf_facts(&outcome, &served.leaf, &["localhost"]);
    assert!(!outcome.tls().unwrap().verified);
    assert!(
        served.server.requests().is_empty(),
        "no request may be sent over an unverified session"
    );
}

#[tokio::test]
async fn not_yet_valid_certificate_is_reported() {
    let served = served(&["localhost"], 1, 30).await;
    let outcome = served.probe(json!({})).await;
    assert_reason(&outcome, Reason::CertificateNotYetValid);
    assert_leaf_facts(&outcome, &served.leaf, &["localhost"]);
}

#[tokio::test]
async fn certificate_expiring_in_five_days_fails_a_fourteen_day_policy() {
    let served = served(&["localhost"], -60, 5).await;
    let outcome = served.probe(json!({"minRemainingValidity": "336h"})).await;
    assert_reason(&outcome, Reason::CertificateExpiringSoon);
    assert!(
        outcome.message.contains("expires in 4d23h") && outcome.message.contains("< 14d"),
        "{}",
        outcome.message
    );
    assert_leaf_facts(&outcome, &served.leaf, &["localhost"]);
    assert!(outcome.tls().unwrap().verified, "the chain itself is valid");
}

#[tokio::test]
async fn hostname_mismatch_is_reported_with_the_served_names() {
    let served = served(&["other.test"], -1, 90).await;
    let outcome = served.probe(json!({})).await;
    assert_reason(&outcome, Reason::CertificateHostnameMismatch);
    assert_leaf_facts(&outcome, &served.leaf, &["other.test"]);
}

#[tokio::test]
async fn server_name_override_sets_sni_and_verified_name() {
    let Served { pki, server, .. } = served(&["api.shop.example"], -1, 90).await;
    let policy = json!({"serverName": "api.shop.example"});
    let outcome = https(&server, "127.0.0.1", &pki.refs(), policy).await;
    assert_reason(&outcome, Reason::Succeeded);
}

#[tokio::test]
async fn unknown_issuer_is_untrusted() {
    let pki = pki();
    let stranger = Ca::root("Stranger Root");
    let leaf = stranger.leaf(&["localhost"], Duration::days(-1), Duration::days(90));
    let server = serve(&leaf, &[], &[&TLS13]).await;
    let outcome = https(&server, "localhost", &pki.refs(), json!({})).await;
    assert_reason(&outcome, Reason::CertificateUntrusted);
    let facts = outcome.tls().unwrap();
    assert!(facts.leaf().unwrap().issuer.contains("Stranger Root"));
}

#[tokio::test]
async fn self_signed_certificate_is_untrusted_and_still_described() {
    let pki = pki();
    let own = Ca::root("localhost");
    let config = tls_config(
        vec![own.der.clone()],
        rustls_pki_types::PrivateKeyDer::Pkcs8(own.key.serialize_der().into()),
        &[&TLS13],
        None,
    );
    let server = TestServer::start(Transport::Tls(config), |_| Reply::ok("ok")).await;
    let outcome = https(&server, "localhost", &pki.refs(), json!({})).await;
    assert_reason(&outcome, Reason::CertificateUntrusted);
    let facts = outcome.tls().unwrap();
    let leaf = facts.leaf().unwrap();
    assert_eq!(leaf.subject, leaf.issuer);
}

#[tokio::test]
async fn server_omitting_the_intermediate_is_untrusted() {
    let pki = pki();
    let leaf = pki.leaf(&["localhost"], -1, 90);
    let server = serve(&leaf, &[], &[&TLS13]).await;
    let outcome = https(&server, "localhost", &pki.refs(), json!({})).await;
    assert_reason(&outcome, Reason::CertificateUntrusted);
    assert!(
        outcome.message.contains("intermediate"),
        "{}",
        outcome.message
    );
    assert_leaf_facts(&outcome, &leaf, &["localhost"]);
}

#[tokio::test]
async fn pinned_key_match_passes_and_mismatch_fails() {
    let served = served(&["localhost"], -1, 90).await;
    let other = served.pki.leaf(&["localhost"], -1, 90);
    let both = [other.pin(), served.leaf.pin()];
    let hit = served.probe(json!({"pinnedPublicKeys": both})).await;
    assert_reason(&hit, Reason::Succeeded);
    let miss = served
        .probe(json!({"pinnedPublicKeys": [other.pin()]}))
        .await;
    assert_reason(&miss, Reason::CertificatePinMismatch);
    assert!(miss.tls().is_some());
}

#[tokio::test]
async fn expected_names_and_issuer_hit_and_miss() {
    let served = served(&["localhost", "api.test"], -1, 90).await;
    let names_hit = (served.probe(json!({"expectedDNSNames": ["api.test", "localhost"]}))).await;
    assert_reason(&names_hit, Reason::Succeeded);
    let names_miss = (served.probe(json!({"expectedDNSNames": ["api.test", "www.test"]}))).await;
    assert_reason(&names_miss, Reason::CertificateMismatch);
    assert!(names_miss.message.contains("www.test"));
    let issuer_hit = (served.probe(json!({"expectedIssuer": "CN=Canary Test Intermediate"}))).await;
    assert_reason(&issuer_hit, Reason::Succeeded);
    let issuer_miss = served
        .probe(json!({"expectedIssuer": "CN=Let's Encrypt"}))
        .await;
    assert_reason(&issuer_miss, Reason::CertificateMismatch);
    assert_leaf_facts(&issuer_miss, &served.leaf, &["localhost", "api.test"]);
}

#[tokio::test]
async fn min_version_1_3_against_a_tls12_only_server() {
    let pki = pki();
    let leaf = pki.leaf(&["localhost"], -1, 90);
    let server = serve(&leaf, &[&pki.intermediate], &[&TLS12]).await;
    let refs = pki.refs();
    let outcome = https(&server, "localhost", &refs, json!({"minVersion": "1.3"})).await;
    assert_reason(&outcome, Reason::TLSVersionTooLow);
    let ok = https(&server, "localhost", &refs, json!({"minVersion": "1.2"})).await;
    assert_reason(&ok, Reason::Succeeded);
    assert_eq!(ok.tls().unwrap().version.as_deref(), Some("TLSv1.2"));
}

#[tokio::test]
async fn mutual_tls_with_and_without_a_client_certificate() {
    let pki = pki();
    let leaf = pki.leaf(&["localhost"], -1, 90);
    let chain = vec![leaf.der.clone(), pki.intermediate.der.clone()];
    let config = tls_config(
        chain,
        leaf.key(),
        &[&TLS13, &TLS12],
        Some(pki.root.der.clone()),
    );
    let server = TestServer::start(Transport::Tls(config), |_| Reply::ok("ok")).await;
    let client = pki.root.client("probe.test");
    let refs = pki
        .refs()
        .secret("probe-mtls", "tls.crt", client.pem.clone())
        .secret("probe-mtls", "tls.key", client.key_pem.clone());
    let with = https(
        &server,
        "localhost",
        &refs,
        json!({"clientCertificate": {"secretName": "probe-mtls"}}),
    )
    .await;
    assert_reason(&with, Reason::Succeeded);
    let without = https(&server, "localhost", &refs, json!({})).await;
    assert_reason(&without, Reason::TLSHandshakeFailed);
    assert_eq!(
        server.requests().len(),
        1,
        "only the authenticated probe reaches the server"
    );
}

#[tokio::test]
async fn verify_false_accepts_a_self_signed_certificate_and_reports_facts() {
    let own = Ca::root("Self Signed");
    let leaf = own.leaf(&["localhost"], Duration::days(-1), Duration::days(90));
    let server = serve(&leaf, &[], &[&TLS13]).await;
    let spec = spec(json!({
        "http": {"url": format!("https://localhost:{}/", server.port())},
        "tlsPolicy": {"verify": false},
    }));
    let outcome = probe_once(&spec, &MapRefs::default()).await;
    assert_reason(&outcome, Reason::Succeeded);
    let facts = outcome.tls().unwrap();
    assert!(!facts.verified);
    assert!(facts.leaf().unwrap().issuer.contains("Self Signed"));
}

#[tokio::test]
async fn short_lived_certificate_past_two_thirds_of_its_life_is_renewal_overdue() {
    let pki = pki();
    let leaf = pki
        .intermediate
        .leaf(&["localhost"], Duration::hours(-20), Duration::hours(4));
    let server = serve(&leaf, &[&pki.intermediate], &[&TLS13]).await;
    let policy = json!({"minRemainingValidity": "1h", "minRemainingLifetimePercent": 33});
    let outcome = https(&server, "localhost", &pki.refs(), policy).await;
    assert_reason(&outcome, Reason::CertificateExpiringSoon);
    assert!(
        outcome.message.contains("17% of its lifetime left"),
        "{}",
        outcome.message
    );
    let relaxed = json!({"minRemainingValidity": "1h", "minRemainingLifetimePercent": 10});
    let relaxed = https(&server, "localhost", &pki.refs(), relaxed).await;
    assert_reason(&relaxed, Reason::Succeeded);
}

#[tokio::test]
async fn tls_probe_checks_the_handshake_only() {
    let pki = pki();
    let leaf = pki.leaf(&["db.test"], -1, 90);
    let server = serve(&leaf, &[&pki.intermediate], &[&TLS13]).await;
    let spec = spec(json!({
        "tls": {"host": "127.0.0.1", "port": server.port()},
        "tlsPolicy": {"serverName": "db.test", "caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}}},
    }));
    let outcome = probe_once(&spec, &pki.refs()).await;
    assert_reason(&outcome, Reason::Succeeded);
    assert_eq!(outcome.http_status(), None);
    assert!(outcome.tls().unwrap().verified);
    assert!(server.requests().is_empty());
}
