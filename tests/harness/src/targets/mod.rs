//! Loopback targets for probes: HTTP and TLS servers with generated certificates ([`server`],
//! [`pki`]), one whose status can be switched, and peers that never answer ([`silent`]: a
//! blackhole that never accepts, a tarpit that accepts and says nothing), and a TCP proxy that
//! can cut a component off the network ([`proxy`]), a scripted DNS responder ([`dns`]), a
//! reference gRPC server ([`grpc`]: tonic with tonic-health) and an HTTP/2-only server ([`h2`]).

pub mod dns;
pub mod grpc;
pub mod h2;
pub mod pki;
pub mod proxy;
pub mod server;
pub mod silent;

use std::sync::{
    Arc,
    atomic::{AtomicU16, Ordering},
};

pub use pki::{Ca, Leaf};
pub use proxy::Proxy;
pub use server::{Recorded, Reply, TestServer, Transport, tls_config};
pub use silent::{Blackhole, Tarpit, closed_port};

/// `n` days, for certificate validity relative to now.
pub fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

/// A TLS 1.3 server config presenting `leaf` alone.
pub fn tls13(leaf: &Leaf) -> Arc<rustls::ServerConfig> {
    tls_config(
        vec![leaf.der.clone()],
        leaf.key(),
        &[&rustls::version::TLS13],
        None,
    )
}

/// A TLS 1.3 server config for `localhost` signed by a fresh CA named `ca_name`.
pub fn localhost_tls(ca_name: &str) -> (Ca, Arc<rustls::ServerConfig>) {
    let ca = Ca::root(ca_name);
    let config = tls13(&ca.leaf(&["localhost"], days(-1), days(90)));
    (ca, config)
}

impl TestServer {
    /// A TLS 1.3 server presenting `leaf` alone, answering 200 "ok".
    pub async fn https(leaf: &Leaf) -> Self {
        Self::start(Transport::Tls(tls13(leaf)), |_| Reply::ok("ok")).await
    }
}

/// A plain HTTP server answering every request with the status it is switched to.
pub struct Switchable {
    pub server: TestServer,
    code: Arc<AtomicU16>,
}

impl Switchable {
    /// Starts answering `code`.
    pub async fn start(code: u16) -> Self {
        let code = Arc::new(AtomicU16::new(code));
        let answer = code.clone();
        let server = TestServer::start(Transport::Plain, move |_| {
            Reply::status(answer.load(Ordering::SeqCst), "switchable")
        })
        .await;
        Self { server, code }
    }

    /// Answers `code` from now on.
    pub fn set(&self, code: u16) {
        self.code.store(code, Ordering::SeqCst);
    }
}

impl std::ops::Deref for Switchable {
    type Target = TestServer;
    fn deref(&self) -> &TestServer {
        &self.server
    }
}
