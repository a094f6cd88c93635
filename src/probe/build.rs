//! Turns a validated spec into a runnable [`Probe`]: references (header values, CA bundles,
//! client certificates) are fetched through a [`ReferenceSource`], so the engine never sees
//! Kubernetes objects.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex, Weak},
};

use http::HeaderValue;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use super::{
    Probe, Target,
    cel::CelRun,
    grpc::GrpcCheck,
    http::{HttpCheck, ResolvedHeader},
    oauth2::OAuth2Client,
    served::ExpectedLeaf,
    tls::{ClientAuth, TlsSettings, Trust},
};
use crate::api::{
    FieldError, HeaderSource, MIN_TOKEN_CHARS, ProbeKind, Reason, Reference, ReferenceKind,
    ValidHeader, ValidHeartbeat, ValidSpec, ValidTlsPolicy, ValueRef,
};

/// Where referenced Secret and ConfigMap keys come from (the API server, or mounted folders).
pub trait ReferenceSource {
    /// The bytes of one key of a Secret or ConfigMap in the check's namespace.
    fn read(&self, value: &ValueRef) -> Result<Vec<u8>, ReferenceError>;
}

/// A reference that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("{} {name:?} not found", .kind.as_str())]
    NotFound { kind: ReferenceKind, name: String },
    #[error("{} {name:?} has no key {key:?}", .kind.as_str())]
    MissingKey {
        kind: ReferenceKind,
        name: String,
        key: String,
    },
    /// The object exists but policy forbids reading it (a service-account token, a Secret
    /// without the label `--secret-reference-label` requires).
    #[error("{} {name:?} may not be referenced: {why}", .kind.as_str())]
    Forbidden {
        kind: ReferenceKind,
        name: String,
        why: String,
    },
    #[error("{0}")]
    Unavailable(String),
}

impl ReferenceError {
    /// `NotFound` or `MissingKey` for `value`, depending on whether the object exists.
    pub fn missing(value: &ValueRef, object_exists: bool) -> Self {
        let (kind, name) = (value.object.kind, value.object.name.clone());
        if object_exists {
            Self::MissingKey {
                kind,
                name,
                key: value.key.clone(),
            }
        } else {
            Self::NotFound { kind, name }
        }
    }
}

/// Why a spec cannot become a runnable check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("invalid spec: {}", join(.0))]
    Invalid(Vec<FieldError>),
    #[error("{field}: {source}")]
    Reference {
        field: String,
        #[source]
        source: ReferenceError,
    },
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl BuildError {
    /// The status reason this error is reported with.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Invalid(_) => Reason::InvalidSpec,
            Self::Reference {
                source: ReferenceError::Forbidden { .. },
                ..
            } => Reason::ReferenceForbidden,
            Self::Reference { .. } => Reason::ReferenceNotFound,
        }
    }

    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }
}

/// Why a heartbeat check has no probe.
/// Why a CronJob check is never built into a probe.
pub const NEEDS_OPERATOR: &str = "a cronJob check reads the CronJob and its Jobs from the API \
     server: it runs only in the operator, not in standalone mode or canary check";
const NOT_PROBED: &str = "a heartbeat check has nothing to dial: it is judged from the pings \
    that `canary operator` or `canary standalone` receive on --heartbeat-bind-address";

/// The token of a heartbeat check, read and checked (at least [`MIN_TOKEN_CHARS`]
/// characters, surrounding whitespace of a file or Secret trimmed).
pub fn heartbeat_token(
    spec: &ValidHeartbeat,
    refs: &dyn ReferenceSource,
) -> Result<Vec<u8>, BuildError> {
    const FIELD: &str = "spec.heartbeat.tokenSecretRef";
    let bytes = refs
        .read(&spec.token)
        .map_err(|source| BuildError::Reference {
            field: FIELD.into(),
            source,
        })?;
    let token = String::from_utf8_lossy(&bytes).trim().to_string();
    let printable = token.bytes().all(|b| b.is_ascii_graphic());
    if token.chars().count() < MIN_TOKEN_CHARS || !printable {
        let message = format!(
            "the token must be at least {MIN_TOKEN_CHARS} printable ASCII characters without spaces"
        );
        return Err(BuildError::invalid(FIELD, message));
    }
    Ok(token.into_bytes())
}

/// Resolves the references of a validated spec into a runnable probe.
pub fn build(spec: &ValidSpec, refs: &dyn ReferenceSource) -> Result<Probe, BuildError> {
    let tls = tls_settings(&spec.tls_policy, refs)?;
    let target = match &spec.probe {
        ProbeKind::Http(http) => Target::Http(Box::new(HttpCheck {
            spec: (**http).clone(),
            headers: resolve_headers("spec.http.headers", &http.headers, refs)?,
            auth: (http.auth.as_ref())
                .map(|grant| {
                    OAuth2Client::build(grant, &spec.tls_policy, tls.trust.clone(), refs)
                        .map(Arc::new)
                })
                .transpose()?,
            cel: http.expect.cel.clone().map(CelRun::new),
        })),
        ProbeKind::Tcp(endpoint) => Target::Tcp(endpoint.clone()),
        ProbeKind::Tls(endpoint) => Target::Tls(endpoint.clone()),
        ProbeKind::Dns(dns) => Target::Dns(dns.clone()),
        ProbeKind::Grpc(grpc) => Target::Grpc(Box::new(GrpcCheck {
            spec: (**grpc).clone(),
            metadata: resolve_headers("spec.grpc.metadata", &grpc.metadata, refs)?,
        })),
        ProbeKind::Heartbeat(_) => return Err(BuildError::invalid("spec.heartbeat", NOT_PROBED)),
        ProbeKind::CronJob(_) => return Err(BuildError::invalid("spec.cronJob", NEEDS_OPERATOR)),
    };
    Ok(Probe {
        target,
        timeout: spec.timeout,
        tls,
    })
}

/// Header (or gRPC metadata) values, references read.
fn resolve_headers(
    field: &str,
    valid: &[ValidHeader],
    refs: &dyn ReferenceSource,
) -> Result<Vec<ResolvedHeader>, BuildError> {
    let mut headers = Vec::with_capacity(valid.len());
    for (i, header) in valid.iter().enumerate() {
        let (value, from_secret) = match &header.value {
            HeaderSource::Literal(value) => (value.clone(), false),
            HeaderSource::From(source) => {
                let field = format!("{field}[{i}].valueFrom");
                let bytes = fetch(source, &field, refs)?;
                // Secrets often end in a newline written by `echo`; a header value cannot hold one.
                let mut value = HeaderValue::from_bytes(bytes.trim_ascii_end()).map_err(|_| {
                    BuildError::invalid(field, "value contains characters a header cannot carry")
                })?;
                let from_secret = source.object.kind == ReferenceKind::Secret;
                value.set_sensitive(from_secret);
                (value, from_secret)
            }
        };
        headers.push(ResolvedHeader {
            name: header.name.clone(),
            value,
            from_secret,
        });
    }
    Ok(headers)
}

pub(super) fn fetch(
    source: &ValueRef,
    field: &str,
    refs: &dyn ReferenceSource,
) -> Result<Vec<u8>, BuildError> {
    refs.read(source).map_err(|source| BuildError::Reference {
        field: field.into(),
        source,
    })
}

fn tls_settings(
    policy: &ValidTlsPolicy,
    refs: &dyn ReferenceSource,
) -> Result<Arc<TlsSettings>, BuildError> {
    let trust = match &policy.ca_bundle {
        None => Trust::system(),
        Some(source) => {
            let field = "spec.tlsPolicy.caBundle";
            let pem = fetch(source, field, refs)?;
            let extra: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    BuildError::invalid(field, format!("not a PEM certificate bundle: {e}"))
                })?;
            if extra.is_empty() {
                return Err(BuildError::invalid(field, "holds no PEM certificates"));
            }
            Trust::with_bundle(&extra)
                .ok_or_else(|| BuildError::invalid(field, "holds no usable CA certificates"))?
        }
    };
    let field = "spec.tlsPolicy.clientCertificate";
    if policy.client_certificate.is_none() && policy.expect_served_certificate.is_none() {
        return shared_settings(policy, trust)
            .map_err(|message| BuildError::invalid(field, message));
    }
    let client_auth = match &policy.client_certificate {
        None => None,
        Some(secret) => Some(client_auth(secret, refs)?),
    };
    let mut settings = TlsSettings::new(policy.clone(), trust, client_auth)
        .map_err(|message| BuildError::invalid(field, message))?;
    if let Some(secret) = &policy.expect_served_certificate {
        settings.expected_leaf = Some(expected_leaf(secret, refs)?);
    }
    Ok(Arc::new(settings))
}

/// The settings of checks with no client certificate and no served-certificate expectation
/// depend only on the policy and the trust store: checks with equal ones share one (464 bytes
/// per check otherwise), held as long as some check holds it.
fn shared_settings(policy: &ValidTlsPolicy, trust: Arc<Trust>) -> Result<Arc<TlsSettings>, String> {
    type Key = (ValidTlsPolicy, usize);
    /// The settings by key, and the map's size at its last sweep.
    type Shared = (HashMap<Key, Weak<TlsSettings>>, usize);
    static SHARED: LazyLock<Mutex<Shared>> = LazyLock::new(Mutex::default);
    let key = (policy.clone(), Arc::as_ptr(&trust) as usize);
    let mut shared = crate::lock(&SHARED);
    let (settings, swept) = &mut *shared;
    if let Some(found) = settings.get(&key).and_then(Weak::upgrade) {
        return Ok(found);
    }
    let built = Arc::new(TlsSettings::new(policy.clone(), trust, None)?);
    // Entries nobody holds are swept when the map has doubled since the last sweep: amortised
    // O(1) per build, also with 10,000 distinct policies.
    if settings.len() >= 2 * (*swept).max(64) {
        settings.retain(|_, held| held.strong_count() > 0);
        *swept = settings.len();
    }
    settings.insert(key, Arc::downgrade(&built));
    Ok(built)
}

/// The leaf of Secret `secret`'s `tls.crt` (only that key is read).
fn expected_leaf(secret: &str, refs: &dyn ReferenceSource) -> Result<ExpectedLeaf, BuildError> {
    let field = "spec.tlsPolicy.expectServedCertificate";
    let value = ValueRef {
        object: Reference {
            kind: ReferenceKind::Secret,
            name: secret.into(),
        },
        key: "tls.crt".into(),
    };
    let pem = fetch(&value, field, refs)?;
    ExpectedLeaf::from_pem(secret, &pem).map_err(|message| BuildError::invalid(field, message))
}

pub(super) fn client_auth(
    secret: &str,
    refs: &dyn ReferenceSource,
) -> Result<ClientAuth, BuildError> {
    let field = "spec.tlsPolicy.clientCertificate";
    let read = |key: &str| {
        let value = ValueRef {
            object: Reference {
                kind: ReferenceKind::Secret,
                name: secret.into(),
            },
            key: key.into(),
        };
        fetch(&value, field, refs)
    };
    let (crt, key) = (read("tls.crt")?, read("tls.key")?);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&crt)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            BuildError::invalid(
                field,
                format!("tls.crt of Secret {secret:?} is not PEM: {e}"),
            )
        })?;
    if chain.is_empty() {
        return Err(BuildError::invalid(
            field,
            format!("tls.crt of Secret {secret:?} holds no certificate"),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| {
        BuildError::invalid(
            field,
            format!("tls.key of Secret {secret:?} is not a PEM private key: {e}"),
        )
    })?;
    Ok(ClientAuth { chain, key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::HealthCheckSpec;

    /// Specs of these tests reference nothing.
    struct NoReferences;

    impl ReferenceSource for NoReferences {
        fn read(&self, value: &ValueRef) -> Result<Vec<u8>, ReferenceError> {
            panic!("nothing is referenced, yet {value:?} was read")
        }
    }

    fn probe(spec: serde_json::Value) -> Probe {
        let spec: HealthCheckSpec = serde_json::from_value(spec).unwrap();
        let valid = crate::api::validate(&spec).unwrap();
        build(&valid, &NoReferences).unwrap()
    }

    #[test]
    fn checks_with_equal_tls_policies_share_their_settings() {
        let check = |url: &str, policy: serde_json::Value| {
            probe(serde_json::json!({"interval": "30s", "http": {"url": url}, "tlsPolicy": policy}))
        };
        let lax = serde_json::json!({"verify": false});
        let (a, b) = (
            check("https://a.test/", lax.clone()),
            check("https://b.test/", lax),
        );
        assert!(
            Arc::ptr_eq(&a.tls, &b.tls),
            "one settings for equal policies"
        );
        let named = check(
            "https://a.test/",
            serde_json::json!({"serverName": "other.test"}),
        );
        assert!(!Arc::ptr_eq(&a.tls, &named.tls));
        assert_eq!(named.tls.policy.server_name.as_deref(), Some("other.test"));
        assert!(!a.tls.policy.verify);
        let again = check(
            "https://c.test/",
            serde_json::json!({"serverName": "other.test"}),
        );
        assert!(Arc::ptr_eq(&named.tls, &again.tls));
    }
}
