//! A reference gRPC server on loopback: tonic with tonic-health's standard health service
//! (`payments` SERVING, `billing` NOT_SERVING, the whole server SERVING, anything else
//! NOT_FOUND), a server without the health service (UNIMPLEMENTED), a health service that
//! answers late, and one that fails with a chosen status and message; each in cleartext, over
//! TLS, or with client certificates required.

use std::{net::SocketAddr, time::Duration};

use tokio::{net::TcpListener, task::JoinHandle};
use tonic::{
    Request, Response, Status,
    codegen::tokio_stream,
    service::Routes,
    transport::{Certificate, Identity, Server, ServerTlsConfig, server::TcpIncoming},
};
use tonic_health::{
    ServingStatus,
    pb::{
        HealthCheckRequest, HealthCheckResponse, health_check_response,
        health_server::{Health, HealthServer},
    },
};

/// TLS for the server: its certificate and key, and the CA client certificates must chain to.
#[derive(Clone)]
pub struct GrpcTls {
    pub cert_pem: String,
    pub key_pem: String,
    /// When set, a client certificate signed by this CA is required.
    pub client_ca_pem: Option<String>,
}

/// What the server offers.
pub enum Offer {
    /// tonic-health's reporter: `payments` SERVING, `billing` NOT_SERVING, "" SERVING.
    Health,
    /// No health service at all: every call is UNIMPLEMENTED.
    NoHealth,
    /// A health service that answers SERVING after this pause.
    Slow(Duration),
    /// A health service that fails every call with this gRPC status code and `grpc-message`
    /// (a hostile server's words).
    Fails(i32, String),
}

/// A gRPC server on 127.0.0.1, stopped when dropped.
pub struct GrpcServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GrpcServer {
    /// Serves `offer` in cleartext HTTP/2, or over `tls`.
    pub async fn start(offer: Offer, tls: Option<GrpcTls>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut builder = Server::builder();
        if let Some(tls) = tls {
            let mut config =
                ServerTlsConfig::new().identity(Identity::from_pem(tls.cert_pem, tls.key_pem));
            if let Some(ca) = tls.client_ca_pem {
                config = config.client_ca_root(Certificate::from_pem(ca));
            }
            builder = builder.tls_config(config).expect("TLS config");
        }
        let router = match offer {
            Offer::Health => {
                let (reporter, service) = tonic_health::server::health_reporter();
                reporter
                    .set_service_status("", ServingStatus::Serving)
                    .await;
                reporter
                    .set_service_status("payments", ServingStatus::Serving)
                    .await;
                reporter
                    .set_service_status("billing", ServingStatus::NotServing)
                    .await;
                builder.add_service(service)
            }
            Offer::NoHealth => builder.add_routes(Routes::default()),
            Offer::Slow(pause) => builder.add_service(HealthServer::new(Scripted::Slow(pause))),
            Offer::Fails(code, message) => {
                let code = tonic::Code::from_i32(code);
                builder.add_service(HealthServer::new(Scripted::Fails(code, message)))
            }
        };
        // As gRPC servers do: without it, Nagle's algorithm and delayed ACKs add 40 ms a call.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let task = tokio::spawn(async move {
            let _ = router.serve_with_incoming(incoming).await;
        });
        Self { addr, task }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// A health service with one scripted answer to every check (no watch).
enum Scripted {
    /// Serving, after this pause.
    Slow(Duration),
    /// This code and message.
    Fails(tonic::Code, String),
}

#[tonic::async_trait]
impl Health for Scripted {
    async fn check(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        match self {
            Self::Slow(pause) => {
                tokio::time::sleep(*pause).await;
                Ok(Response::new(HealthCheckResponse {
                    status: health_check_response::ServingStatus::Serving as i32,
                }))
            }
            Self::Fails(code, message) => Err(Status::new(*code, message.clone())),
        }
    }

    type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}
