//! OAuth2 client-credentials tokens (RFC 6749 section 4.4) for HTTP probes.
//!
//! The token is fetched inside the probe's one deadline, over the engine's own connections:
//! the deny list, the check's trust (caBundle), client certificate and minimum TLS version
//! apply to the token endpoint, the check's expectations about its target (server name, pins,
//! issuer, expiry margins) do not. It is cached per check (the client lives in the built
//! probe, so a new spec or a rotated secret, which replace the probe, drop it) until
//! `expires_in` minus [`margin`]; a 401 or 403 from the target drops a cached token and
//! fetches once more. Its time is the phase `auth`; its failure is `AuthFailed`.
//!
//! The token and the client secret are held as sensitive header values or [`Secret`]s, whose
//! `Debug` prints nothing, and never reach a message: error answers are cut and redacted.

mod fetch;

use std::{sync::Mutex, time::Duration};

use http::{HeaderValue, header};
use tokio::time::Instant;

use super::{
    BuildError, Failure, ProbeContext,
    build::{client_auth, fetch as fetch_ref},
    http::{HttpCheck, ResolvedHeader},
    tls::{TlsSettings, Trust},
    trace::{Phase, Trace},
};
use crate::api::{ClientId, Reason, ValidOAuth2, ValidTlsPolicy, ValueRef};

/// Most bytes of a token endpoint's answer that are read (a token response is a few KiB).
pub const MAX_TOKEN_RESPONSE: usize = 64 * 1024;
/// How long a token without `expires_in` is reused (a 401 or 403 still drops it sooner).
pub const UNTIMED_TOKEN_TTL: Duration = Duration::from_secs(300);
/// The longest a token is reused, whatever `expires_in` says.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// The most a token is renewed ahead of its expiry (see [`margin`]).
pub const MAX_MARGIN: Duration = Duration::from_secs(30);

/// How long before its expiry a token is renewed: 30 s, or a tenth of its lifetime when that
/// is shorter, so a token is never used in its last moments and a short-lived one still is.
pub fn margin(lifetime: Duration) -> Duration {
    (lifetime / 10).min(MAX_MARGIN)
}

/// A value that must never be shown: its `Debug` says so and nothing more.
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A check's OAuth2 client: the grant with its credentials read, and its token cache.
#[derive(Debug)]
pub struct OAuth2Client {
    grant: ValidOAuth2,
    client_id: String,
    client_secret: Secret,
    /// Trust, client certificate and minimum version of the check; no expectations.
    tls: TlsSettings,
    cache: Mutex<Option<Cached>>,
}

/// A token and until when it is used.
#[derive(Debug)]
struct Cached {
    /// `Bearer ...`, marked sensitive.
    authorization: HeaderValue,
    until: Instant,
}

impl OAuth2Client {
    /// The client for `grant`, its credentials read through `refs`; the token endpoint gets
    /// the check's trust, client certificate and minimum TLS version.
    pub fn build(
        grant: &ValidOAuth2,
        policy: &ValidTlsPolicy,
        trust: std::sync::Arc<Trust>,
        refs: &dyn super::ReferenceSource,
    ) -> Result<Self, BuildError> {
        let field = "spec.http.auth.oauth2ClientCredentials";
        let client_id = match &grant.client_id {
            ClientId::Literal(id) => id.clone(),
            ClientId::From(source) => text(source, &format!("{field}.clientIDRef"), refs)?,
        };
        let secret_field = format!("{field}.clientSecretRef");
        let client_secret = Secret(text(&grant.client_secret, &secret_field, refs)?);
        let client_auth = match &policy.client_certificate {
            Some(secret) => Some(client_auth(secret, refs)?),
            None => None,
        };
        let tls = TlsSettings::new(token_policy(policy), trust, client_auth)
            .map_err(|message| invalid("spec.tlsPolicy.clientCertificate", message))?;
        Ok(Self {
            grant: grant.clone(),
            client_id,
            client_secret,
            tls,
            cache: Mutex::new(None),
        })
    }

    /// The cached token while it is fresh.
    fn cached(&self) -> Option<HeaderValue> {
        let cache = crate::lock(&self.cache);
        (cache.as_ref())
            .filter(|c| Instant::now() < c.until)
            .map(|c| c.authorization.clone())
    }

    /// Drops the cached token.
    fn forget(&self) {
        *crate::lock(&self.cache) = None;
    }

    /// A token, from the cache or fetched now (phase `auth`); whether it came from the cache.
    async fn token(
        &self,
        ctx: &ProbeContext,
        trace: &Trace,
        follow_redirects: bool,
    ) -> Result<(HeaderValue, bool), Failure> {
        if let Some(authorization) = self.cached() {
            return Ok((authorization, true));
        }
        trace.begin(Phase::Auth);
        let url = crate::api::redact(&self.grant.token_url);
        trace.note(format!("token endpoint {url} did not answer in time"));
        let token = fetch::fetch(self, ctx, follow_redirects).await;
        trace.clear_note();
        let token = token?;
        let lifetime = token
            .lifetime
            .map_or(UNTIMED_TOKEN_TTL, |l| l.min(MAX_TOKEN_TTL));
        let reuse = lifetime.saturating_sub(margin(lifetime));
        if !reuse.is_zero() {
            *crate::lock(&self.cache) = Some(Cached {
                authorization: token.authorization.clone(),
                until: Instant::now() + reuse,
            });
        }
        Ok((token.authorization, false))
    }
}

/// What the token endpoint may be held to: the check's trust and minimum version, always
/// verified (a client secret goes there), none of the check's expectations about its target.
fn token_policy(policy: &ValidTlsPolicy) -> ValidTlsPolicy {
    ValidTlsPolicy {
        verify: true,
        server_name: None,
        min_remaining_validity: Duration::ZERO,
        min_remaining_lifetime_percent: 0,
        min_version: policy.min_version,
        ca_bundle: policy.ca_bundle.clone(),
        expected_dns_names: Vec::new(),
        expected_issuer: None,
        pins: Vec::new(),
        client_certificate: policy.client_certificate.clone(),
        expect_served_certificate: None,
    }
}

/// A referenced value as text, a trailing newline (as `echo` writes) trimmed.
fn text(
    source: &ValueRef,
    field: &str,
    refs: &dyn super::ReferenceSource,
) -> Result<String, BuildError> {
    let bytes = fetch_ref(source, field, refs)?;
    let value = String::from_utf8(bytes.trim_ascii_end().to_vec())
        .map_err(|_| invalid(field, "the referenced value is not UTF-8 text"))?;
    if value.is_empty() {
        return Err(invalid(field, "the referenced value is empty"));
    }
    Ok(value)
}

fn invalid(field: &str, message: impl Into<String>) -> BuildError {
    BuildError::Invalid(vec![crate::api::FieldError {
        field: field.into(),
        message: message.into(),
    }])
}

/// Runs an HTTP probe, with a Bearer token first when the check has an OAuth2 client.
pub(super) async fn probe(
    check: &HttpCheck,
    tls: &TlsSettings,
    ctx: &ProbeContext,
    trace: &Trace,
    deadline: Instant,
) -> Result<String, Failure> {
    let Some(client) = &check.auth else {
        return super::http::probe(check, tls, ctx, trace, deadline).await;
    };
    let follow = check.spec.follow_redirects;
    let (authorization, cached) = client.token(ctx, trace, follow).await?;
    let result = with_token(check, authorization, tls, ctx, trace, deadline).await;
    let refused = matches!(&result, Err(f) if f.reason == Reason::UnexpectedStatus)
        && matches!(trace.http_status(), Some(401 | 403));
    if !refused {
        return result;
    }
    client.forget();
    if !cached {
        return result;
    }
    // A cached token the target refuses was revoked or rotated: one fresh token decides.
    let (authorization, _) = client.token(ctx, trace, follow).await?;
    let retried = with_token(check, authorization, tls, ctx, trace, deadline).await;
    if retried.is_err() && matches!(trace.http_status(), Some(401 | 403)) {
        client.forget();
    }
    retried.map_err(|f| Failure {
        message: format!("{} (with a freshly fetched token)", f.message),
        ..f
    })
}

/// `check` with `Authorization: Bearer ...`: a credential, so it never follows a redirect to
/// another origin.
/// One HTTP probe sending `authorization` as the Bearer token.
async fn with_token(
    check: &HttpCheck,
    authorization: HeaderValue,
    tls: &TlsSettings,
    ctx: &ProbeContext,
    trace: &Trace,
    deadline: Instant,
) -> Result<String, Failure> {
    let check = with_bearer(check, authorization);
    super::http::probe(&check, tls, ctx, trace, deadline).await
}

fn with_bearer(check: &HttpCheck, authorization: HeaderValue) -> HttpCheck {
    let mut check = check.clone();
    check.headers.push(ResolvedHeader {
        name: header::AUTHORIZATION,
        value: authorization,
        from_secret: true,
    });
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_is_a_tenth_of_short_lifetimes_and_30s_of_long_ones() {
        assert_eq!(margin(Duration::from_secs(3600)), Duration::from_secs(30));
        assert_eq!(margin(Duration::from_secs(300)), Duration::from_secs(30));
        assert_eq!(margin(Duration::from_secs(60)), Duration::from_secs(6));
        assert_eq!(margin(Duration::from_secs(1)), Duration::from_millis(100));
        assert_eq!(margin(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_secret_debugs_as_nothing() {
        let shown = format!("{:?}", Secret("s3cr3t".into()));
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }
}
