//! `spec.tls` (a TLS handshake, no HTTP: its target is a [`super::SocketTarget`]) and
//! `spec.tlsPolicy`, the expectations every kind that speaks TLS applies, validated into a
//! [`ValidTlsPolicy`].

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    duration::{GoDuration, MAX_DURATION},
    parse::{check_object_name, parse_pin},
    spec::{ValueSource, default_true},
    valid::ValueRef,
    validate::{Errors, MAX_TEXT, optional, value_ref},
};

/// Default `spec.tlsPolicy.minRemainingValidity` (14 days).
pub const DEFAULT_MIN_REMAINING_VALIDITY: &str = "336h";

/// What a served certificate and TLS session must satisfy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsPolicy {
    /// Verify chain, hostname and validity window.
    #[serde(default = "default_true")]
    pub verify: bool,
    /// SNI and the name to verify; default: the target host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub server_name: Option<String>,
    /// Fail when the earliest expiry in the served chain is closer than this (at most 87600h).
    #[serde(default = "default_min_validity")]
    pub min_remaining_validity: GoDuration,
    /// Fail when less than this share (percent) of the leaf's lifetime remains; 0 disables.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub min_remaining_lifetime_percent: i32,
    /// Lowest acceptable TLS version.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Extra trusted CAs (PEM) from the same namespace; system roots still apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<ValueSource>,
    /// Names that must all be in the leaf certificate's SANs.
    #[serde(
        default,
        rename = "expectedDNSNames",
        skip_serializing_if = "Vec::is_empty"
    )]
    #[schemars(length(max = 64))]
    pub expected_dns_names: Vec<String>,
    /// Substring of the leaf certificate's issuer DN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub expected_issuer: Option<String>,
    /// SPKI pins (`sha256/BASE64`); a match on any certificate of the served chain passes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(regex(pattern = r"^sha256/[A-Za-z0-9+/]{43}=$"))
    )]
    pub pinned_public_keys: Vec<String>,
    /// Client certificate for mutual TLS, from a kubernetes.io/tls Secret in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificate>,
    /// The served leaf certificate must be this Secret's (its `tls.crt` leaf): a renewed
    /// certificate that is not rolled out yet fails as CertificateNotDeployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_served_certificate: Option<ExpectServedCertificate>,
}

/// Where the certificate that must be served is kept.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpectServedCertificate {
    /// A Secret in the HealthCheck's namespace whose `tls.crt` holds the certificate (first
    /// PEM block: the leaf), read under the same rules as every Secret reference.
    pub secret_ref: LocalSecretRef,
}

/// A Secret in the HealthCheck's namespace, by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct LocalSecretRef {
    /// Secret name.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(min = 1, max = 253)
    )]
    pub name: String,
}

impl Default for TlsPolicy {
    fn default() -> Self {
        Self {
            verify: true,
            server_name: None,
            min_remaining_validity: default_min_validity(),
            min_remaining_lifetime_percent: 0,
            min_version: TlsVersion::default(),
            ca_bundle: None,
            expected_dns_names: Vec::new(),
            expected_issuer: None,
            pinned_public_keys: Vec::new(),
            client_certificate: None,
            expect_served_certificate: None,
        }
    }
}

fn default_min_validity() -> GoDuration {
    GoDuration::new(DEFAULT_MIN_REMAINING_VALIDITY)
}

/// Lowest acceptable TLS protocol version.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub enum TlsVersion {
    #[default]
    #[serde(rename = "1.2")]
    V1_2,
    #[serde(rename = "1.3")]
    V1_3,
}

/// A kubernetes.io/tls Secret holding `tls.crt` and `tls.key`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertificate {
    /// Secret name in the HealthCheck's namespace.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(min = 1, max = 253)
    )]
    pub secret_name: String,
}

/// Validated TLS expectations; the CA bundle and client certificate are still references.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ValidTlsPolicy {
    pub verify: bool,
    /// SNI and the name verified; default: the target host.
    pub server_name: Option<String>,
    pub min_remaining_validity: Duration,
    /// 0 disables the check.
    pub min_remaining_lifetime_percent: u8,
    pub min_version: TlsVersion,
    pub ca_bundle: Option<ValueRef>,
    pub expected_dns_names: Vec<String>,
    pub expected_issuer: Option<String>,
    /// SHA-256 digests of pinned SubjectPublicKeyInfo.
    pub pins: Vec<[u8; 32]>,
    /// Name of a kubernetes.io/tls Secret.
    pub client_certificate: Option<String>,
    /// Name of the Secret whose `tls.crt` leaf must be the served leaf.
    pub expect_served_certificate: Option<String>,
}

/// Validates `spec.tlsPolicy` (the defaults when absent).
pub(super) fn validate_tls_policy(
    policy: Option<&TlsPolicy>,
    errors: &mut Errors,
) -> Option<ValidTlsPolicy> {
    let default = TlsPolicy::default();
    let policy = policy.unwrap_or(&default);
    let field = "spec.tlsPolicy";
    let names = &policy.expected_dns_names;
    errors.at_most(
        &format!("{field}.expectedDNSNames"),
        names.len(),
        64,
        "names",
    );
    let pins = policy.pinned_public_keys.len();
    errors.at_most(&format!("{field}.pinnedPublicKeys"), pins, 16, "pins");
    let issuer = policy.expected_issuer.as_ref().map_or(0, String::len);
    errors.at_most(
        &format!("{field}.expectedIssuer"),
        issuer,
        MAX_TEXT,
        "bytes",
    );
    let min_remaining_validity = errors.take(
        (policy.min_remaining_validity)
            .parse(&format!("{field}.minRemainingValidity"), MAX_DURATION),
    );
    let percent = u8::try_from(policy.min_remaining_lifetime_percent)
        .ok()
        .filter(|p| *p <= 100);
    if percent.is_none() {
        errors.push(
            format!("{field}.minRemainingLifetimePercent"),
            "must be within 0..100",
        );
    }
    if let Some(name) = &policy.server_name
        && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
    {
        errors.push(
            format!("{field}.serverName"),
            format!("{name:?} is not a DNS name or IP address"),
        );
    }
    let ca_bundle = optional(policy.ca_bundle.as_ref(), |source| {
        value_ref(&format!("{field}.caBundle"), source, errors)
    });
    let client_certificate = optional(policy.client_certificate.as_ref(), |client| {
        let name_field = format!("{field}.clientCertificate.secretName");
        errors.take(check_object_name(&name_field, &client.secret_name))?;
        Some(client.secret_name.clone())
    });
    let expect_served_certificate = optional(policy.expect_served_certificate.as_ref(), |e| {
        let name_field = format!("{field}.expectServedCertificate.secretRef.name");
        errors.take(check_object_name(&name_field, &e.secret_ref.name))?;
        Some(e.secret_ref.name.clone())
    });
    let pins = (policy.pinned_public_keys.iter().enumerate())
        .filter_map(|(i, pin)| errors.take(parse_pin(i, pin)))
        .collect();
    Some(ValidTlsPolicy {
        verify: policy.verify,
        server_name: policy.server_name.clone(),
        min_remaining_validity: min_remaining_validity?,
        min_remaining_lifetime_percent: percent?,
        min_version: policy.min_version,
        ca_bundle: ca_bundle?,
        expected_dns_names: policy.expected_dns_names.clone(),
        expected_issuer: policy.expected_issuer.clone(),
        pins,
        client_certificate: client_certificate?,
        expect_served_certificate: expect_served_certificate?,
    })
}
