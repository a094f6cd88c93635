//! DNS probes: one query to one server over Canary's own sockets (UDP, retried over TCP when
//! the answer is truncated; TCP; or TLS through the same handshake as HTTPS), so the
//! deadline, the deny list, descriptor hygiene and phase timings (`connect`, `tls`,
//! `request`) work as for HTTP. No caching resolver is involved: every probe asks the server.

mod answers;
mod resolv;
mod wire;

use wire::Rejected;

use std::net::SocketAddr;

use hickory_proto::op::Message;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::UdpSocket,
};

use super::{
    Failure, KindFacts, ProbeContext, http, net,
    sniff::{Sniffed, Spoken},
    tls::{self, Alpn, TlsSettings},
    trace::{Phase, Trace},
};
use crate::api::{DnsResult, DnsTransport, MAX_TARGET_CHARS, Reason, ValidDns, display_text};

pub use resolv::first_nameserver;

/// What a DNS reply showed, for status and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsFacts {
    /// `address:port` asked.
    pub server: String,
    /// `udp`, `tcp` (also after a truncated UDP answer) or `tls`.
    pub transport: &'static str,
    pub rcode: u16,
    pub rcode_name: String,
    /// Header flags set, as dig names them.
    pub flags: Vec<&'static str>,
    /// The first records of the queried type, as `dig +short` prints them.
    pub answers: Vec<String>,
    /// How many records of the queried type the answer section held.
    pub answer_count: usize,
    /// Lowest TTL of the answer section.
    pub min_ttl: Option<u32>,
    /// The UDP answer was truncated, so the query went again over TCP.
    pub truncated: bool,
}

impl DnsFacts {
    /// These facts as status shows them (`lastResult.dns`).
    pub fn status(&self) -> DnsResult {
        DnsResult {
            server: self.server.clone(),
            transport: self.transport.into(),
            rcode: self.rcode_name.clone(),
            flags: self.flags.iter().map(|f| (*f).to_string()).collect(),
            answers: self.answers.clone(),
            answer_count: self.answer_count as i64,
            min_ttl: self.min_ttl.map(i64::from),
            truncated: self.truncated,
        }
    }

    /// These facts as they may be shown: answers escaped and cut (see [`display_text`]).
    pub fn shown(self) -> Self {
        Self {
            answers: (self.answers.iter())
                .map(|answer| display_text(answer, MAX_TARGET_CHARS).into_owned())
                .collect(),
            ..self
        }
    }
}

/// Largest DNS message (the TCP length prefix is 16 bits).
const MAX_MESSAGE: usize = 65_535;

/// Sends the query, reads the reply and checks every expectation.
pub async fn probe(
    dns: &ValidDns,
    settings: &TlsSettings,
    ctx: &ProbeContext,
    trace: &Trace,
) -> Result<String, Failure> {
    let server = match &dns.server {
        Some(server) => server.clone(),
        None => resolv::system_server(dns.transport)?,
    };
    let addrs = (net::resolve(&server.host, server.port, ctx, trace).await)
        .map_err(|failure| default_server_hint(failure, dns))?;
    let query = wire::query(dns);
    let bytes = wire::encode(&query)?;
    let (reply, addr, transport, truncated) = match dns.transport {
        DnsTransport::Udp => {
            let (reply, addr) = over_udp(&addrs, &bytes, &query, ctx, trace).await?;
            if reply.metadata.truncation {
                let (stream, addr) = net::connect(&[addr], ctx, trace).await?;
                trace.enter(Phase::Request);
                (
                    over_stream(stream, &bytes, &query).await?,
                    addr,
                    "tcp",
                    true,
                )
            } else {
                (reply, addr, "udp", false)
            }
        }
        DnsTransport::Tcp => {
            let (stream, addr) = net::connect(&addrs, ctx, trace).await?;
            trace.enter(Phase::Request);
            (
                over_stream(stream, &bytes, &query).await?,
                addr,
                "tcp",
                false,
            )
        }
        DnsTransport::Tls => {
            let (stream, addr) = net::connect(&addrs, ctx, trace).await?;
            let name = (settings.policy.server_name.as_deref()).unwrap_or(&server.host);
            let session = tls::handshake(stream, name, settings, true, Alpn::Dot, trace).await?;
            trace.enter(Phase::Request);
            (
                over_stream(session.stream, &bytes, &query).await?,
                addr,
                "tls",
                false,
            )
        }
    };
    trace.enter(Phase::Evaluate);
    let answers = wire::answers(&reply, dns);
    let facts = wire::facts(&reply, &answers, addr.to_string(), transport, truncated);
    let rcode = facts.rcode;
    trace.learn(KindFacts::Dns(facts));
    answers::check_header(rcode, reply.metadata.authentic_data, &dns.expect)?;
    answers::check_answers(dns.record_type, &answers, &dns.expect)?;
    Ok(format!(
        "{addr} answered {} over {transport} with {} {} records: {}",
        wire::rcode_name(rcode),
        answers.len(),
        dns.record_type.as_str(),
        answers::show(&answers)
    ))
}

/// One datagram out, one in, on a connected socket (so only the server's address is heard,
/// and an ICMP port-unreachable reads as a refused connection).
async fn over_udp(
    addrs: &[SocketAddr],
    bytes: &[u8],
    query: &Message,
    ctx: &ProbeContext,
    trace: &Trace,
) -> Result<(Message, SocketAddr), Failure> {
    trace.enter(Phase::Connect);
    let mut denial = None;
    let addr = addrs.iter().copied().find(|addr| {
        let why = net::denied(addr.ip(), ctx);
        let allowed = why.is_none();
        denial = denial.take().or(why);
        allowed
    });
    let Some(addr) = addr else {
        let why = denial.unwrap_or_else(|| "no address to send to".into());
        return Err(Failure::new(Reason::TargetDenied, why));
    };
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| net::classify(&e, "opening a UDP socket"))?;
    socket
        .connect(addr)
        .await
        .map_err(|e| net::classify(&e, &format!("connect to {addr}")))?;
    trace.enter(Phase::Request);
    socket
        .send(bytes)
        .await
        .map_err(|e| net::classify(&e, &format!("sending the query to {addr}")))?;
    let mut buffer = vec![0u8; MAX_MESSAGE];
    loop {
        let read = socket
            .recv(&mut buffer)
            .await
            .map_err(|e| net::classify(&e, &format!("waiting for the answer from {addr}")))?;
        match wire::decode(&buffer[..read], query) {
            Ok(reply) => return Ok((reply, addr)),
            // Not the answer (a late reply to an earlier query on a reused port, or a
            // forgery): ignore it and wait on, as resolvers do.
            Err(Rejected::Stray(why)) => {
                trace.note(format!(
                    "ignored a reply that did not match the query: {why}"
                ));
            }
            // Its ID matched (else it would be a stray), so a truncation flag is the server's.
            Err(malformed) => match wire::truncated_header(&buffer[..read]) {
                Some(reply) => return Ok((reply, addr)),
                None => return Err(malformed.failure()),
            },
        }
    }
}

/// A denied default server (NodeLocal DNSCache listens on 169.254.20.10, which the default deny
/// list holds) says where it came from and what to do.
fn default_server_hint(mut failure: Failure, dns: &ValidDns) -> Failure {
    if dns.server.is_none() && failure.reason == Reason::TargetDenied {
        failure.message.push_str(
            " (the default server, the first nameserver of /etc/resolv.conf; set spec.dns.server)",
        );
    }
    failure
}

/// The query with its two-byte length prefix over a stream (TCP or TLS), and the reply.
async fn over_stream<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    bytes: &[u8],
    query: &Message,
) -> Result<Message, Failure> {
    let (mut stream, sniff) = Sniffed::new(stream);
    let length = u16::try_from(bytes.len())
        .map_err(|_| Failure::new(Reason::InvalidSpec, "the query is too long"))?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(bytes);
    let sent = async {
        stream.write_all(&framed).await?;
        stream.flush().await
    };
    sent.await
        .map_err(|e| http::io_failure(&e, "sending the query"))?;
    let mut prefix = [0u8; 2];
    let result = async {
        stream.read_exact(&mut prefix).await?;
        let mut reply = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        stream.read_exact(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    }
    .await;
    let tls_hint = "use transport: tls";
    match result {
        Ok(reply) => wire::decode(&reply, query).map_err(|rejected| {
            (sniff.mismatch(Spoken::Other, "DNS", tls_hint)).unwrap_or_else(|| rejected.failure())
        }),
        Err(error) => Err(sniff
            .mismatch(Spoken::Other, "DNS", tls_hint)
            .unwrap_or_else(|| {
                if error.kind() == std::io::ErrorKind::UnexpectedEof {
                    Failure::new(
                        Reason::ConnectionReset,
                        "the server closed the connection before a whole answer",
                    )
                } else {
                    http::io_failure(&error, "reading the answer")
                }
            })),
    }
}
