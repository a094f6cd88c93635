//! gRPC health probes: `grpc.health.v1.Health/Check` over a small client on the `h2` crate
//! (one protobuf field in a 5-byte frame; status from the trailers, or from a headers-only
//! reply), on Canary's own socket, so the deadline, the deny list, TLS capture and phase
//! timings are those of every other probe. The connection is driven in the probe's scope.

mod wire;

use bytes::Bytes;
use h2::client::SendRequest;
use http::{HeaderMap, HeaderValue, Method, Request, header};
use tokio::time::Instant;

use super::{
    Failure, KindFacts, ProbeContext,
    http::{Io, ResolvedHeader, drive},
    http2::h2_failure,
    net,
    sniff::{Spoken, Witness},
    tls::{self, Alpn, TlsSettings},
    trace::{Phase, Trace},
};
use crate::api::{GrpcResult, Reason, ServingStatus, TargetText, ValidGrpc};

pub use wire::{code_name, serving_name};
use wire::{decode_response, encode_request, grpc_timeout, percent_decode};

/// A validated gRPC check with its metadata values in hand.
#[derive(Debug, Clone)]
pub struct GrpcCheck {
    pub spec: ValidGrpc,
    pub metadata: Vec<ResolvedHeader>,
}

/// What the call returned, for status and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrpcFacts {
    /// The call's status (`grpc-status`).
    pub status_code: Option<u32>,
    /// The health service's answer, as its number (1 = SERVING).
    pub serving_status: Option<i64>,
}

impl GrpcFacts {
    /// These facts as status shows them (`lastResult.grpc`).
    pub fn status(&self) -> GrpcResult {
        GrpcResult {
            // A hostile server may send any number; one that does not fit is not a gRPC code.
            status_code: self.status_code.and_then(|c| i32::try_from(c).ok()),
            status: self.status_code.map(code_name),
            serving_status: self.serving_status.map(serving_name),
        }
    }

    /// What the call answered: the serving status, else the call's status.
    pub fn answer(&self) -> Option<String> {
        match (self.serving_status, self.status_code) {
            (Some(serving), _) => Some(serving_name(serving)),
            (None, Some(code)) => Some(code_name(code)),
            (None, None) => None,
        }
    }
}

/// The health method's path.
const PATH: &str = "/grpc.health.v1.Health/Check";
/// Largest response message read: a health response is a few bytes.
const MAX_MESSAGE: usize = 64 * 1024;
/// Flow-control windows: a health check needs next to nothing.
const WINDOW: u32 = 64 * 1024;

/// Calls Health/Check with a `grpc-timeout` of the time left before `deadline`, and checks
/// the serving status.
pub async fn probe(
    check: &GrpcCheck,
    settings: &TlsSettings,
    ctx: &ProbeContext,
    trace: &Trace,
    deadline: Instant,
) -> Result<String, Failure> {
    let spec = &check.spec;
    let addrs = net::resolve(&spec.target.host, spec.target.port, ctx, trace).await?;
    let (stream, addr) = net::connect(&addrs, ctx, trace).await?;
    let (io, witness) = if spec.tls {
        let session = tls::handshake(
            stream,
            server_name(spec, settings),
            settings,
            true,
            Alpn::H2,
            trace,
        )
        .await?;
        session.require_h2()?;
        Witness::tls(session.stream)
    } else {
        Witness::plain(stream)
    };
    trace.enter(Phase::FirstByte);
    let request = request(check, &ctx.user_agent, deadline)?;
    let reply = call(io, request, &spec.service, trace)
        .await
        .map_err(|failure| {
            let spoken = (Spoken::Http2, "HTTP/2 (gRPC)");
            witness.explain(failure, "the gRPC call", spoken, "set spec.grpc.tls: true")
        })?;
    trace.enter(Phase::Evaluate);
    let serving = judge(reply, spec, trace)?;
    let asked = match spec.service.as_str() {
        "" => "the server".to_string(),
        service => format!("service {service:?}"),
    };
    let over = if spec.tls { "TLS" } else { "cleartext HTTP/2" };
    Ok(format!(
        "{addr} ({}) reports {asked} {} over {over}",
        spec.authority,
        serving_name(serving)
    ))
}

/// SNI and the name verified: tlsPolicy.serverName, else the authority's host.
fn server_name<'a>(spec: &'a ValidGrpc, settings: &'a TlsSettings) -> &'a str {
    if let Some(name) = settings.policy.server_name.as_deref() {
        return name;
    }
    match spec.authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => &spec.authority,
    }
}

fn request(check: &GrpcCheck, user_agent: &str, deadline: Instant) -> Result<Request<()>, Failure> {
    let spec = &check.spec;
    let scheme = if spec.tls { "https" } else { "http" };
    let mut headers = HeaderMap::new();
    for entry in &check.metadata {
        headers.append(entry.name.clone(), entry.value.clone());
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let fixed = [
        (header::CONTENT_TYPE, "application/grpc".to_string()),
        (header::TE, "trailers".to_string()),
        (header::USER_AGENT, user_agent.to_string()),
        (
            header::HeaderName::from_static("grpc-timeout"),
            grpc_timeout(left),
        ),
    ];
    for (name, value) in fixed {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("{scheme}://{}{PATH}", spec.authority))
        .body(())
        .map_err(|e| {
            Failure::new(
                Reason::InvalidSpec,
                format!("cannot build the gRPC request for {}: {e}", spec.authority),
            )
        })?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// What came back: the HTTP status and content type, the gRPC status (trailers or a
/// headers-only reply) and the response message.
#[derive(Debug, Default)]
struct Reply {
    http_status: u16,
    content_type: Option<String>,
    grpc_status: Option<u32>,
    grpc_message: Option<String>,
    message: Vec<u8>,
}

/// The HTTP/2 exchange, the connection driven in this scope.
async fn call(
    io: Box<dyn Io>,
    request: Request<()>,
    service: &str,
    trace: &Trace,
) -> Result<Reply, Failure> {
    let (sender, connection) = h2::client::Builder::new()
        .initial_window_size(WINDOW)
        .initial_connection_window_size(WINDOW)
        .max_header_list_size(64 * 1024)
        .enable_push(false)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| h2_failure(&e, "HTTP/2 handshake"))?;
    let exchange = exchange(sender, request, service, trace);
    // A connection that ends with an error says why the call failed.
    let connection =
        async { (connection.await.err()).map(|e| h2_failure(&e, "the HTTP/2 connection")) };
    drive(exchange, connection).await
}

async fn exchange(
    sender: SendRequest<Bytes>,
    request: Request<()>,
    service: &str,
    trace: &Trace,
) -> Result<Reply, Failure> {
    let failed = |what: &'static str| move |e: h2::Error| h2_failure(&e, what);
    let mut sender = sender.ready().await.map_err(failed("opening a stream"))?;
    let (response, mut body) =
        (sender.send_request(request, false)).map_err(failed("sending the request"))?;
    body.send_data(encode_request(service), true)
        .map_err(failed("sending the request"))?;
    let response = response.await.map_err(failed("waiting for the response"))?;
    trace.enter(Phase::Transfer);
    let (head, mut incoming) = response.into_parts();
    let mut reply = Reply {
        http_status: head.status.as_u16(),
        content_type: text(&head.headers, "content-type"),
        ..Reply::default()
    };
    read_status(&head.headers, &mut reply);
    if reply.grpc_status.is_some() || incoming.is_end_stream() {
        return Ok(reply);
    }
    while let Some(chunk) = incoming.data().await {
        let chunk = chunk.map_err(failed("reading the response"))?;
        let _ = incoming.flow_control().release_capacity(chunk.len());
        if reply.message.len() + chunk.len() > MAX_MESSAGE {
            return Err(Failure::new(
                Reason::ProtocolMismatch,
                format!(
                    "the health response is larger than {} KiB: not a health service?",
                    MAX_MESSAGE / 1024
                ),
            ));
        }
        reply.message.extend_from_slice(&chunk);
    }
    if let Some(trailers) = incoming
        .trailers()
        .await
        .map_err(failed("reading the trailers"))?
    {
        read_status(&trailers, &mut reply);
    }
    Ok(reply)
}

fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    (headers.get(name)).and_then(|v| v.to_str().ok().map(str::to_string))
}

fn read_status(headers: &HeaderMap, reply: &mut Reply) {
    if let Some(code) = text(headers, "grpc-status").and_then(|v| v.trim().parse().ok()) {
        reply.grpc_status = Some(code);
        reply.grpc_message = text(headers, "grpc-message").map(|m| percent_decode(&m));
    }
}

/// Updates what the call showed so far (status, then serving status).
fn learn(trace: &Trace, update: impl FnOnce(&mut GrpcFacts)) {
    trace.update(|kind| match kind {
        KindFacts::Grpc(facts) => update(facts),
        other => {
            let mut facts = GrpcFacts::default();
            update(&mut facts);
            *other = KindFacts::Grpc(facts);
        }
    });
}

/// Turns the reply into the serving status, or the reason the check fails.
fn judge(reply: Reply, spec: &ValidGrpc, trace: &Trace) -> Result<i64, Failure> {
    let Some(code) = reply.grpc_status else {
        return Err(not_grpc(&reply));
    };
    learn(trace, |facts| facts.status_code = Some(code));
    if code != 0 {
        return Err(status_failure(code, reply.grpc_message.as_deref(), spec));
    }
    let serving = decode_response(&reply.message)?;
    learn(trace, |facts| facts.serving_status = Some(serving));
    if spec.serving_status.iter().any(|s| s.number() == serving) {
        return Ok(serving);
    }
    let expected: Vec<String> = (spec.serving_status.iter())
        .map(|s| serving_name(s.number()))
        .collect();
    let reason = if serving == ServingStatus::Serving.number() {
        Reason::UnexpectedStatus
    } else {
        Reason::NotServing
    };
    Err(Failure::new(
        reason,
        format!(
            "the health service reports {} for {}, expected {}",
            serving_name(serving),
            describe_service(&spec.service),
            expected.join(" or ")
        ),
    ))
}

fn describe_service(service: &str) -> String {
    match service {
        "" => "the whole server (service \"\")".into(),
        service => format!("service {service:?}"),
    }
}

/// A reply without `grpc-status`: an HTTP/2 server or proxy that is not gRPC.
fn not_grpc(reply: &Reply) -> Failure {
    let content_type = TargetText(reply.content_type.as_deref().unwrap_or("none"));
    if reply.http_status != 200 {
        return Failure::new(
            Reason::UnexpectedStatus,
            format!(
                "HTTP status {} without a gRPC status (content-type {content_type}): a proxy in front of the server, or not a gRPC endpoint?",
                reply.http_status
            ),
        );
    }
    Failure::new(
        Reason::ProtocolMismatch,
        format!(
            "the server answered HTTP/2 without a gRPC status (content-type {content_type}): not a gRPC server?"
        ),
    )
}

fn status_failure(code: u32, message: Option<&str>, spec: &ValidGrpc) -> Failure {
    let detail = match message.filter(|m| !m.is_empty()) {
        Some(message) => format!("{} ({code}): {}", code_name(code), TargetText(message)),
        None => format!("{} ({code})", code_name(code)),
    };
    match code {
        5 => Failure::new(
            Reason::ServiceUnknown,
            format!(
                "the health service does not know {} ({detail}): check spec.grpc.service, or register the service's status with the health server",
                describe_service(&spec.service)
            ),
        ),
        12 => Failure::new(
            Reason::HealthServiceMissing,
            format!(
                "the server does not implement grpc.health.v1 ({detail}): register the standard health service"
            ),
        ),
        // DEADLINE_EXCEEDED, and CANCELLED, which some servers (tonic) answer when the
        // grpc-timeout expires.
        1 | 4 => Failure::new(
            Reason::Timeout,
            format!("the server gave up on the call at its deadline: {detail}"),
        ),
        _ => Failure::new(Reason::UnexpectedStatus, format!("gRPC status {detail}")),
    }
}
