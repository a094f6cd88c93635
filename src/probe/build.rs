//! Turns a user's spec into a runnable [`Check`]: validation, then references (header values,
//! CA bundles, client certificates) fetched through a [`ReferenceSource`], so the engine never
//! sees Kubernetes objects.

use std::sync::{Arc, LazyLock};

use http::{HeaderName, HeaderValue, Method};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use super::{
    Check, Endpoint, Target,
    http::{HttpCheck, HttpExpectations},
    tls::{ClientAuth, TlsSettings, system_roots},
};
use crate::api::{
    HealthCheckSpec, HttpProbe, Reason, SocketTarget, TlsPolicy, ValueSource,
    validate::{FieldError, ParsedHttp, validate},
};

/// Where referenced Secret and ConfigMap keys come from (the API server, or mounted folders).
pub trait ReferenceSource {
    /// The bytes of `key` in Secret `name` of the check's namespace.
    fn secret_key(&self, name: &str, key: &str) -> Result<Vec<u8>, ReferenceError>;
    /// The bytes of `key` in ConfigMap `name` of the check's namespace.
    fn config_map_key(&self, name: &str, key: &str) -> Result<Vec<u8>, ReferenceError>;
}

/// A reference that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{kind} {name:?} has no key {key:?}")]
    MissingKey {
        kind: &'static str,
        name: String,
        key: String,
    },
    #[error("{0}")]
    Unavailable(String),
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

/// Validates `spec` and resolves its references into a runnable check.
pub fn build(spec: &HealthCheckSpec, refs: &dyn ReferenceSource) -> Result<Check, BuildError> {
    let parsed = validate(spec).map_err(BuildError::Invalid)?;
    let policy = spec.tls_policy.clone().unwrap_or_default();
    let tls = tls_settings(
        &policy,
        parsed.tls_policy.pins,
        parsed.tls_policy.min_remaining_validity,
        refs,
    )?;
    let target = match (&spec.http, &spec.tcp, &spec.tls, parsed.http) {
        (Some(http), _, _, Some(parsed)) => Target::Http(Box::new(http_check(http, parsed, refs)?)),
        (_, Some(tcp), _, _) => Target::Tcp(endpoint(tcp)),
        (_, _, Some(tls), _) => Target::Tls(endpoint(tls)),
        _ => {
            return Err(BuildError::invalid(
                "spec",
                "exactly one of spec.http, spec.tcp or spec.tls must be set",
            ));
        }
    };
    Ok(Check {
        target,
        timeout: parsed.timeout,
        tls: Arc::new(tls),
    })
}

fn endpoint(target: &SocketTarget) -> Endpoint {
    Endpoint {
        host: target.host.clone(),
        // validate() checked 1..=65535.
        port: u16::try_from(target.port).unwrap_or_default(),
    }
}

fn http_check(
    http: &HttpProbe,
    parsed: ParsedHttp,
    refs: &dyn ReferenceSource,
) -> Result<HttpCheck, BuildError> {
    let mut headers = Vec::with_capacity(http.headers.len());
    for (i, header) in http.headers.iter().enumerate() {
        let field = format!("spec.http.headers[{i}]");
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| BuildError::invalid(format!("{field}.name"), "not a valid header name"))?;
        let value = match (&header.value, &header.value_from) {
            (Some(value), _) => value.as_bytes().to_vec(),
            (None, Some(source)) => fetch(source, &format!("{field}.valueFrom"), refs)?,
            (None, None) => {
                return Err(BuildError::invalid(
                    field,
                    "exactly one of value or valueFrom must be set",
                ));
            }
        };
        // Secrets often end in a newline written by `echo`; a header value cannot hold one.
        let trimmed = value.trim_ascii_end();
        let value = HeaderValue::from_bytes(trimmed).map_err(|_| {
            BuildError::invalid(
                format!("{field}.valueFrom"),
                "value contains characters a header cannot carry",
            )
        })?;
        headers.push((name, value));
    }
    let method = Method::from_bytes(http.method.as_str().as_bytes())
        .map_err(|_| BuildError::invalid("spec.http.method", "unsupported method"))?;
    Ok(HttpCheck {
        url: parsed.url,
        method,
        headers,
        body: http.body.clone().map(bytes::Bytes::from),
        follow_redirects: http.follow_redirects,
        max_body_bytes: parsed.max_body_bytes,
        expect: HttpExpectations {
            status: parsed.status,
            body_contains: http.expect.body_contains.clone(),
            body_not_contains: http.expect.body_not_contains.clone(),
            body_regex: parsed.body_regex,
            max_duration: parsed.max_duration,
        },
    })
}

fn fetch(
    source: &ValueSource,
    field: &str,
    refs: &dyn ReferenceSource,
) -> Result<Vec<u8>, BuildError> {
    let result = match (&source.secret_key_ref, &source.config_map_key_ref) {
        (Some(r), None) => refs.secret_key(&r.name, &r.key),
        (None, Some(r)) => refs.config_map_key(&r.name, &r.key),
        _ => {
            return Err(BuildError::invalid(
                field,
                "exactly one of secretKeyRef or configMapKeyRef must be set",
            ));
        }
    };
    result.map_err(|source| BuildError::Reference {
        field: field.into(),
        source,
    })
}

/// System roots, parsed once and shared by every check without a caBundle.
fn system_store() -> Arc<RootCertStore> {
    static STORE: LazyLock<Arc<RootCertStore>> = LazyLock::new(|| {
        let mut store = RootCertStore::empty();
        store.add_parsable_certificates(system_roots().iter().cloned());
        Arc::new(store)
    });
    STORE.clone()
}

fn tls_settings(
    policy: &TlsPolicy,
    pins: Vec<[u8; 32]>,
    min_remaining_validity: std::time::Duration,
    refs: &dyn ReferenceSource,
) -> Result<TlsSettings, BuildError> {
    let roots = match &policy.ca_bundle {
        None => system_store(),
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
            let mut store = (*system_store()).clone();
            let (added, _) = store.add_parsable_certificates(extra);
            if added == 0 {
                return Err(BuildError::invalid(
                    field,
                    "holds no usable CA certificates",
                ));
            }
            Arc::new(store)
        }
    };
    let client_auth = match &policy.client_certificate {
        None => None,
        Some(client) => Some(client_auth(&client.secret_name, refs)?),
    };
    Ok(TlsSettings {
        verify: policy.verify,
        server_name: policy.server_name.clone(),
        min_remaining_validity,
        min_remaining_lifetime_percent: u8::try_from(
            policy.min_remaining_lifetime_percent.clamp(0, 100),
        )
        .unwrap_or_default(),
        min_version: policy.min_version,
        expected_dns_names: policy.expected_dns_names.clone(),
        expected_issuer: policy.expected_issuer.clone(),
        pins,
        roots,
        client_auth,
    })
}

fn client_auth(secret: &str, refs: &dyn ReferenceSource) -> Result<ClientAuth, BuildError> {
    let field = "spec.tlsPolicy.clientCertificate";
    let read = |key: &str| {
        refs.secret_key(secret, key)
            .map_err(|source| BuildError::Reference {
                field: field.into(),
                source,
            })
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
