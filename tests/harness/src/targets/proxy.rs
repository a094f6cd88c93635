//! A TCP proxy on loopback that can blackhole: while blackholed it holds every byte in both
//! directions without closing anything, as a network partition looks to both ends.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream, tcp::OwnedReadHalf, tcp::OwnedWriteHalf},
    task::JoinHandle,
};

/// Forwards 127.0.0.1:`port()` to `upstream`; stopped when dropped.
pub struct Proxy {
    addr: SocketAddr,
    blackholed: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let blackholed = Arc::new(AtomicBool::new(false));
        let flag = blackholed.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, upstream, flag.clone()));
            }
        });
        Self {
            addr,
            blackholed,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Holds (true) or forwards again (false) every byte, on open and new connections.
    pub fn blackhole(&self, on: bool) {
        self.blackholed.store(on, Ordering::SeqCst);
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, blackholed: Arc<AtomicBool>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        () = pipe(client_read, server_write, blackholed.clone()) => {}
        () = pipe(server_read, client_write, blackholed) => {}
    }
}

async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, blackholed: Arc<AtomicBool>) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let Ok(n) = from.read(&mut buffer).await else {
            return;
        };
        if n == 0 {
            return;
        }
        while blackholed.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_blackholed_proxy_holds_bytes_until_released() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy::start(upstream.local_addr().unwrap()).await;
        let mut client = TcpStream::connect(("127.0.0.1", proxy.port()))
            .await
            .unwrap();
        let (mut server, _) = upstream.accept().await.unwrap();
        proxy.blackhole(true);
        client.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        let held = tokio::time::timeout(Duration::from_millis(300), server.read(&mut got)).await;
        assert!(held.is_err(), "nothing passes while blackholed");
        proxy.blackhole(false);
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
    }
}
