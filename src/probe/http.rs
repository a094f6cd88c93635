//! HTTP and HTTPS probes over hyper's low-level HTTP/1.1 and HTTP/2 clients: one fresh
//! connection per hop, owned and driven inside the probe's scope (HTTP/2 through a scoped
//! executor, so nothing is spawned), bodies read up to a cap and then dropped.

use std::{future::Future, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{
    Failure, MAX_REDIRECTS, ProbeContext,
    body::{BodyCheck, BodyVerdict},
    budget::BodyBudget,
    cel::{self, CelInput, CelRun},
    headers, http2, net,
    sniff::{Spoken, Witness},
    tls::{self, Alpn},
    trace::{Phase, Trace},
};
use crate::api::{
    HttpExpectations, HttpVersion, Reason, StatusMatch, TargetText, ValidHttp, fmt_go, redact,
};

/// A validated HTTP request with its header values resolved.
#[derive(Debug, Clone)]
pub struct HttpCheck {
    pub spec: ValidHttp,
    pub headers: Vec<ResolvedHeader>,
    /// The OAuth2 client whose token goes first (shared by the probe's clones: the cache).
    pub auth: Option<std::sync::Arc<super::oauth2::OAuth2Client>>,
    /// `expect.cel` with its one-evaluation-at-a-time latch, made once per runner.
    pub cel: Option<CelRun>,
}

/// A request header with its value in hand.
#[derive(Debug, Clone)]
pub struct ResolvedHeader {
    pub name: HeaderName,
    pub value: HeaderValue,
    /// Read from a Secret: a credential that must stay with its origin.
    pub from_secret: bool,
}

/// hyper's read buffer per connection: enough for any sane response head, and small enough
/// that many concurrent probes of large bodies stay cheap (hyper's default is ~400 KiB).
const READ_BUFFER: usize = 64 * 1024;

/// What one request returned, after the connection was closed.
pub(super) struct Response {
    status: StatusCode,
    location: Option<String>,
    /// What the body showed the expectations that read it.
    body: BodyVerdict,
    /// Why an `expect.headers` assertion failed.
    headers: Option<String>,
    /// What `expect.cel` sees of the headers, when it is set.
    cel_headers: Vec<(String, String)>,
    body_read: u64,
}

pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One request of a redirect chain.
struct Hop {
    url: url::Url,
    method: Method,
    body: Option<Bytes>,
    /// Credentials (Authorization, Proxy-Authorization, Cookie, headers read from Secrets, the
    /// client certificate) go only to the configured origin: cleared for good at the first
    /// hop to another scheme, host or port.
    credentials: bool,
}

impl Hop {
    fn first(spec: &ValidHttp) -> Self {
        Self {
            url: spec.url.clone(),
            method: spec.method.clone(),
            body: spec.body.clone(),
            credentials: true,
        }
    }

    /// The hop a redirect answer leads to.
    fn follow(
        self,
        status: StatusCode,
        location: &str,
        origin: &url::Origin,
    ) -> Result<Self, Failure> {
        let url = self.url.join(location).map_err(|e| {
            Failure::new(
                Reason::UnexpectedStatus,
                format!(
                    "redirect to invalid location \"{}\": {e}",
                    redact_text(location)
                ),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Failure::new(
                Reason::UnexpectedStatus,
                format!("redirect to unsupported URL {}", redact(&url)),
            ));
        }
        let (method, body) = if matches!(status.as_u16(), 301..=303) && self.method != Method::HEAD
        {
            (Method::GET, None)
        } else {
            (self.method, self.body)
        };
        let credentials = self.credentials && url.origin() == *origin;
        Ok(Self {
            url,
            method,
            body,
            credentials,
        })
    }
}

/// Runs the request, following redirects, and checks the final response.
pub async fn probe(
    check: &HttpCheck,
    tls: &tls::TlsSettings,
    ctx: &ProbeContext,
    trace: &Trace,
    deadline: tokio::time::Instant,
) -> Result<String, Failure> {
    let start = tokio::time::Instant::now();
    let spec = &check.spec;
    let origin = spec.url.origin();
    let mut hop = Hop::first(spec);
    let mut hops = 0;
    let mut response = loop {
        let response = exchange(check, &hop, tls, ctx, trace).await?;
        let redirect = spec.follow_redirects && response.status.is_redirection();
        let Some(location) = response.location.as_deref().filter(|_| redirect) else {
            break response;
        };
        if hops == MAX_REDIRECTS {
            return Err(Failure::new(
                Reason::TooManyRedirects,
                format!(
                    "more than {MAX_REDIRECTS} redirects (last to {})",
                    redact_text(location)
                ),
            ));
        }
        hops += 1;
        hop = hop.follow(response.status, location, &origin)?;
    };
    trace.enter(Phase::Evaluate);
    let elapsed = start.elapsed();
    evaluate(&spec.expect, &response)?;
    if let (Some(run), Some(body)) = (&check.cel, response.body.cel.take()) {
        let (body, reservation) = body?;
        let input = CelInput {
            body,
            reservation,
            headers: std::mem::take(&mut response.cel_headers),
            status: response.status.as_u16(),
        };
        cel::judge(run, input, deadline).await?;
    }
    slow(&spec.expect, elapsed)?;
    let over = match spec.version {
        HttpVersion::Http11 => "",
        HttpVersion::Http2 => " over HTTP/2",
    };
    Ok(format!(
        "{} {} answered {}{over} ({} body bytes read)",
        hop.method,
        redact(&hop.url),
        response.status,
        response.body_read
    ))
}

/// A `Location` value as messages show it: parsed and redacted when it is a URL, else cut
/// at its query; shown as a target's words either way.
fn redact_text(location: &str) -> String {
    let shown = match url::Url::parse(location) {
        Ok(url) => redact(&url),
        Err(_) => (location.split(['?', '#']).next())
            .unwrap_or_default()
            .to_string(),
    };
    TargetText(&shown).to_string()
}

fn evaluate(expect: &HttpExpectations, response: &Response) -> Result<(), Failure> {
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
    if let Some(message) = &response.headers {
        return Err(Failure::new(Reason::HeaderMismatch, message.clone()));
    }
    let body = &response.body;
    let mismatch = if !body.contains {
        expect
            .body_contains
            .as_ref()
            .map(|n| format!("body does not contain {n:?}"))
    } else if body.contains_forbidden {
        expect
            .body_not_contains
            .as_ref()
            .map(|n| format!("body contains {n:?}"))
    } else if !body.regex {
        let regex = expect
            .body_regex
            .as_ref()
            .map(|r| r.as_str())
            .unwrap_or_default();
        Some(format!(
            "the first {} bytes of the body do not match /{regex}/",
            expect.regex_body_limit
        ))
    } else {
        None
    };
    if let Some(message) = mismatch {
        return Err(Failure::new(Reason::BodyMismatch, message));
    }
    if let Some(failure) = &body.json {
        return Err(failure.clone());
    }
    Ok(())
}

/// `maxDuration`, judged on the response's time (before any CEL evaluation).
fn slow(expect: &HttpExpectations, elapsed: Duration) -> Result<(), Failure> {
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
    hop: &Hop,
    tls: &tls::TlsSettings,
    ctx: &ProbeContext,
    trace: &Trace,
) -> Result<Response, Failure> {
    let url = &hop.url;
    let host = url.host_str().unwrap_or_default();
    let port = url.port_or_known_default().unwrap_or(80);
    let (dial_host, dial_port) = match dial(&check.spec, url) {
        Some(endpoint) => (endpoint.host.as_str(), endpoint.port),
        None => (host, port),
    };
    let addrs = net::resolve(dial_host, dial_port, ctx, trace).await?;
    let (stream, _) = net::connect(&addrs, ctx, trace).await?;
    let version = check.spec.version;
    let (io, witness) = if url.scheme() == "https" {
        // serverName overrides only the configured host, not other hosts reached by redirects.
        let name = match tls.policy.server_name.as_deref() {
            Some(name) if check.spec.url.host_str() == Some(host) => name,
            _ => host,
        };
        let alpn = match version {
            HttpVersion::Http11 => Alpn::Http1,
            HttpVersion::Http2 => Alpn::H2,
        };
        let session = tls::handshake(stream, name, tls, hop.credentials, alpn, trace).await?;
        if version == HttpVersion::Http2 {
            session.require_h2()?;
        }
        Witness::tls(session.stream)
    } else {
        Witness::plain(stream)
    };
    trace.enter(Phase::FirstByte);
    let request = build_request(check, hop, &ctx.user_agent)?;
    let result = match version {
        HttpVersion::Http11 => send_http1(io, request, &check.spec, &ctx.body_budget, trace).await,
        HttpVersion::Http2 => http2::send(io, request, &check.spec, &ctx.body_budget, trace).await,
    };
    let spoken = match version {
        HttpVersion::Http11 => (Spoken::Http1, "HTTP/1.1"),
        HttpVersion::Http2 => (Spoken::Http2, "HTTP/2"),
    };
    result.map_err(|failure| {
        witness.explain(
            failure,
            "waiting for the response",
            spoken,
            "use an https:// URL",
        )
    })
}

/// Where a request to `url` is dialled instead of its own host: `connectTo`, for the
/// configured URL's host and port only (curl's `--connect-to` with that host and port), so a
/// redirect to another host or port resolves that host as usual.
fn dial<'a>(spec: &'a ValidHttp, url: &url::Url) -> Option<&'a crate::api::Endpoint> {
    let configured = &spec.url;
    (spec.connect_to.as_ref()).filter(|_| {
        url.host_str() == configured.host_str()
            && url.port_or_known_default() == configured.port_or_known_default()
    })
}

async fn send_http1(
    io: Box<dyn Io>,
    request: Request<Full<Bytes>>,
    spec: &ValidHttp,
    budget: &BodyBudget,
    trace: &Trace,
) -> Result<Response, Failure> {
    let (mut sender, connection) = http1::Builder::new()
        .max_buf_size(READ_BUFFER)
        .handshake::<_, Full<Bytes>>(TokioIo::new(io))
        .await
        .map_err(|e| hyper_failure(&e, "HTTP handshake"))?;
    let exchange = await_response(sender.send_request(request), spec, budget, trace);
    drive(exchange, quietly(connection)).await
}

/// Waits for the response to a sent request (HTTP/1.1 or HTTP/2) and reads it.
pub(super) async fn await_response(
    sent: impl Future<Output = hyper::Result<hyper::Response<hyper::body::Incoming>>>,
    spec: &ValidHttp,
    budget: &BodyBudget,
    trace: &Trace,
) -> Result<Response, Failure> {
    let response = sent
        .await
        .map_err(|e| hyper_failure(&e, "waiting for the response"))?;
    trace.set_http_status(response.status().as_u16());
    trace.enter(Phase::Transfer);
    read_response(response, spec, budget).await
}

/// Polls `exchange` to its end while driving `connection` in this scope (never a detached
/// task), so dropping the probe closes the socket. A connection that ends with a failure ends
/// the exchange with it; one that ends without is dropped, and the exchange goes on to report.
pub(super) async fn drive<T>(
    exchange: impl Future<Output = Result<T, Failure>>,
    connection: impl Future<Output = Option<Failure>>,
) -> Result<T, Failure> {
    tokio::pin!(exchange);
    let mut connection = std::pin::pin!(Some(connection));
    loop {
        let driving = std::future::poll_fn(|cx| match connection.as_mut().as_pin_mut() {
            Some(running) => running.poll(cx),
            None => std::task::Poll::Pending,
        });
        tokio::select! {
            result = &mut exchange => return result,
            ended = driving => match ended {
                Some(failure) => return Err(failure),
                // Drop the finished connection: hyper's HTTP/2 client fails a request still
                // waiting on it only once it is gone (while it is held, the request waits on).
                None => connection.set(None),
            },
        }
    }
}

/// A hyper connection for [`drive`]: its end is no failure of its own, since the exchange
/// reports hyper's error with more to say.
pub(super) async fn quietly<E>(connection: impl Future<Output = Result<(), E>>) -> Option<Failure> {
    let _ = connection.await;
    None
}

/// Whether a header carries credentials that must stay with the configured origin.
fn is_credential(header: &ResolvedHeader) -> bool {
    header.from_secret
        || header.name == header::AUTHORIZATION
        || header.name == header::PROXY_AUTHORIZATION
        || header.name == header::COOKIE
}

fn build_request(
    check: &HttpCheck,
    hop: &Hop,
    user_agent: &str,
) -> Result<Request<Full<Bytes>>, Failure> {
    let url = &hop.url;
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    let mut headers = HeaderMap::new();
    for header in (check.headers.iter()).filter(|h| hop.credentials || !is_credential(h)) {
        headers.append(header.name.clone(), header.value.clone());
    }
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let http2 = check.spec.version == HttpVersion::Http2;
    // HTTP/2 carries the host in :authority (a Host header set in the spec becomes it) and
    // forbids connection-specific headers.
    let uri = if http2 {
        let authority = (headers.remove(header::HOST))
            .and_then(|v| v.to_str().ok().map(str::to_string))
            .unwrap_or_else(|| host.clone());
        format!("{}://{authority}{path}", url.scheme())
    } else {
        path
    };
    let mut defaults = vec![
        (header::USER_AGENT, user_agent.to_string()),
        (header::ACCEPT, "*/*".to_string()),
    ];
    if !http2 {
        defaults.push((header::HOST, host));
        defaults.push((header::CONNECTION, "close".to_string()));
    }
    for (name, value) in defaults {
        if !headers.contains_key(&name)
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            headers.insert(name, value);
        }
    }
    let mut request = Request::builder()
        .method(hop.method.clone())
        .uri(uri)
        .body(Full::new(hop.body.clone().unwrap_or_default()))
        .map_err(|e| {
            Failure::new(
                Reason::InvalidSpec,
                format!("cannot build request for {}: {e}", redact(url)),
            )
        })?;
    *request.headers_mut() = headers;
    Ok(request)
}

pub(super) async fn read_response(
    response: hyper::Response<hyper::body::Incoming>,
    spec: &ValidHttp,
    budget: &BodyBudget,
) -> Result<Response, Failure> {
    let status = response.status();
    let location = (response.headers().get(header::LOCATION))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let headers = headers::judge(&spec.expect.headers, response.headers());
    let cel_headers = match spec.expect.cel {
        Some(_) => cel::header_pairs(response.headers()),
        None => Vec::new(),
    };
    let mut incoming = response.into_body();
    let mut check = BodyCheck::new(&spec.expect, budget);
    // A redirect that will be followed is judged by where it leads: its body is only drained,
    // never buffered, parsed or charged to the budget.
    let followed = spec.follow_redirects && status.is_redirection() && location.is_some();
    let inspect = spec.expect.inspects_body() && !followed;
    let max = spec.max_body_bytes;
    let mut body_read: u64 = 0;
    let mut cut = false;
    while body_read < max {
        let Some(frame) = incoming.frame().await else {
            break;
        };
        let frame = frame.map_err(|e| hyper_failure(&e, "reading the body"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let take = usize::try_from((max - body_read).min(data.len() as u64)).unwrap_or(data.len());
        if inspect {
            check.feed(&data[..take])?;
        }
        body_read += take as u64;
        cut |= take < data.len();
    }
    // Stopped at the cap on a frame's edge: cut unless the stream is known to end there.
    cut |= body_read >= max && !hyper::body::Body::is_end_stream(&incoming);
    Ok(Response {
        status,
        location,
        body: check.verdict(cut),
        headers,
        cel_headers,
        body_read,
    })
}

pub(super) fn hyper_failure(error: &hyper::Error, what: &str) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io_failure(io, what);
        }
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return http2::h2_failure(h2, what);
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

/// An I/O error under an HTTP exchange: a TLS alert (a rejected client certificate surfaces
/// on the first read in TLS 1.3, after the client's handshake completed) or the socket's.
pub(super) fn io_failure(io: &std::io::Error, what: &str) -> Failure {
    if let Some(tls) = io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        return Failure::new(
            Reason::TLSHandshakeFailed,
            format!("{what}: the server ended the TLS session: {tls}"),
        );
    }
    net::classify(io, what)
}
