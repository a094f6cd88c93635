//! `tlsPolicy.expectServedCertificate`: a loopback TLS server serving certificate A while the
//! Secret (in memory, or a `--secrets-dir` folder) holds B is `CertificateNotDeployed`; the
//! same certificate passes. The Secret is a reference like any other (the operator's
//! `--secret-reference-label` gate reads the list `references()` gives).

use canary_operator::{
    api::{Reason, Reference, ReferenceKind, validate},
    files::DirReferences,
    probe::{self, Outcome, ProbeContext},
};
use canary_test_harness::{
    refs::{MapRefs, probe_once, spec},
    targets::{Ca, Leaf, TestServer, days},
};
use serde_json::{Value, json};

/// A CA trusted through ConfigMap `ca`, and two leaves it signed for `localhost`: the one
/// served and its renewal.
struct Renewal {
    ca: Ca,
    served: Leaf,
    renewed: Leaf,
}

fn renewal() -> Renewal {
    let ca = Ca::root("Served CA");
    let served = ca.leaf(&["localhost"], days(-60), days(5));
    let renewed = ca.leaf(&["localhost"], days(-1), days(89));
    Renewal {
        ca,
        served,
        renewed,
    }
}

/// An https check of `server` expecting the leaf of Secret `web-tls`.
fn https(server: &TestServer) -> Value {
    json!({
        "timeout": "3s",
        "http": {"url": format!("https://localhost:{}/", server.port())},
        "tlsPolicy": {
            "caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}},
            "minRemainingValidity": "1h",
            "expectServedCertificate": {"secretRef": {"name": "web-tls"}},
        },
    })
}

fn refs(ca: &Ca, tls_crt: String) -> MapRefs {
    MapRefs::default()
        .config_map("ca", "ca.crt", ca.pem.clone())
        .secret("web-tls", "tls.crt", tls_crt)
}

fn assert_reason(outcome: &Outcome, reason: Reason) {
    assert_eq!(outcome.reason, reason, "{}", outcome.message);
}

#[tokio::test]
async fn a_renewed_certificate_not_rolled_out_is_not_deployed() {
    let pki = renewal();
    let server = TestServer::https(&pki.served).await;
    // The Secret holds the renewal (leaf, then its CA, as cert-manager writes tls.crt).
    let secret = format!("{}{}", pki.renewed.pem, pki.ca.pem);
    let outcome = probe_once(&spec(https(&server)), &refs(&pki.ca, secret)).await;
    assert_reason(&outcome, Reason::CertificateNotDeployed);
    assert!(
        outcome.message.contains("Secret \"web-tls\"") && outcome.message.contains("expires in"),
        "{}",
        outcome.message
    );
    // The served facts are still reported.
    assert!(outcome.tls().unwrap().verified);

    let same = format!("{}{}", pki.served.pem, pki.ca.pem);
    let outcome = probe_once(&spec(https(&server)), &refs(&pki.ca, same)).await;
    assert_reason(&outcome, Reason::Succeeded);
}

#[tokio::test]
async fn tls_probes_compare_the_served_leaf_too() {
    let pki = renewal();
    let server = TestServer::https(&pki.served).await;
    let check = |secret: String| {
        let spec = spec(json!({
            "tls": {"host": "localhost", "port": server.port()},
            "tlsPolicy": {"caBundle": {"configMapKeyRef": {"name": "ca", "key": "ca.crt"}},
                          "minRemainingValidity": "1h",
                          "expectServedCertificate": {"secretRef": {"name": "web-tls"}}},
        }));
        let valid = validate(&spec).unwrap();
        probe::build(&valid, &refs(&pki.ca, secret)).unwrap()
    };
    let ctx = ProbeContext::default();
    let stale = probe::run(&check(pki.renewed.pem.clone()), &ctx).await;
    assert_reason(&stale, Reason::CertificateNotDeployed);
    let current = probe::run(&check(pki.served.pem.clone()), &ctx).await;
    assert_reason(&current, Reason::Succeeded);
}

#[tokio::test]
async fn the_secret_is_read_from_the_secrets_dir_in_standalone_mode() {
    let pki = renewal();
    let server = TestServer::https(&pki.served).await;
    let dir = tempfile::tempdir().unwrap();
    let write = |folder: &str, key: &str, text: &str| {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        std::fs::write(dir.path().join(folder).join(key), text).unwrap();
    };
    write("secrets/web-tls", "tls.crt", &pki.renewed.pem);
    write("configmaps/ca", "ca.crt", &pki.ca.pem);
    let refs = DirReferences {
        secrets_dir: Some(dir.path().join("secrets")),
        config_maps_dir: Some(dir.path().join("configmaps")),
    };
    let valid = validate(&spec(https(&server))).unwrap();
    let run = |refs: &DirReferences| probe::build(&valid, refs).unwrap();
    let ctx = ProbeContext::default();
    assert_reason(
        &probe::run(&run(&refs), &ctx).await,
        Reason::CertificateNotDeployed,
    );
    write("secrets/web-tls", "tls.crt", &pki.served.pem);
    assert_reason(&probe::run(&run(&refs), &ctx).await, Reason::Succeeded);
}

#[test]
fn the_secret_is_a_reference_and_must_hold_a_certificate() {
    let server_less = json!({
        "http": {"url": "https://localhost/"},
        "tlsPolicy": {"expectServedCertificate": {"secretRef": {"name": "web-tls"}}},
    });
    let valid = validate(&spec(server_less.clone())).unwrap();
    assert_eq!(
        valid.references(),
        [Reference {
            kind: ReferenceKind::Secret,
            name: "web-tls".into()
        }]
    );
    let missing = probe::build(&valid, &MapRefs::default()).unwrap_err();
    assert_eq!(missing.reason(), Reason::ReferenceNotFound);
    let not_pem = MapRefs::default().secret("web-tls", "tls.crt", "not a certificate");
    let error = probe::build(&valid, &not_pem).unwrap_err();
    assert_eq!(error.reason(), Reason::InvalidSpec);
    assert!(
        error.to_string().contains("holds no certificate"),
        "{error}"
    );

    let mut bad_name = server_less;
    bad_name["tlsPolicy"]["expectServedCertificate"]["secretRef"]["name"] = json!("Web_TLS");
    let errors = validate(&spec(bad_name)).unwrap_err();
    assert_eq!(
        errors[0].field,
        "spec.tlsPolicy.expectServedCertificate.secretRef.name"
    );
}
