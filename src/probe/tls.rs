//! TLS handshakes that capture the served chain before verification, so an expired, mismatched
//! or untrusted certificate still reports its dates, names and issuer.
//!
//! What does not change between probes is built once: trust stores and their WebPKI verifiers
//! are interned by content ([`Trust`]), shared by every check with the same CA bundle, and each
//! check's client configuration is prebuilt. A probe owns only what its handshake must: the
//! verifier that captures the served chain. Every probe is still a full handshake.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex, OnceLock, Weak},
};

use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::{
    CertFacts, Failure, TlsCapture, certs,
    sniff::{Sniff, Sniffed, Spoken},
    trace::Phase,
    trace::Trace,
};
use crate::api::{Reason, TargetText, TlsVersion, ValidTlsPolicy};

/// TLS expectations and trust for one check, references resolved and client configurations
/// built.
#[derive(Debug)]
pub struct TlsSettings {
    pub policy: ValidTlsPolicy,
    /// System roots plus the check's caBundle, shared with every check of the same bundle.
    pub trust: Arc<Trust>,
    /// Without a client certificate.
    anonymous: Arc<ClientConfig>,
    /// With the check's client certificate, when it has one.
    authenticated: Option<Arc<ClientConfig>>,
    /// The leaf the server must present (`expectServedCertificate`), read from its Secret.
    pub expected_leaf: Option<super::served::ExpectedLeaf>,
}

impl TlsSettings {
    /// Builds the client configurations once; fails when the client certificate is unusable.
    pub fn new(
        policy: ValidTlsPolicy,
        trust: Arc<Trust>,
        client_auth: Option<ClientAuth>,
    ) -> Result<Self, String> {
        let anonymous = anonymous_config(policy.min_version)?;
        let authenticated = match client_auth {
            Some(auth) => {
                let verifier = Arc::new(CapturingVerifier::new(&trust, policy.verify));
                Some(Arc::new(base_config(
                    policy.min_version,
                    Some(auth),
                    verifier,
                )?))
            }
            None => None,
        };
        Ok(Self {
            policy,
            trust,
            anonymous,
            authenticated,
            expected_leaf: None,
        })
    }

    /// Whether a client certificate is configured.
    pub fn has_client_certificate(&self) -> bool {
        self.authenticated.is_some()
    }
}

/// Trust anchors and the WebPKI verifier built from them.
#[derive(Debug)]
pub struct Trust {
    pub roots: Arc<RootCertStore>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
}

/// Trust built from system roots plus a bundle, by the SHA-256 of the bundle's certificates;
/// an entry lives as long as some check holds it.
static INTERNED: LazyLock<Mutex<HashMap<[u8; 32], Weak<Trust>>>> = LazyLock::new(Mutex::default);

impl Trust {
    fn new(roots: RootCertStore) -> Self {
        let roots = Arc::new(roots);
        let webpki = (!roots.is_empty())
            .then(|| WebPkiServerVerifier::builder_with_provider(roots.clone(), provider()).build())
            .and_then(|built| {
                built
                    .map_err(|error| tracing::error!(%error, "cannot build a TLS verifier"))
                    .ok()
            });
        Self { roots, webpki }
    }

    /// The system's trust anchors, for checks without a caBundle.
    pub fn system() -> Arc<Trust> {
        static SYSTEM: LazyLock<Arc<Trust>> = LazyLock::new(|| {
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(system_roots().iter().cloned());
            Arc::new(Trust::new(store))
        });
        SYSTEM.clone()
    }

    /// System roots plus `bundle`, shared with every check that holds the same certificates.
    /// `None` when no certificate of the bundle is a usable trust anchor.
    pub fn with_bundle(bundle: &[CertificateDer<'static>]) -> Option<Arc<Trust>> {
        use sha2::Digest;
        let mut digest = sha2::Sha256::new();
        for cert in bundle {
            digest.update((cert.len() as u64).to_le_bytes());
            digest.update(cert.as_ref());
        }
        let key: [u8; 32] = digest.finalize().into();
        let mut interned = crate::lock(&INTERNED);
        if let Some(trust) = interned.get(&key).and_then(Weak::upgrade) {
            return Some(trust);
        }
        let mut store = (*Trust::system().roots).clone();
        let (added, _) = store.add_parsable_certificates(bundle.iter().cloned());
        if added == 0 {
            return None;
        }
        let trust = Arc::new(Trust::new(store));
        interned.retain(|_, held| held.strong_count() > 0);
        interned.insert(key, Arc::downgrade(&trust));
        Some(trust)
    }
}

/// A client certificate chain and its key, for mutual TLS.
#[derive(Debug)]
pub struct ClientAuth {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// The process-wide crypto provider (aws-lc-rs: RSA verification about twice as fast as ring's;
/// rustls is the only TLS stack), offering AES-128-GCM first, as strong for a probe and its
/// SHA-256 cheaper than AES-256-GCM's SHA-384, and sending an X25519 key share alone first: a
/// post-quantum hybrid share would add an ML-KEM key to every probe, while a server that insists
/// on another group still gets it after a HelloRetryRequest.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: LazyLock<Arc<CryptoProvider>> = LazyLock::new(|| {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        (provider.kx_groups).sort_by_key(|group| group.name() != rustls::NamedGroup::X25519);
        provider.cipher_suites.sort_by_key(|suite| {
            let name = format!("{:?}", suite.suite());
            match () {
                () if name.contains("AES_128") => 0,
                () if name.contains("CHACHA20") => 1,
                () => 2,
            }
        });
        Arc::new(provider)
    });
    PROVIDER.clone()
}

/// The system's trust anchors, loaded once.
pub fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: LazyLock<Vec<CertificateDer<'static>>> = LazyLock::new(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for error in &loaded.errors {
            tracing::warn!(%error, "could not load some system CA certificates");
        }
        loaded.certs
    });
    &ROOTS
}

/// The application protocol offered in ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    /// `http/1.1`.
    Http1,
    /// `h2`: HTTP/2 and gRPC; the server must select it.
    H2,
    /// `dot`: DNS over TLS (RFC 7858); servers without ALPN ignore it.
    Dot,
    /// None offered (raw TLS probes).
    None,
}

impl Alpn {
    fn offered(self) -> Vec<Vec<u8>> {
        match self {
            Self::Http1 => vec![b"http/1.1".to_vec()],
            Self::H2 => vec![b"h2".to_vec()],
            Self::Dot => vec![b"dot".to_vec()],
            Self::None => Vec::new(),
        }
    }
}

/// An established session with what it showed.
pub struct Session<S> {
    pub stream: TlsStream<Sniffed<S>>,
    pub facts: TlsCapture,
}

impl<S> Session<S> {
    /// The protocol the server selected in ALPN, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        self.stream.get_ref().1.alpn_protocol()
    }

    /// Fails with `ProtocolMismatch` unless the server selected `h2`, as an HTTP/2 server
    /// reached over TLS must (RFC 9113, section 3.2).
    pub fn require_h2(&self) -> Result<(), Failure> {
        match self.alpn() {
            Some(b"h2") => Ok(()),
            other => Err(Failure::new(
                Reason::ProtocolMismatch,
                format!(
                    "the server did not agree to HTTP/2 over TLS (ALPN offered h2, server selected {}): it does not speak HTTP/2 on this port",
                    other.map_or_else(
                        || "none".to_string(),
                        |p| TargetText(&String::from_utf8_lossy(p)).to_string()
                    )
                ),
            )),
        }
    }

    /// `TLSv1.3, TLS13_AES_128_GCM_SHA256, certificate for x expires in 89d`.
    pub fn summary(&self) -> String {
        let version = self.facts.version.as_deref().unwrap_or("TLS");
        match self.facts.leaf() {
            Some(leaf) => format!(
                "{version}, certificate for {} expires in {}",
                leaf.display_name(),
                certs::human(leaf.not_after, jiff::Timestamp::now())
            ),
            None => version.to_string(),
        }
    }
}

/// Runs a handshake for server name `name` (SNI and the name verified), offering `alpn`, and
/// checks every TLS expectation; the client certificate, if any, is offered only when
/// `client_certificate`.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    name: &str,
    settings: &TlsSettings,
    client_certificate: bool,
    alpn: Alpn,
    trace: &Trace,
) -> Result<Session<S>, Failure> {
    trace.enter(Phase::Tls);
    let server_name = ServerName::try_from(
        name.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
    .map_err(|e| {
        Failure::new(
            Reason::InvalidSpec,
            format!("{name:?} is not a valid TLS server name: {e}"),
        )
    })?;
    let verifier = Arc::new(CapturingVerifier::new(
        &settings.trust,
        settings.policy.verify,
    ));
    let config = client_config(settings, client_certificate, alpn, verifier.clone());
    let (stream, sniff) = Sniffed::new(stream);
    let result = TlsConnector::from(Arc::new(config))
        .connect(server_name, stream)
        .await;
    let captured = verifier.take();
    let mut facts = TlsCapture {
        version: None,
        cipher_suite: None,
        chain: captured
            .chain
            .iter()
            .filter_map(CertFacts::parse_cached)
            .collect(),
        verified: settings.policy.verify && captured.verdict.as_ref().is_some_and(Result::is_ok),
    };
    let stream = match result {
        Ok(stream) => stream,
        Err(error) => {
            if let Some(failure) = plaintext_server(&sniff) {
                return Err(failure);
            }
            trace.set_tls(facts);
            return Err(handshake_failure(&error, captured.verdict, settings));
        }
    };
    let (_, connection) = stream.get_ref();
    facts.version = connection
        .protocol_version()
        .map(|v| version_name(v).to_string());
    facts.cipher_suite = connection
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()));
    trace.set_tls(facts.clone());
    if let Some(expected) = &settings.expected_leaf {
        expected.check(captured.chain.first(), facts.leaf())?;
    }
    certs::check_expectations(&facts, settings, jiff::Timestamp::now())?;
    Ok(Session { stream, facts })
}

/// `ProtocolMismatch` when a failed handshake met a server that answered, but not in TLS.
fn plaintext_server(sniff: &Sniff) -> Option<Failure> {
    let spoken = sniff.spoken();
    if matches!(spoken, Spoken::Nothing | Spoken::Tls) {
        return None;
    }
    let first: String = (sniff.bytes().iter().take(8))
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(Failure::new(
        Reason::ProtocolMismatch,
        format!(
            "the server answered the TLS handshake with {} (first bytes {first}): a TLS client talking to a plaintext server?",
            spoken.describe()
        ),
    ))
}

/// A copy of the check's prebuilt configuration with this handshake's capturing verifier and
/// ALPN.
fn client_config(
    settings: &TlsSettings,
    client_certificate: bool,
    alpn: Alpn,
    verifier: Arc<CapturingVerifier>,
) -> ClientConfig {
    let base = match &settings.authenticated {
        Some(authenticated) if client_certificate => authenticated,
        _ => &settings.anonymous,
    };
    let mut config = ClientConfig::clone(base);
    config.dangerous().set_certificate_verifier(verifier);
    config.alpn_protocols = alpn.offered();
    config
}

/// The configuration without a client certificate. It differs between checks only by the
/// lowest version (each probe copies it with its own verifier and ALPN), so every check shares
/// one of two: a copy per check cost about 600 bytes (docs/perf).
fn anonymous_config(min_version: TlsVersion) -> Result<Arc<ClientConfig>, String> {
    static V1_2: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    static V1_3: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    let shared = match min_version {
        TlsVersion::V1_2 => &V1_2,
        TlsVersion::V1_3 => &V1_3,
    };
    let build = || {
        // Replaced by every probe's own verifier (client_config).
        let placeholder = Arc::new(CapturingVerifier::new(&Trust::system(), true));
        base_config(min_version, None, placeholder).map(Arc::new)
    };
    shared.get_or_init(build).clone()
}

/// The configuration every probe of a check copies: versions, client certificate, and no
/// resumption, so every probe is a full handshake that sees the certificate (ALPN is set per
/// probe kind on the copy).
fn base_config(
    min_version: TlsVersion,
    client_auth: Option<ClientAuth>,
    verifier: Arc<CapturingVerifier>,
) -> Result<ClientConfig, String> {
    let versions: &[&rustls::SupportedProtocolVersion] = match min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client_auth {
        Some(auth) => builder
            .with_client_auth_cert(auth.chain, auth.key)
            .map_err(|e| format!("client certificate unusable: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

fn version_name(version: rustls::ProtocolVersion) -> &'static str {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3",
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2",
        _ => "TLS (unknown version)",
    }
}

/// Turns a failed handshake into a reason, preferring what certificate verification said.
fn handshake_failure(
    error: &std::io::Error,
    verdict: Option<Result<(), rustls::Error>>,
    settings: &TlsSettings,
) -> Failure {
    if let Some(Err(rustls::Error::InvalidCertificate(cert_error))) = verdict
        && settings.policy.verify
    {
        return certificate_failure(&cert_error);
    }
    let tls_error = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    match tls_error {
        Some(rustls::Error::AlertReceived(rustls::AlertDescription::ProtocolVersion))
        | Some(rustls::Error::PeerIncompatible(_)) => Failure::new(
            Reason::TLSVersionTooLow,
            format!(
                "the server does not offer TLS {} or newer ({error})",
                match settings.policy.min_version {
                    TlsVersion::V1_2 => "1.2",
                    TlsVersion::V1_3 => "1.3",
                }
            ),
        ),
        Some(e) => Failure::new(
            Reason::TLSHandshakeFailed,
            format!("TLS handshake failed: {e}"),
        ),
        None => {
            let failure = super::net::classify(error, "TLS handshake");
            match failure.reason {
                Reason::ProberError | Reason::Timeout => failure,
                _ => Failure::new(Reason::TLSHandshakeFailed, failure.message),
            }
        }
    }
}

fn certificate_failure(error: &CertificateError) -> Failure {
    let reason = match error {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            Reason::CertificateExpired
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            Reason::CertificateNotYetValid
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            Reason::CertificateHostnameMismatch
        }
        _ => Reason::CertificateUntrusted,
    };
    let hint = match error {
        CertificateError::UnknownIssuer => {
            " (self-signed, signed by an unknown CA, or the server does not send its intermediate certificates)"
        }
        _ => "",
    };
    Failure::new(
        reason,
        format!("certificate verification failed: {error}{hint}"),
    )
}

/// What the verifier saw during one handshake.
#[derive(Debug, Default)]
struct Captured {
    chain: Vec<CertificateDer<'static>>,
    verdict: Option<Result<(), rustls::Error>>,
}

/// Records the served chain and the WebPKI verdict, then enforces the verdict only when the
/// policy asks to verify. Signatures are always checked (they prove key possession).
#[derive(Debug)]
struct CapturingVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    verify: bool,
    captured: Mutex<Captured>,
    provider: Arc<CryptoProvider>,
}

impl CapturingVerifier {
    fn new(trust: &Trust, verify: bool) -> Self {
        Self {
            webpki: trust.webpki.clone(),
            verify,
            captured: Mutex::new(Captured::default()),
            provider: provider(),
        }
    }

    fn take(&self) -> Captured {
        std::mem::take(&mut *crate::lock(&self.captured))
    }
}

impl ServerCertVerifier for CapturingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = match &self.webpki {
            Some(webpki) => webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ()),
            None => Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            )),
        };
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        *crate::lock(&self.captured) = Captured {
            chain,
            verdict: Some(verdict.clone()),
        };
        match verdict {
            Err(error) if self.verify => Err(error),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let verify = rustls::crypto::verify_tls12_signature;
        verify(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // TLS 1.3 signatures are checked the same way, with the 1.3 rules on schemes.
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use canary_test_harness::targets::Ca;

    use super::*;

    #[test]
    fn checks_with_the_same_bundle_share_one_trust_store_and_verifier() {
        let (a, b) = (Ca::root("Shared CA"), Ca::root("Other CA"));
        let first = Trust::with_bundle(std::slice::from_ref(&a.der)).unwrap();
        let again = Trust::with_bundle(std::slice::from_ref(&a.der)).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "one store per distinct bundle");
        let other = Trust::with_bundle(std::slice::from_ref(&b.der)).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(first.roots.len(), Trust::system().roots.len() + 1);
        drop((first, again));
        let rebuilt = Trust::with_bundle(std::slice::from_ref(&a.der)).unwrap();
        assert_eq!(
            Arc::strong_count(&rebuilt),
            1,
            "rebuilt once nobody held it"
        );
    }

    #[test]
    fn checks_without_a_client_certificate_share_one_configuration_per_lowest_version() {
        let (a, b) = (
            anonymous_config(TlsVersion::V1_2),
            anonymous_config(TlsVersion::V1_2),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(
            Arc::ptr_eq(&a, &b),
            "one configuration for every TLS 1.2+ check"
        );
        let only_1_3 = anonymous_config(TlsVersion::V1_3).unwrap();
        assert!(!Arc::ptr_eq(&a, &only_1_3), "minVersion 1.3 has its own");
    }

    #[test]
    fn aes_128_and_x25519_are_offered_first_and_every_default_stays() {
        let suites: Vec<String> = (provider().cipher_suites.iter())
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(suites[0], "TLS13_AES_128_GCM_SHA256");
        let defaults = rustls::crypto::aws_lc_rs::default_provider();
        assert_eq!(suites.len(), defaults.cipher_suites.len());
        let groups = provider()
            .kx_groups
            .iter()
            .map(|g| g.name())
            .collect::<Vec<_>>();
        assert_eq!(groups[0], rustls::NamedGroup::X25519);
        assert_eq!(groups.len(), defaults.kx_groups.len());
    }
}
