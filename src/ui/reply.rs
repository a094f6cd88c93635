//! A page's reply before it is sent: status, content type and body, gzipped when the client
//! takes it, then given the headers every response carries (a strict Content-Security-Policy,
//! `Cache-Control: no-cache`, `nosniff`, no referrer).

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};

use super::{CSP, forward};

/// A response before the common headers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: Bytes,
    /// The body depends on `Accept-Encoding`.
    vary: bool,
    /// The body is gzipped.
    gzip: bool,
}

impl Reply {
    pub fn new(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Self {
        Self {
            status,
            content_type,
            body: body.into(),
            vary: false,
            gzip: false,
        }
    }

    /// Rendered markup, its buffer cut to size (the budget counts what is held).
    pub fn html(status: StatusCode, markup: maud::Markup) -> Self {
        let mut text = markup.into_string();
        text.shrink_to_fit();
        Self::new(status, "text/html; charset=utf-8", text)
    }

    /// The owner's reply to a forwarded request, with one of the page's own content types.
    pub fn relayed(relayed: forward::Relayed) -> Self {
        let given = relayed.content_type.unwrap_or_default();
        let content_type = match given.split(';').next().unwrap_or_default().trim() {
            "text/html" => "text/html; charset=utf-8",
            "application/json" => "application/json",
            "image/svg+xml" => "image/svg+xml",
            _ => "application/octet-stream",
        };
        Self::new(relayed.status, content_type, relayed.body)
    }

    pub fn json(status: StatusCode, value: &serde_json::Value) -> Self {
        let mut text = value.to_string();
        text.shrink_to_fit();
        Self::new(status, "application/json", text)
    }

    pub fn error(status: StatusCode, message: impl std::fmt::Display) -> Self {
        Self::json(status, &serde_json::json!({ "error": message.to_string() }))
    }
}

/// Bodies smaller than this go as they are (a packet holds them anyway).
const COMPRESS_ABOVE: usize = 1400;

/// Whether the client takes gzip (`Accept-Encoding: gzip`, not `gzip;q=0`).
pub fn accepts_gzip<B>(request: &Request<B>) -> bool {
    let accepted = request.headers().get_all(header::ACCEPT_ENCODING);
    accepted
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|value| {
            value.split(',').any(|coding| {
                let mut parts = coding.split(';').map(str::trim);
                parts.next() == Some("gzip") && !parts.any(|p| p.replace(' ', "") == "q=0")
            })
        })
}

impl Reply {
    /// Gzipped when the client takes it and it pays (a 1,000-check overview is megabytes of
    /// repetitive HTML and shrinks about tenfold).
    pub fn compressed(mut self, accepted: bool) -> Self {
        self.vary = true;
        if !accepted || self.body.len() <= COMPRESS_ABOVE {
            return self;
        }
        if let Some(body) = gzip(&self.body) {
            self.body = body.into();
            self.gzip = true;
        }
        self
    }
}

/// `body` gzipped at the fastest level (the page is rendered per request).
pub fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 8),
        flate2::Compression::fast(),
    );
    encoder.write_all(body).ok()?;
    let mut zipped = encoder.finish().ok()?;
    zipped.shrink_to_fit();
    Some(zipped)
}

/// The response with the headers every page response carries.
pub fn secure(reply: Reply) -> Response<Bytes> {
    let mut response = Response::new(reply.body);
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if reply.vary {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if reply.gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if reply.status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}
