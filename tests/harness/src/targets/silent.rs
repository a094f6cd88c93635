//! Peers that never answer, on loopback: a [`Blackhole`] whose connects hang (the accept queue
//! is full and nothing accepts, as with a firewall that drops packets), a [`Tarpit`] that accepts
//! and then says nothing, and a port where nothing listens ([`closed_port`]).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::AsyncReadExt,
    net::{TcpListener, TcpSocket, TcpStream},
    task::JoinHandle,
};

/// A listener that never accepts and whose accept queue is already full: the kernel drops
/// further SYNs, so a connect hangs until the client's own deadline.
pub struct Blackhole {
    pub addr: SocketAddr,
    _listener: TcpListener,
    _queued: Vec<TcpStream>,
}

impl Blackhole {
    /// Listens with the smallest backlog and connects until a connect no longer completes.
    pub async fn start() -> Self {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind(([127, 0, 0, 1], 0).into()).expect("bind");
        let listener = socket.listen(0).expect("listen");
        let addr = listener.local_addr().expect("addr");
        let mut queued = Vec::new();
        for _ in 0..16 {
            match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => queued.push(stream),
                Ok(Err(e)) => panic!("connect to the blackhole's own listener: {e}"),
                Err(_) => {
                    return Self {
                        addr,
                        _listener: listener,
                        _queued: queued,
                    };
                }
            }
        }
        panic!(
            "the accept queue of {addr} never filled ({} connected)",
            queued.len()
        )
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// Accepts TCP connections and holds them open, reading and never writing a byte (a TLS
/// peer that never answers the handshake, an HTTP server that never answers a request).
pub struct Tarpit {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Tarpit {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut sink = [0u8; 1024];
                    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                });
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Tarpit {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port on 127.0.0.1 with nothing listening (reserved, then released).
pub async fn closed_port() -> u16 {
    let reserved = TcpListener::bind("127.0.0.1:0").await.unwrap();
    reserved.local_addr().unwrap().port()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_connect_to_the_blackhole_hangs_until_the_deadline() {
        let hole = Blackhole::start().await;
        for _ in 0..3 {
            let attempt = TcpStream::connect(hole.addr);
            let result = tokio::time::timeout(Duration::from_millis(300), attempt).await;
            assert!(result.is_err(), "connected or refused: {result:?}");
        }
    }

    #[tokio::test]
    async fn the_tarpit_accepts_and_never_answers() {
        let pit = Tarpit::start().await;
        let mut stream = TcpStream::connect(pit.addr).await.expect("accepted");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await;
        assert!(read.is_err(), "the tarpit answered: {read:?}");
        assert_eq!(pit.accepted(), 1);
    }

    #[tokio::test]
    async fn nothing_listens_on_a_closed_port() {
        let port = closed_port().await;
        let refused = TcpStream::connect(("127.0.0.1", port)).await;
        assert!(refused.is_err());
    }
}
