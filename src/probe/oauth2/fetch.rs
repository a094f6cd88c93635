//! One token request: a form POST (RFC 6749 section 4.4.2) on a fresh connection per hop,
//! through the engine's resolver (deny list), connect and TLS handshake, the answer read up to
//! [`MAX_TOKEN_RESPONSE`] and judged (section 5.1 and 5.2). Every failure is `AuthFailed`
//! naming the token endpoint, except the prober's own (`ProberError`).

use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use url::form_urlencoded;

use super::{MAX_TOKEN_RESPONSE, OAuth2Client};
use crate::{
    api::{AuthStyle, Reason, redact},
    probe::{
        Failure, MAX_REDIRECTS, ProbeContext,
        http::{Io, drive, hyper_failure, quietly},
        net,
        tls::{self, Alpn},
        trace::Trace,
    },
};

/// hyper's read buffer for the token exchange (its minimum is 8 KiB).
const READ_BUFFER: usize = 16 * 1024;
/// Longest text of an error answer shown in a message.
const MAX_SHOWN: usize = 200;

/// A token the endpoint issued.
pub(super) struct Token {
    /// `Bearer ...`, marked sensitive.
    pub authorization: HeaderValue,
    pub lifetime: Option<Duration>,
}

/// What one hop answered.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: Vec<u8>,
}

/// The fields of a token or error response Canary reads.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Asks the token endpoint for a token, following redirects as the check does.
pub(super) async fn fetch(
    client: &OAuth2Client,
    ctx: &ProbeContext,
    follow_redirects: bool,
) -> Result<Token, Failure> {
    // The token endpoint's hops have their own trace: their TLS facts, status and phases are
    // not the target's (the probe's trace counts all of it as `auth`).
    let trace = Trace::new(tokio::time::Instant::now());
    let first = &client.grant.token_url;
    let mut url = first.clone();
    for _ in 0..=MAX_REDIRECTS {
        let answer = exchange(client, &url, ctx, &trace)
            .await
            .map_err(|f| failed(&url, f))?;
        let location = answer.location.as_deref().filter(|_| follow_redirects);
        match location {
            Some(location) if answer.status.is_redirection() => {
                url = next_hop(&url, answer.status, location, first)?;
            }
            _ => return judge(client, &url, &answer),
        }
    }
    Err(auth_failed(
        &url,
        format!("more than {MAX_REDIRECTS} redirects"),
    ))
}

/// `AuthFailed` naming the endpoint and why (the prober's own faults stay `ProberError`).
fn failed(url: &url::Url, failure: Failure) -> Failure {
    match failure.reason {
        Reason::ProberError => return failure,
        Reason::AuthFailed => return auth_failed(url, failure.message),
        _ => {}
    }
    auth_failed(url, format!("{} ({})", failure.message, failure.reason))
}

fn auth_failed(url: &url::Url, why: String) -> Failure {
    Failure::new(
        Reason::AuthFailed,
        format!("token endpoint {}: {why}", redact(url)),
    )
}

/// Where a redirect leads: only 307 and 308 keep the POST and its body, and the credentials
/// never leave the token endpoint's origin.
fn next_hop(
    url: &url::Url,
    status: StatusCode,
    location: &str,
    first: &url::Url,
) -> Result<url::Url, Failure> {
    let next = url
        .join(location)
        .map_err(|_| auth_failed(url, format!("answered {status} with an invalid Location")))?;
    if !matches!(status.as_u16(), 307 | 308) {
        return Err(auth_failed(
            url,
            format!("answered {status}, a redirect that would turn the token POST into a GET"),
        ));
    }
    if next.origin() != first.origin() {
        return Err(auth_failed(
            url,
            format!(
                "redirected to {}, another origin: the client credentials are not sent there",
                redact(&next)
            ),
        ));
    }
    Ok(next)
}

/// One POST on a fresh connection, closed before returning.
async fn exchange(
    client: &OAuth2Client,
    url: &url::Url,
    ctx: &ProbeContext,
    trace: &Trace,
) -> Result<Answer, Failure> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs = net::resolve(host, port, ctx, trace).await?;
    let (stream, _) = net::connect(&addrs, ctx, trace).await?;
    let io: Box<dyn Io> = if url.scheme() == "https" {
        let session = tls::handshake(stream, host, &client.tls, true, Alpn::Http1, trace).await?;
        Box::new(session.stream)
    } else {
        Box::new(stream)
    };
    let request = request(client, url, &ctx.user_agent)?;
    let (mut sender, connection) = http1::Builder::new()
        .max_buf_size(READ_BUFFER)
        .handshake::<_, Full<Bytes>>(TokioIo::new(io))
        .await
        .map_err(|e| hyper_failure(&e, "HTTP handshake"))?;
    let answer = async {
        let response = (sender.send_request(request).await)
            .map_err(|e| hyper_failure(&e, "waiting for the response"))?;
        read_capped(response).await
    };
    drive(answer, quietly(connection)).await
}

/// The token request: `grant_type=client_credentials` with scope, audience and extra
/// parameters as form fields, the client authenticated as `auth_style` says.
fn request(
    client: &OAuth2Client,
    url: &url::Url,
    user_agent: &str,
) -> Result<Request<Full<Bytes>>, Failure> {
    let grant = &client.grant;
    let secret = client.client_secret.0.as_str();
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "client_credentials");
    if !grant.scopes.is_empty() {
        form.append_pair("scope", &grant.scopes.join(" "));
    }
    if let Some(audience) = &grant.audience {
        form.append_pair("audience", audience);
    }
    for (name, value) in &grant.extra_params {
        form.append_pair(name, value);
    }
    if grant.auth_style == AuthStyle::Post {
        form.append_pair("client_id", &client.client_id);
        form.append_pair("client_secret", secret);
    }
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, host)
        .header(header::USER_AGENT, user_agent)
        .header(header::ACCEPT, "application/json")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::CONNECTION, "close");
    if grant.auth_style == AuthStyle::Basic {
        builder = builder.header(header::AUTHORIZATION, basic(&client.client_id, secret));
    }
    builder
        .body(Full::new(Bytes::from(form.finish())))
        .map_err(|_| auth_failed(url, "cannot build the token request".into()))
}

/// `Basic` credentials as RFC 6749 section 2.3.1 writes them: ID and secret form-urlencoded
/// first, then joined and base64-encoded; marked sensitive.
fn basic(id: &str, secret: &str) -> HeaderValue {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(id), encode(secret));
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    // Base64 is always a valid header value.
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

/// The answer, its body read up to [`MAX_TOKEN_RESPONSE`] (a redirect's is not read).
async fn read_capped(response: hyper::Response<hyper::body::Incoming>) -> Result<Answer, Failure> {
    let status = response.status();
    let location = (response.headers().get(header::LOCATION))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = Vec::new();
    if status.is_redirection() {
        return Ok(Answer {
            status,
            location,
            body,
        });
    }
    let mut incoming = response.into_body();
    while let Some(frame) = incoming.frame().await {
        let frame = frame.map_err(|e| hyper_failure(&e, "reading the answer"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if body.len() + data.len() > MAX_TOKEN_RESPONSE {
            return Err(Failure::new(
                Reason::AuthFailed,
                format!(
                    "answered {status} with more than {} KiB, the most a token response may take",
                    MAX_TOKEN_RESPONSE / 1024
                ),
            ));
        }
        body.extend_from_slice(&data);
    }
    Ok(Answer {
        status,
        location,
        body,
    })
}

/// A token from a 2xx answer, or `AuthFailed` naming the status and the endpoint's error.
fn judge(client: &OAuth2Client, url: &url::Url, answer: &Answer) -> Result<Token, Failure> {
    let status = answer.status;
    let parsed: Option<TokenResponse> = serde_json::from_slice(&answer.body).ok();
    if !status.is_success() {
        let error = parsed.map_or_else(String::new, |p| describe_error(client, &p));
        return Err(auth_failed(
            url,
            format!("answered {}{error}", status.as_u16()),
        ));
    }
    let Some(parsed) = parsed else {
        return Err(auth_failed(
            url,
            format!(
                "answered {} with a body that is not a JSON token response",
                status.as_u16()
            ),
        ));
    };
    let Some(token) = parsed.access_token.as_deref().filter(|t| !t.is_empty()) else {
        let error = describe_error(client, &parsed);
        return Err(auth_failed(
            url,
            format!(
                "answered {} without an access_token{error}",
                status.as_u16()
            ),
        ));
    };
    if let Some(kind) = parsed.token_type.as_deref()
        && !kind.eq_ignore_ascii_case("bearer")
    {
        let kind = shown(client, token, kind, 32);
        return Err(auth_failed(
            url,
            format!("issued a token of type {kind:?}, not Bearer"),
        ));
    }
    let mut authorization = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        auth_failed(
            url,
            "issued an access_token with characters a header cannot carry".into(),
        )
    })?;
    authorization.set_sensitive(true);
    Ok(Token {
        authorization,
        lifetime: parsed.expires_in.as_ref().and_then(lifetime),
    })
}

/// `expires_in` in seconds: a number, or a numeric string as some endpoints send it.
fn lifetime(value: &serde_json::Value) -> Option<Duration> {
    let seconds = match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(1e9)))
}

/// `: invalid_client (description)` from an error response (RFC 6749 section 5.2), cut and
/// with any echo of the client's credentials removed.
fn describe_error(client: &OAuth2Client, parsed: &TokenResponse) -> String {
    let Some(error) = parsed.error.as_deref().filter(|e| !e.is_empty()) else {
        return String::new();
    };
    let mut text = format!(": {}", shown(client, "", error, 64));
    if let Some(description) = parsed
        .error_description
        .as_deref()
        .filter(|d| !d.is_empty())
    {
        text.push_str(&format!(" ({})", shown(client, "", description, MAX_SHOWN)));
    }
    text
}

/// Words the token endpoint chose, safe to show: every form of the client secret (and of
/// `token`, when given) replaced, then cut to `max` characters.
fn shown(client: &OAuth2Client, token: &str, text: &str, max: usize) -> String {
    let secret = client.client_secret.0.as_str();
    let encoded: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let basic = basic(&client.client_id, secret);
    let basic = basic
        .to_str()
        .unwrap_or_default()
        .trim_start_matches("Basic ");
    let mut text = text.to_string();
    for needle in [secret, encoded.as_str(), basic, token] {
        if !needle.is_empty() {
            text = text.replace(needle, "[redacted]");
        }
    }
    crate::api::display_text(&text, max).into_owned()
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
