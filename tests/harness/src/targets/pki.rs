//! Test PKI: a root CA, an intermediate and leaves with chosen names, dates and issuers,
//! generated with rcgen for every test run.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// A certificate authority that can sign leaves and intermediates.
pub struct Ca {
    pub params: CertificateParams,
    pub key: KeyPair,
    pub der: CertificateDer<'static>,
    pub pem: String,
}

impl Ca {
    /// A self-signed root valid for ten years around now.
    pub fn root(common_name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(common_name);
        let cert = params.self_signed(&key).unwrap();
        Self {
            der: cert.der().clone(),
            pem: cert.pem(),
            params,
            key,
        }
    }

    /// An intermediate CA signed by `self`.
    pub fn intermediate(&self, common_name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(common_name);
        let cert = params.signed_by(&key, &self.issuer()).unwrap();
        Self {
            der: cert.der().clone(),
            pem: cert.pem(),
            params,
            key,
        }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// A leaf for `names`, valid from `not_before` to `not_after` relative to now.
    pub fn leaf(&self, names: &[&str], not_before: Duration, not_after: Duration) -> Leaf {
        self.leaf_with(
            names,
            not_before,
            not_after,
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate for mutual TLS.
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf_with(
            &[name],
            Duration::days(-1),
            Duration::days(30),
            ExtendedKeyUsagePurpose::ClientAuth,
        )
    }

    fn leaf_with(
        &self,
        names: &[&str],
        not_before: Duration,
        not_after: Duration,
        usage: ExtendedKeyUsagePurpose,
    ) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        let now = OffsetDateTime::now_utc();
        params.not_before = now + not_before;
        params.not_after = now + not_after;
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &self.issuer()).unwrap();
        Leaf {
            der: cert.der().clone(),
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            spki_der: rcgen::PublicKeyData::subject_public_key_info(&key),
            not_before: params.not_before,
            not_after: params.not_after,
        }
    }
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Canary Tests");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(365);
    params.not_after = now + Duration::days(3650);
    params
}

/// A leaf certificate and its key.
pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub pem: String,
    pub key_pem: String,
    pub key_der: Vec<u8>,
    pub spki_der: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Leaf {
    /// The private key, for a rustls server.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    /// The `sha256/BASE64` pin of this leaf's public key.
    pub fn pin(&self) -> String {
        use base64::Engine;
        use sha2::Digest;
        format!(
            "sha256/{}",
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&self.spki_der))
        )
    }
}
