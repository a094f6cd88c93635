//! POSTs of PromQL to `/api/v1/query` over HTTP/1.1, plain or TLS (the system's roots plus
//! `--prometheus-ca-file`), with the bearer token read from its file each time and the answer
//! read up to [`MAX_BODY`]. A fresh connection per query: a page asks a few per 30 s.

use std::{path::PathBuf, sync::Arc};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncRead, AsyncWrite};

use super::{MAX_BODY, PromConfig, PromError};
use crate::probe::{provider, system_roots};

/// Where Prometheus is and how to reach it.
pub struct Client {
    host: String,
    port: u16,
    /// The Host header: host and port as the URL has them.
    authority: String,
    /// The URL's path, without a final `/`: `/api/v1/...` goes below it (`/prometheus` behind
    /// a prefix).
    base: String,
    shown: String,
    tls: Option<tokio_rustls::TlsConnector>,
    token_file: Option<PathBuf>,
}

impl Client {
    pub fn new(config: &PromConfig) -> Result<Self, PromError> {
        let url = &config.url;
        let bad = || PromError::Url(crate::api::redact(url));
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(bad)?;
        let port = url.port_or_known_default().ok_or_else(bad)?;
        let tls = match url.scheme() {
            "http" => None,
            "https" => Some(connector(config.ca_file.as_ref())?),
            _ => return Err(bad()),
        };
        Ok(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            authority: match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            },
            base: url.path().trim_end_matches('/').to_string(),
            shown: crate::api::redact(url),
            tls,
            token_file: config.token_file.clone(),
        })
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The answer's body to an instant query of `expr` (at the server's now).
    pub async fn query(&self, expr: &str) -> Result<Bytes, PromError> {
        self.post("/api/v1/query", &[("query", expr)]).await
    }

    /// The answer's body to a range query of `expr` from `start` to `end` (Unix seconds).
    pub async fn query_range(
        &self,
        expr: &str,
        (start, end, step): (i64, i64, i64),
    ) -> Result<Bytes, PromError> {
        let (start, end, step) = (start.to_string(), end.to_string(), step.to_string());
        let form = [
            ("query", expr),
            ("start", &start),
            ("end", &end),
            ("step", &step),
        ];
        self.post("/api/v1/query_range", &form).await
    }

    /// POSTs `form` to `path` below the URL's path.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<Bytes, PromError> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = Request::post(format!("{}{path}", self.base))
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        if let Some(token) = self.token()? {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = (request.body(Full::new(Bytes::from(form))))
            .map_err(|e| PromError::Http(e.to_string()))?;
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| PromError::Http(format!("connecting to {}: {e}", self.shown)))?;
        let (status, body) = match &self.tls {
            None => exchange(stream, request).await?,
            Some(tls) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|e| PromError::Http(e.to_string()))?;
                let stream = (tls.connect(name, stream).await)
                    .map_err(|e| PromError::Http(format!("TLS with {}: {e}", self.shown)))?;
                exchange(stream, request).await?
            }
        };
        // Errors of the query API come as JSON with 400, 422 or 503: parsed as such.
        let json = body.first() == Some(&b'{');
        if status != StatusCode::OK && !json {
            return Err(PromError::Http(format!("HTTP {status}")));
        }
        Ok(body)
    }

    /// The token, read now; `None` without a token file.
    fn token(&self) -> Result<Option<String>, PromError> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let token = std::fs::read_to_string(path).map_err(|e| PromError::Token {
            path: path.display().to_string(),
            error: e.to_string(),
        })?;
        let token = token.trim();
        let valid = !token.is_empty() && http::HeaderValue::from_str(token).is_ok();
        match valid {
            true => Ok(Some(token.to_string())),
            false => Err(PromError::Token {
                path: path.display().to_string(),
                error: "empty, or not a header value".into(),
            }),
        }
    }
}

/// One request on `io`; the status and the body, read up to [`MAX_BODY`].
async fn exchange<S>(io: S, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), PromError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let http = |e: &dyn std::fmt::Display| PromError::Http(e.to_string());
    let (mut sender, connection) =
        (http1::handshake(TokioIo::new(io)).await).map_err(|e| http(&e))?;
    let connection = tokio::spawn(connection);
    let result = async {
        let response = sender.send_request(request).await.map_err(|e| http(&e))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY).collect().await;
        let body = body.map_err(|e| PromError::Http(format!("reading the answer: {e}")))?;
        Ok((status, body.to_bytes()))
    }
    .await;
    connection.abort();
    result
}

/// TLS with the system's roots and the CA file's certificates.
fn connector(ca_file: Option<&PathBuf>) -> Result<tokio_rustls::TlsConnector, PromError> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(path) = ca_file {
        let ca = |error: String| PromError::Ca {
            path: path.display().to_string(),
            error,
        };
        let pem = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
        let certs: Vec<CertificateDer<'static>> = (CertificateDer::pem_slice_iter(&pem))
            .collect::<Result<_, _>>()
            .map_err(|e| ca(e.to_string()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(ca("no certificate in it".into()));
        }
    }
    let config = (ClientConfig::builder_with_provider(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| PromError::Http(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
