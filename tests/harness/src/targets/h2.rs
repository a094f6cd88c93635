//! An HTTP/2-only server on loopback (hyper's HTTP/2 server): cleartext with prior knowledge,
//! or TLS offering ALPN `h2`; it records the version, authority and headers of each request.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_rustls::TlsAcceptor;

/// One request as the HTTP/2 server saw it.
#[derive(Debug, Clone)]
pub struct H2Request {
    pub version: http::Version,
    pub method: String,
    /// The :authority.
    pub authority: Option<String>,
    pub path: String,
    pub headers: http::HeaderMap,
}

/// An HTTP/2 server on 127.0.0.1 answering `status` with `body`, stopped when dropped.
pub struct H2Server {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<H2Request>>>,
    task: JoinHandle<()>,
}

impl Drop for H2Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl H2Server {
    /// Serves HTTP/2 in cleartext, or over TLS with `tls` (its ALPN set to `h2`).
    pub async fn start(
        tls: Option<Arc<rustls::ServerConfig>>,
        status: u16,
        body: &'static str,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let log = Arc::new(Mutex::new(Vec::new()));
        let acceptor = tls.map(|config| {
            let mut config = (*config).clone();
            config.alpn_protocols = vec![b"h2".to_vec()];
            TlsAcceptor::from(Arc::new(config))
        });
        let task = tokio::spawn(accept(listener, acceptor, log.clone(), status, body));
        Self { addr, log, task }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<H2Request> {
        self.log.lock().unwrap().clone()
    }
}

async fn accept(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    log: Arc<Mutex<Vec<H2Request>>>,
    status: u16,
    body: &'static str,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (tls, log) = (tls.clone(), log.clone());
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                log.lock().unwrap().push(H2Request {
                    version: request.version(),
                    method: request.method().to_string(),
                    authority: request.uri().authority().map(ToString::to_string),
                    path: request.uri().path().to_string(),
                    headers: request.headers().clone(),
                });
                let response = Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::from_static(body.as_bytes())))
                    .expect("response");
                async move { Ok::<_, Infallible>(response) }
            });
            let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            match tls {
                None => {
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
            }
        });
    }
}
