//! A scripted DNS responder on loopback: UDP and TCP on the same 127.0.0.1 port (so a
//! truncated UDP answer can be retried over TCP), or DNS over TLS with a rustls config. Each
//! query goes to a handler that returns the reply, raw bytes, a late reply or silence.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use hickory_proto::{
    op::{Message, OpCode, ResponseCode},
    rr::{Name, RData, Record},
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, UdpSocket},
    task::JoinHandle,
};
use tokio_rustls::TlsAcceptor;

/// How the responder was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Udp,
    Tcp,
    Tls,
}

/// What the responder sends back.
#[derive(Debug, Clone)]
pub enum DnsReply {
    Message(Message),
    /// Bytes as they are (malformed packets).
    Raw(Vec<u8>),
    /// The reply after a pause.
    Late(Duration, Box<DnsReply>),
    /// No reply at all.
    Silent,
}

type Handler = Arc<dyn Fn(&Message, Via) -> DnsReply + Send + Sync>;

/// A DNS responder, stopped when dropped.
pub struct DnsServer {
    /// The UDP and TCP (or TLS) address.
    pub addr: SocketAddr,
    queries: Arc<Mutex<Vec<(Via, Message)>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

impl DnsServer {
    /// UDP and TCP on the same port of 127.0.0.1.
    pub async fn start(
        handler: impl Fn(&Message, Via) -> DnsReply + Send + Sync + 'static,
    ) -> Self {
        let handler: Handler = Arc::new(handler);
        let queries = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..50 {
            let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
            let addr = udp.local_addr().expect("UDP address");
            let Ok(tcp) = TcpListener::bind(addr).await else {
                continue; // the port is taken for TCP: try another
            };
            let tasks = vec![
                tokio::spawn(serve_udp(udp, handler.clone(), queries.clone())),
                tokio::spawn(accept(tcp, None, handler, queries.clone())),
            ];
            return Self {
                addr,
                queries,
                tasks,
            };
        }
        panic!("no 127.0.0.1 port free for both UDP and TCP");
    }

    /// DNS over TLS on 127.0.0.1 with `config`.
    pub async fn start_tls(
        config: Arc<rustls::ServerConfig>,
        handler: impl Fn(&Message, Via) -> DnsReply + Send + Sync + 'static,
    ) -> Self {
        let handler: Handler = Arc::new(handler);
        let queries = Arc::new(Mutex::new(Vec::new()));
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind TCP");
        let addr = tcp.local_addr().expect("TCP address");
        let acceptor = TlsAcceptor::from(config);
        let tasks = vec![tokio::spawn(accept(
            tcp,
            Some(acceptor),
            handler,
            queries.clone(),
        ))];
        Self {
            addr,
            queries,
            tasks,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every query received so far, with how it came.
    pub fn queries(&self) -> Vec<(Via, Message)> {
        self.queries.lock().unwrap().clone()
    }
}

async fn serve_udp(socket: UdpSocket, handler: Handler, log: Arc<Mutex<Vec<(Via, Message)>>>) {
    let socket = Arc::new(socket);
    let mut buffer = vec![0u8; 65535];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buffer[..n]) else {
            continue;
        };
        log.lock().unwrap().push((Via::Udp, query.clone()));
        let reply = handler(&query, Via::Udp);
        let socket = socket.clone();
        tokio::spawn(async move {
            if let Some(bytes) = render(reply).await {
                let _ = socket.send_to(&bytes, peer).await;
            }
        });
    }
}

async fn accept(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Handler,
    log: Arc<Mutex<Vec<(Via, Message)>>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (tls, handler, log) = (tls.clone(), handler.clone(), log.clone());
        tokio::spawn(async move {
            match tls {
                None => serve_stream(stream, Via::Tcp, &handler, &log).await,
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve_stream(stream, Via::Tls, &handler, &log).await;
                    }
                }
            }
        });
    }
}

async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    via: Via,
    handler: &Handler,
    log: &Mutex<Vec<(Via, Message)>>,
) {
    loop {
        let mut prefix = [0u8; 2];
        if stream.read_exact(&mut prefix).await.is_err() {
            return;
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        if stream.read_exact(&mut query).await.is_err() {
            return;
        }
        let Ok(query) = Message::from_vec(&query) else {
            return;
        };
        log.lock().unwrap().push((via, query.clone()));
        let Some(bytes) = render(handler(&query, via)).await else {
            continue;
        };
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        if stream.write_all(&framed).await.is_err() || stream.flush().await.is_err() {
            return;
        }
    }
}

/// The bytes to send for `reply`, after its pause; `None` for silence.
async fn render(reply: DnsReply) -> Option<Vec<u8>> {
    let mut reply = reply;
    loop {
        match reply {
            DnsReply::Message(message) => return Some(message.to_vec().expect("encodable reply")),
            DnsReply::Raw(bytes) => return Some(bytes),
            DnsReply::Late(pause, next) => {
                tokio::time::sleep(pause).await;
                reply = *next;
            }
            DnsReply::Silent => {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// A NOERROR reply to `query` with `records` in the answer section (RA set, as a resolver).
pub fn answer(query: &Message, records: Vec<Record>) -> Message {
    let mut reply = Message::response(query.metadata.id, OpCode::Query);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.add_queries(query.queries.clone());
    reply.add_answers(records);
    reply
}

/// A reply to `query` with response code `code` and no records.
pub fn rcode(query: &Message, code: ResponseCode) -> Message {
    let mut reply = answer(query, Vec::new());
    reply.metadata.response_code = code;
    reply
}

/// A record for the question's name.
pub fn record(query: &Message, ttl: u32, data: RData) -> Record {
    record_for(&query.queries[0].name, ttl, data)
}

/// A record for `name`.
pub fn record_for(name: &Name, ttl: u32, data: RData) -> Record {
    Record::from_rdata(name.clone(), ttl, data)
}
