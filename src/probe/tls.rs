//! TLS handshakes that capture the served chain before verification, so an expired, mismatched
//! or untrusted certificate still reports its dates, names and issuer.

use std::sync::{Arc, LazyLock, Mutex};

use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::{CertFacts, Failure, TlsCapture, certs, trace::Phase, trace::Trace};
use crate::api::{Reason, TlsVersion, ValidTlsPolicy};

/// TLS expectations and trust for one check, references resolved.
#[derive(Debug)]
pub struct TlsSettings {
    pub policy: ValidTlsPolicy,
    /// System roots plus the check's caBundle.
    pub roots: Arc<RootCertStore>,
    pub client_auth: Option<ClientAuth>,
}

/// A client certificate chain and its key, for mutual TLS.
#[derive(Debug)]
pub struct ClientAuth {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// The process-wide crypto provider (ring; rustls is the only TLS stack).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: LazyLock<Arc<CryptoProvider>> =
        LazyLock::new(|| Arc::new(rustls::crypto::ring::default_provider()));
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

/// An established session with what it showed.
pub struct Session {
    pub stream: TlsStream<TcpStream>,
    pub facts: TlsCapture,
}

impl Session {
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

/// Runs a handshake for server name `name` (SNI and the name verified) and checks every TLS
/// expectation; the client certificate, if any, is offered only when `client_certificate`.
pub async fn handshake(
    stream: TcpStream,
    name: &str,
    settings: &TlsSettings,
    client_certificate: bool,
    trace: &Trace,
) -> Result<Session, Failure> {
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
    let verifier = Arc::new(CapturingVerifier::new(settings)?);
    let config = client_config(settings, client_certificate, verifier.clone())?;
    let result = TlsConnector::from(Arc::new(config))
        .connect(server_name, stream)
        .await;
    let captured = verifier.take();
    let mut facts = TlsCapture {
        version: None,
        cipher_suite: None,
        chain: captured.chain.iter().filter_map(CertFacts::parse).collect(),
        verified: settings.policy.verify && captured.verdict.as_ref().is_some_and(Result::is_ok),
    };
    let stream = match result {
        Ok(stream) => stream,
        Err(error) => {
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
    certs::check_expectations(&facts, settings, jiff::Timestamp::now())?;
    Ok(Session { stream, facts })
}

fn client_config(
    settings: &TlsSettings,
    client_certificate: bool,
    verifier: Arc<CapturingVerifier>,
) -> Result<ClientConfig, Failure> {
    let versions: &[&rustls::SupportedProtocolVersion] = match settings.policy.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| Failure::new(Reason::ProberError, format!("TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match settings.client_auth.as_ref().filter(|_| client_certificate) {
        Some(auth) => builder
            .with_client_auth_cert(auth.chain.clone(), auth.key.clone_key())
            .map_err(|e| {
                Failure::new(
                    Reason::InvalidSpec,
                    format!("client certificate unusable: {e}"),
                )
            })?,
        None => builder.with_no_client_auth(),
    };
    // A fresh, full handshake every probe: no resumption, so every probe sees the certificate.
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
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
    fn new(settings: &TlsSettings) -> Result<Self, Failure> {
        let provider = provider();
        let webpki = if settings.roots.is_empty() {
            None
        } else {
            let verifier = WebPkiServerVerifier::builder_with_provider(
                settings.roots.clone(),
                provider.clone(),
            )
            .build()
            .map_err(|e| Failure::new(Reason::ProberError, format!("TLS verifier: {e}")))?;
            Some(verifier)
        };
        Ok(Self {
            webpki,
            verify: settings.policy.verify,
            captured: Mutex::new(Captured::default()),
            provider,
        })
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
