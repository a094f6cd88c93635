//! HTTP/2 requests on hyper's client: ALPN `h2` over TLS, prior knowledge in cleartext. hyper
//! hands its connection task (which owns the socket) to an executor; here that is a scoped
//! executor the probe drives itself, so the socket never outlives the probe.

use std::{future::Future, pin::Pin};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use hyper::client::conn::http2;
use hyper_util::rt::TokioIo;

use super::{
    Failure,
    budget::BodyBudget,
    http::{Io, Response, await_response, drive, hyper_failure, io_failure, quietly},
    scoped,
    trace::Trace,
};
use crate::api::{Reason, ValidHttp};

/// HTTP/2 flow-control windows: how much a server may send ahead of the body reader
/// (hyper's defaults, 2 MiB per stream and 5 MiB per connection, are sized for throughput).
const H2_WINDOW: u32 = 256 * 1024;

/// HTTP/2 (prior knowledge in cleartext, ALPN h2 over TLS): hyper hands its connection task to
/// a scoped executor driven here, so the socket never outlives this future.
pub(super) async fn send(
    io: Box<dyn Io>,
    request: Request<Full<Bytes>>,
    spec: &ValidHttp,
    budget: &BodyBudget,
    trace: &Trace,
) -> Result<Response, Failure> {
    let (executor, driver) = scoped::scoped();
    let work = async {
        let (mut sender, connection) = h2_handshake(io, executor).await?;
        let exchange = await_response(sender.send_request(request), spec, budget, trace);
        drive(exchange, quietly(connection)).await
    };
    tokio::select! {
        result = work => result,
        () = driver => Err(Failure::new(Reason::ProberError, "the HTTP/2 task driver stopped")),
    }
}

type BoxedConnection = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;
type H2Handshake = Pin<
    Box<
        dyn Future<Output = Result<(http2::SendRequest<Full<Bytes>>, BoxedConnection), Failure>>
            + Send,
    >,
>;

/// hyper's HTTP/2 handshake, boxed with owned inputs: its executor bounds are generic over
/// lifetimes, which a future borrowing the probe's state cannot prove `Send` for.
fn h2_handshake(io: Box<dyn Io>, executor: scoped::ScopedExecutor) -> H2Handshake {
    Box::pin(async move {
        let (sender, connection) = http2::Builder::new(executor)
            .initial_stream_window_size(H2_WINDOW)
            .initial_connection_window_size(H2_WINDOW)
            .max_frame_size(16 * 1024)
            .handshake::<_, Full<Bytes>>(TokioIo::new(io))
            .await
            .map_err(|e| hyper_failure(&e, "HTTP/2 handshake"))?;
        Ok((sender, Box::pin(connection) as BoxedConnection))
    })
}

/// An HTTP/2 error: the socket's, the server ending the stream or connection, or a broken
/// protocol (the server does not speak HTTP/2 properly).
pub(super) fn h2_failure(error: &h2::Error, what: &str) -> Failure {
    if let Some(io) = error.get_io() {
        return io_failure(io, what);
    }
    if error.is_go_away() || error.is_reset() {
        return Failure::new(
            Reason::ConnectionReset,
            format!("{what}: the server ended the HTTP/2 exchange: {error}"),
        );
    }
    Failure::new(
        Reason::ProtocolMismatch,
        format!("{what}: the server broke the HTTP/2 protocol: {error}"),
    )
}
