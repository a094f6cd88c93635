//! A minimal HTTP/1.1 GET over a plain socket, for admin endpoints (`/metrics`, `/healthz`),
//! Prometheus' API and the local API server; no client library between the test and the wire.

use std::{net::SocketAddr, time::Duration};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one exchange may take.
const LIMIT: Duration = Duration::from_secs(5);

/// One answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The status line and headers.
    pub head: String,
    /// The body (de-chunked).
    pub body: String,
}

/// `GET path`: the answer, or why there is none (refused, timed out, not HTTP).
pub async fn get(addr: SocketAddr, path: &str) -> Result<Response, String> {
    request(addr, path, &[]).await
}

/// `GET path` with extra request headers.
pub async fn request(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    send(addr, "GET", path, headers).await
}

/// `method path` with extra request headers and no body.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, String> {
    let exchange = async {
        let mut stream = (tokio::net::TcpStream::connect(addr).await)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        (stream.write_all(request.as_bytes()).await).map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        (stream.read_to_end(&mut raw).await).map_err(|e| e.to_string())?;
        parse(&String::from_utf8_lossy(&raw))
    };
    tokio::time::timeout(LIMIT, exchange)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "{method} {path} at {addr}: no answer within {LIMIT:?}"
            ))
        })
}

impl Response {
    /// The value of response header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        (self.head.lines().skip(1))
            .filter_map(|line| line.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }

    /// The body as JSON; fails the test when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn parse(text: &str) -> Result<Response, String> {
    let (head, body) =
        (text.split_once("\r\n\r\n")).ok_or_else(|| format!("not HTTP: {text:?}"))?;
    let status = (head.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let chunked = (head.to_ascii_lowercase()).contains("transfer-encoding: chunked");
    Ok(Response {
        status,
        head: head.to_string(),
        body: if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

#[test]
fn chunked_bodies_are_reassembled() {
    let text =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    let response = parse(text).unwrap();
    assert_eq!((response.status, response.body.as_str()), (200, "abcde"));
}
