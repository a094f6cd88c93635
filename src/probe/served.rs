//! `tlsPolicy.expectServedCertificate`: the served leaf must be the leaf of a Secret's
//! `tls.crt`, compared by the SHA-256 of its DER, so a renewed certificate that is not rolled
//! out yet is caught even when it has the same names, issuer and key as the served one.

use rustls_pki_types::{CertificateDer, pem::PemObject};
use sha2::{Digest, Sha256};

use super::{CertFacts, Failure, certs::human};
use crate::api::{Reason, TargetText};

/// The leaf a server must present, read from a Secret.
#[derive(Debug, Clone)]
pub struct ExpectedLeaf {
    /// The Secret's name, for messages.
    secret: String,
    /// SHA-256 of the leaf's DER.
    digest: [u8; 32],
    /// What the leaf says about itself, for messages (`None` when it does not parse).
    facts: Option<CertFacts>,
}

impl ExpectedLeaf {
    /// The first certificate of `pem` (a Secret's `tls.crt`: the leaf, then its chain).
    pub fn from_pem(secret: &str, pem: &[u8]) -> Result<Self, String> {
        let first = CertificateDer::pem_slice_iter(pem).next();
        let leaf = match first {
            Some(Ok(leaf)) => leaf,
            Some(Err(e)) => return Err(format!("tls.crt of Secret {secret:?} is not PEM: {e}")),
            None => return Err(format!("tls.crt of Secret {secret:?} holds no certificate")),
        };
        Ok(Self {
            secret: secret.to_string(),
            digest: Sha256::digest(leaf.as_ref()).into(),
            facts: CertFacts::parse(&leaf),
        })
    }

    /// `CertificateNotDeployed` unless `served` (the served chain's first certificate) is the
    /// expected leaf; `served_facts` describe it in the message.
    pub fn check(
        &self,
        served: Option<&CertificateDer<'_>>,
        served_facts: Option<&CertFacts>,
    ) -> Result<(), Failure> {
        let Some(served) = served else {
            return Err(Failure::new(
                Reason::TLSHandshakeFailed,
                "the server sent no certificate",
            ));
        };
        let digest: [u8; 32] = Sha256::digest(served.as_ref()).into();
        if digest == self.digest {
            return Ok(());
        }
        let now = jiff::Timestamp::now();
        let until = |facts: &CertFacts| match facts.not_after > now {
            true => format!("expires in {}", human(facts.not_after, now)),
            false => format!("expired {} ago", human(now, facts.not_after)),
        };
        let served = served_facts.map_or_else(
            || "the served certificate".to_string(),
            |f| {
                format!(
                    "the served certificate (serial {}, {})",
                    TargetText(&f.serial_number),
                    until(f)
                )
            },
        );
        let expected = self.facts.as_ref().map_or_else(String::new, |f| {
            format!(" (serial {}, {})", f.serial_number, until(f))
        });
        Err(Failure::new(
            Reason::CertificateNotDeployed,
            format!(
                "{served} is not the one in Secret {:?}{expected}: renewed but not rolled out, or served from elsewhere",
                self.secret
            ),
        ))
    }
}
