//! One plain HTTP/1.1 GET on a fresh connection, for Canary talking to Canary: `canary selftest`
//! asking the operator's `/readyz`, a sharded replica fetching a check's page from its owner.
//! Rare requests, so no pool; the caller sets the deadline.

use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

/// GETs `path_and_query` from `addr` (named `host` in the Host header) with `headers`; the
/// reply with its body, read up to `max_body` bytes. Errors are the failure, as text.
pub async fn get(
    addr: impl tokio::net::ToSocketAddrs,
    host: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    max_body: usize,
) -> Result<Response<Bytes>, String> {
    let stream =
        (tokio::net::TcpStream::connect(addr).await).map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let connection = tokio::spawn(connection);
    let mut request = Request::get(path_and_query).header(header::HOST, host);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let result = async {
        let request = request.body(Empty::new()).map_err(|e| e.to_string())?;
        let response = (sender.send_request(request).await).map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, max_body).collect().await;
        let body = body.map_err(|e| e.to_string())?.to_bytes();
        Ok(Response::from_parts(parts, body))
    }
    .await;
    connection.abort();
    result
}
