//! HTTP and HTTPS probes over hyper's low-level HTTP/1.1 client: one fresh connection per hop,
//! owned and driven inside the probe's scope, bodies read up to a cap and then dropped.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Failure, MAX_REDIRECTS, ProbeContext, net, tls, trace::Phase, trace::Trace};
use crate::api::{HttpExpectations, Reason, StatusMatch, ValidHttp, fmt_go};

/// A validated HTTP request with its header values resolved.
#[derive(Debug, Clone)]
pub struct HttpCheck {
    pub spec: ValidHttp,
    pub headers: Vec<ResolvedHeader>,
}

/// A request header with its value in hand.
#[derive(Debug, Clone)]
pub struct ResolvedHeader {
    pub name: HeaderName,
    pub value: HeaderValue,
    /// Read from a Secret: a credential that must stay with its origin.
    pub from_secret: bool,
}

/// What one request returned, after the connection was closed.
struct Response {
    status: StatusCode,
    location: Option<String>,
    /// The first `max_body_bytes`, kept only when an expectation reads it.
    body: Vec<u8>,
    body_read: u64,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Runs the request, following redirects, and checks the final response.
pub async fn probe(
    check: &HttpCheck,
    tls: &tls::TlsSettings,
    ctx: &ProbeContext,
    trace: &Trace,
) -> Result<String, Failure> {
    let start = tokio::time::Instant::now();
    let spec = &check.spec;
    let mut url = spec.url.clone();
    let mut method = spec.method.clone();
    let mut body = spec.body.clone();
    let mut hops = 0;
    let response = loop {
        let response = exchange(check, &url, &method, body.clone(), tls, ctx, trace).await?;
        let redirect = spec.follow_redirects && response.status.is_redirection();
        let Some(location) = response.location.as_deref().filter(|_| redirect) else {
            break response;
        };
        if hops == MAX_REDIRECTS {
            return Err(Failure::new(
                Reason::TooManyRedirects,
                format!("more than {MAX_REDIRECTS} redirects (last to {location})"),
            ));
        }
        hops += 1;
        url = url.join(location).map_err(|e| {
            Failure::new(
                Reason::UnexpectedStatus,
                format!("redirect to invalid location {location:?}: {e}"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Failure::new(
                Reason::UnexpectedStatus,
                format!("redirect to unsupported URL {url}"),
            ));
        }
        if matches!(response.status.as_u16(), 301..=303) && method != Method::HEAD {
            method = Method::GET;
            body = None;
        }
    };
    trace.enter(Phase::Evaluate);
    evaluate(&spec.expect, &response, start.elapsed())?;
    Ok(format!(
        "{} {} answered {} ({} body bytes read)",
        method, url, response.status, response.body_read
    ))
}

fn evaluate(
    expect: &HttpExpectations,
    response: &Response,
    elapsed: Duration,
) -> Result<(), Failure> {
    let status = response.status.as_u16();
    if !expect.status.iter().any(|m| m.matches(status)) {
        return Err(Failure::new(
            Reason::UnexpectedStatus,
            format!(
                "status {status} is not one of the expected {}",
                describe_status(&expect.status)
            ),
        ));
    }
    let text = String::from_utf8_lossy(&response.body);
    if let Some(needle) = &expect.body_contains
        && !text.contains(needle.as_str())
    {
        return Err(Failure::new(
            Reason::BodyMismatch,
            format!("body does not contain {needle:?}"),
        ));
    }
    if let Some(needle) = &expect.body_not_contains
        && text.contains(needle.as_str())
    {
        return Err(Failure::new(
            Reason::BodyMismatch,
            format!("body contains {needle:?}"),
        ));
    }
    if let Some(regex) = &expect.body_regex
        && !regex.is_match(&text)
    {
        return Err(Failure::new(
            Reason::BodyMismatch,
            format!("body does not match /{}/", regex.as_str()),
        ));
    }
    if let Some(budget) = expect.max_duration
        && elapsed > budget
    {
        return Err(Failure::new(
            Reason::Slow,
            format!(
                "answered in {} (> maxDuration {})",
                fmt_go(elapsed),
                fmt_go(budget)
            ),
        ));
    }
    Ok(())
}

fn describe_status(status: &[StatusMatch]) -> String {
    let items: Vec<String> = status.iter().map(ToString::to_string).collect();
    items.join(", ")
}

/// One request on one fresh connection, closed before returning.
async fn exchange(
    check: &HttpCheck,
    url: &url::Url,
    method: &Method,
    body: Option<Bytes>,
    tls: &tls::TlsSettings,
    ctx: &ProbeContext,
    trace: &Trace,
) -> Result<Response, Failure> {
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let addrs = net::resolve(host, port, ctx, trace).await?;
    let (stream, _) = net::connect(&addrs, trace).await?;
    let io: Box<dyn Io> = if url.scheme() == "https" {
        // serverName overrides only the configured host, not other hosts reached by redirects.
        let name = match tls.policy.server_name.as_deref() {
            Some(name) if check.spec.url.host_str() == Some(host) => name,
            _ => host,
        };
        let session = tls::handshake(stream, name, tls, trace).await?;
        Box::new(session.stream)
    } else {
        Box::new(stream)
    };
    trace.enter(Phase::FirstByte);
    let request = build_request(check, url, method, body)?;
    let (mut sender, connection) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(io))
        .await
        .map_err(|e| hyper_failure(&e, "HTTP handshake"))?;
    let exchange = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| hyper_failure(&e, "waiting for the response"))?;
        trace.set_http_status(response.status().as_u16());
        trace.enter(Phase::Transfer);
        let spec = &check.spec;
        read_response(response, spec.max_body_bytes, spec.expect.inspects_body()).await
    };
    tokio::pin!(exchange, connection);
    let mut connection_done = false;
    // Drive the connection in this scope (never a detached task) so dropping the probe closes it.
    loop {
        tokio::select! {
            result = &mut exchange => return result,
            _ = &mut connection, if !connection_done => connection_done = true,
        }
    }
}

fn build_request(
    check: &HttpCheck,
    url: &url::Url,
    method: &Method,
    body: Option<Bytes>,
) -> Result<Request<Full<Bytes>>, Failure> {
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    let mut headers = HeaderMap::new();
    for header in &check.headers {
        headers.append(header.name.clone(), header.value.clone());
    }
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let defaults = [
        (header::HOST, host),
        (
            header::USER_AGENT,
            concat!("canary/", env!("CARGO_PKG_VERSION")).to_string(),
        ),
        (header::CONNECTION, "close".to_string()),
        (header::ACCEPT, "*/*".to_string()),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name)
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            headers.insert(name, value);
        }
    }
    let body = body.unwrap_or_default();
    let mut request = Request::builder()
        .method(method.clone())
        .uri(path)
        .body(Full::new(body))
        .map_err(|e| {
            Failure::new(
                Reason::InvalidSpec,
                format!("cannot build request for {url}: {e}"),
            )
        })?;
    *request.headers_mut() = headers;
    Ok(request)
}

async fn read_response(
    response: hyper::Response<hyper::body::Incoming>,
    max_body_bytes: u64,
    keep: bool,
) -> Result<Response, Failure> {
    let status = response.status();
    let location = (response.headers().get(header::LOCATION))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut incoming = response.into_body();
    let mut body = Vec::new();
    let mut body_read: u64 = 0;
    while body_read < max_body_bytes {
        let Some(frame) = incoming.frame().await else {
            break;
        };
        let frame = frame.map_err(|e| hyper_failure(&e, "reading the body"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let take = usize::try_from((max_body_bytes - body_read).min(data.len() as u64))
            .unwrap_or(data.len());
        if keep {
            body.extend_from_slice(&data[..take]);
        }
        body_read += take as u64;
    }
    Ok(Response {
        status,
        location,
        body,
        body_read,
    })
}

fn hyper_failure(error: &hyper::Error, what: &str) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            // In TLS 1.3 a server rejects a client certificate after the client's handshake
            // has completed, so the alert surfaces on the first read.
            if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
                return Failure::new(
                    Reason::TLSHandshakeFailed,
                    format!("{what}: the server ended the TLS session: {tls}"),
                );
            }
            return net::classify(io, what);
        }
        source = e.source();
    }
    let reason = if error.is_incomplete_message() || error.is_closed() {
        Reason::ConnectionReset
    } else {
        Reason::UnexpectedStatus
    };
    Failure::new(reason, format!("{what}: {error}"))
}
