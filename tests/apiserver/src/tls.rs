//! TLS for a server that enforces RBAC: kubectl and helm (client-go's `clientcmd`) send a
//! kubeconfig's credentials only over TLS, so identities need HTTPS. A CA and a serving
//! certificate for 127.0.0.1 and `localhost` are generated per server; the CA goes into every
//! kubeconfig it writes (`certificate-authority-data`).

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The serving side of TLS and the CA clients trust.
#[derive(Clone)]
pub struct Tls {
    /// Accepts TLS connections (HTTP/1.1 over ALPN).
    pub acceptor: TlsAcceptor,
    /// The CA certificate, PEM.
    pub ca_pem: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

/// Generating the certificates or the TLS configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating a certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("configuring TLS: {0}")]
    Config(#[from] rustls::Error),
}

impl Tls {
    /// A fresh CA and a certificate it signs for 127.0.0.1, ::1 and `localhost`.
    pub fn generate() -> Result<Self, TlsError> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        (ca_params.distinguished_name).push(rcgen::DnType::CommonName, "canary-test-apiserver-ca");
        let ca = ca_params.self_signed(&ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
        for ip in [[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()] {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
        let leaf = params.signed_by(&key, &Issuer::from_params(&ca_params, &ca_key))?;
        let chain = vec![CertificateDer::from(leaf.der().to_vec())];
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, private)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            ca_pem: ca.pem(),
        })
    }
}
