//! The token endpoint over TLS: it gets the check's trust (caBundle), client certificate and
//! minimum version, none of the check's expectations about the target (serverName,
//! expectedIssuer, pins), and is verified even when the check's `verify` is false.

use canary_operator::{
    api::Reason,
    probe::{self, Outcome, ProbeContext},
};
use canary_test_harness::{
    refs::{MapRefs, build, spec},
    targets::{Ca, Leaf, Transport, days, tls_config, tls13},
};
use serde_json::{Value, json};

use crate::idp::{Api, Idp, SECRET, check};

/// Three CAs: the target's, the token endpoint's and the client certificate's.
struct Pki {
    target: Ca,
    idp: Ca,
    client: Leaf,
    client_ca: Ca,
}

impl Pki {
    fn new() -> Self {
        let client_ca = Ca::root("Client CA");
        Self {
            target: Ca::root("Target CA"),
            idp: Ca::root("Idp CA"),
            client: client_ca.client("canary"),
            client_ca,
        }
    }

    /// A token endpoint for `localhost` requiring a client certificate, speaking `versions`.
    async fn idp(&self, versions: &[&'static rustls::SupportedProtocolVersion]) -> Idp {
        let leaf = self.idp.leaf(&["localhost"], days(-1), days(90));
        let config = tls_config(
            vec![leaf.der.clone()],
            leaf.key(),
            versions,
            Some(self.client_ca.der.clone()),
        );
        Idp::start_on(Transport::Tls(config), json!(3600)).await
    }

    /// The protected target, also valid as `target.example`.
    async fn api(&self) -> (Api, Leaf) {
        let leaf = self
            .target
            .leaf(&["localhost", "target.example"], days(-1), days(90));
        (Api::start_on(Transport::Tls(tls13(&leaf))).await, leaf)
    }

    fn refs(&self, bundle: &str) -> MapRefs {
        MapRefs::default()
            .secret("idp", "secret", SECRET)
            .secret("probe-mtls", "tls.crt", self.client.pem.clone())
            .secret("probe-mtls", "tls.key", self.client.key_pem.clone())
            .config_map("cas", "ca.crt", bundle)
    }
}

async fn run(check: Value, refs: &MapRefs) -> Outcome {
    probe::run(&build(&spec(check), refs), &ProbeContext::default()).await
}

/// The check of `api` at `idp` with `policy` as its tlsPolicy.
fn with_policy(api: &Api, idp: &Idp, policy: Value) -> Value {
    let mut check = check(api, idp, "Basic");
    check["tlsPolicy"] = policy;
    check
}

#[tokio::test]
async fn the_token_endpoint_gets_the_checks_trust_and_client_certificate_not_its_expectations() {
    let pki = Pki::new();
    let idp = pki.idp(&[&rustls::version::TLS13]).await;
    let (api, leaf) = pki.api().await;
    let bundle = format!("{}{}", pki.target.pem, pki.idp.pem);
    let policy = json!({
        "caBundle": {"configMapKeyRef": {"name": "cas", "key": "ca.crt"}},
        "clientCertificate": {"secretName": "probe-mtls"},
        "minVersion": "1.3",
        "serverName": "target.example",
        "expectedIssuer": "CN=Target CA",
        "expectedDNSNames": ["target.example"],
        "pinnedPublicKeys": [leaf.pin()],
    });
    let outcome = run(with_policy(&api, &idp, policy.clone()), &pki.refs(&bundle)).await;
    assert_eq!(outcome.reason, Reason::Succeeded, "{}", outcome.message);
    assert_eq!(idp.issued(), 1);
    let tls = outcome.tls().expect("the target's TLS facts");
    assert!(
        tls.leaf().unwrap().issuer.contains("Target CA"),
        "the facts are the target's, not the token endpoint's"
    );
    let mut anonymous = policy;
    anonymous
        .as_object_mut()
        .unwrap()
        .remove("clientCertificate");
    let refused = run(with_policy(&api, &idp, anonymous), &pki.refs(&bundle)).await;
    assert_eq!(refused.reason, Reason::AuthFailed, "{}", refused.message);
    assert!(
        refused.message.contains("TLSHandshakeFailed"),
        "{}",
        refused.message
    );
}

#[tokio::test]
async fn the_token_endpoint_is_held_to_the_minimum_version_and_always_verified() {
    let pki = Pki::new();
    let old = pki.idp(&[&rustls::version::TLS12]).await;
    let (api, _) = pki.api().await;
    let bundle = format!("{}{}", pki.target.pem, pki.idp.pem);
    let trusted = json!({
        "caBundle": {"configMapKeyRef": {"name": "cas", "key": "ca.crt"}},
        "clientCertificate": {"secretName": "probe-mtls"},
    });
    let mut strict = trusted.clone();
    strict["minVersion"] = json!("1.3");
    let outcome = run(with_policy(&api, &old, strict), &pki.refs(&bundle)).await;
    assert_eq!(outcome.reason, Reason::AuthFailed, "{}", outcome.message);
    assert!(
        outcome.message.contains("TLSVersionTooLow"),
        "{}",
        outcome.message
    );
    assert_eq!(old.issued(), 0);
    // verify: false is the target's business: the token endpoint is verified all the same.
    let mut unverified = trusted;
    unverified["verify"] = json!(false);
    let untrusted = run(
        with_policy(&api, &old, unverified),
        &pki.refs(&pki.target.pem),
    )
    .await;
    assert_eq!(
        untrusted.reason,
        Reason::AuthFailed,
        "{}",
        untrusted.message
    );
    assert!(
        untrusted.message.contains("CertificateUntrusted"),
        "{}",
        untrusted.message
    );
    assert_eq!(old.issued(), 0);
}
