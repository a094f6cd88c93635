//! The first bytes a server sent, kept so a failed exchange can say what the server speaks
//! instead: a TLS alert to a plaintext client, HTTP/2 frames or an HTTP/1 status line to a
//! TLS client ("error reading server preface" says none of that); and the TLS error a session
//! met after its handshake ([`Watched`]), which HTTP/2 would flatten into text.

use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Failure, http::Io};
use crate::api::Reason;

/// What can explain a failed exchange after the fact: the TLS error a session met, or the first
/// bytes a plaintext server sent.
pub enum Witness {
    Tls(TlsErrorSlot),
    Plain(Sniff),
}

impl Witness {
    /// A TLS session's stream, watched for the error that ends it.
    pub fn tls(stream: impl Io + 'static) -> (Box<dyn Io>, Self) {
        let (stream, slot) = Watched::new(stream);
        (Box::new(stream), Self::Tls(slot))
    }

    /// A plaintext stream, its first bytes kept.
    pub fn plain(stream: impl Io + 'static) -> (Box<dyn Io>, Self) {
        let (stream, sniff) = Sniffed::new(stream);
        (Box::new(stream), Self::Plain(sniff))
    }

    /// The failure that says more than `failure`: the TLS error met while doing `what`, or a
    /// plaintext server's reply in a protocol other than `expected` (`speaking` names it,
    /// `tls_hint` says how to switch to TLS).
    pub fn explain(
        &self,
        failure: Failure,
        what: &str,
        (expected, speaking): (Spoken, &str),
        tls_hint: &str,
    ) -> Failure {
        let better = match self {
            Self::Tls(slot) => slot.failure(what),
            Self::Plain(sniff) => sniff.mismatch(expected, speaking, tls_hint),
        };
        better.unwrap_or(failure)
    }
}

/// How many leading bytes are kept.
const KEEP: usize = 16;

/// A stream that records the first bytes read from it.
#[derive(Debug)]
pub struct Sniffed<S> {
    inner: S,
    seen: Sniff,
}

/// A handle on the bytes a [`Sniffed`] stream saw, readable after the stream moved on.
#[derive(Debug, Clone, Default)]
pub struct Sniff(Arc<Mutex<Vec<u8>>>);

impl<S> Sniffed<S> {
    /// Wraps `inner`; the handle reads what it will have seen.
    pub fn new(inner: S) -> (Self, Sniff) {
        let seen = Sniff::default();
        (
            Self {
                inner,
                seen: seen.clone(),
            },
            seen,
        )
    }
}

/// What the first bytes from a server show about the protocol it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spoken {
    /// Nothing arrived.
    Nothing,
    /// A TLS record (a handshake message or an alert).
    Tls,
    /// An HTTP/1 status line.
    Http1,
    /// An HTTP/2 SETTINGS frame: a cleartext HTTP/2 server.
    Http2,
    /// Bytes that are none of the above.
    Other,
}

impl Spoken {
    /// For messages: "a TLS alert or handshake".
    pub fn describe(self) -> &'static str {
        match self {
            Self::Nothing => "nothing",
            Self::Tls => "TLS",
            Self::Http1 => "plaintext HTTP/1",
            Self::Http2 => "plaintext HTTP/2 frames",
            Self::Other => "bytes that are not TLS",
        }
    }
}

impl Sniff {
    /// The leading bytes seen so far.
    pub fn bytes(&self) -> Vec<u8> {
        crate::lock(&self.0).clone()
    }

    /// What the server speaks, judged by its first bytes.
    pub fn spoken(&self) -> Spoken {
        classify(&self.bytes())
    }

    /// After a failed cleartext exchange in `speaking` (`HTTP/2`, `DNS`), whose answer looks
    /// like `expected`: `ProtocolMismatch` when the server answered in TLS or in another
    /// HTTP version. `tls_hint` tells how to ask for TLS (`use an https:// URL`).
    pub fn mismatch(&self, expected: Spoken, speaking: &str, tls_hint: &str) -> Option<Failure> {
        let message = match self.spoken() {
            Spoken::Tls => format!(
                "the server answered with TLS: a plaintext client talking to a TLS server? ({tls_hint})"
            ),
            spoken @ (Spoken::Http1 | Spoken::Http2) if spoken != expected => format!(
                "the server answered {speaking} with {}: it does not speak {speaking} on this port",
                spoken.describe(),
            ),
            _ => return None,
        };
        Some(Failure::new(Reason::ProtocolMismatch, message))
    }
}

/// Judges a server's first bytes.
pub fn classify(bytes: &[u8]) -> Spoken {
    match bytes {
        [] => Spoken::Nothing,
        [0x14..=0x18, 0x03, ..] | [0x14..=0x18] => Spoken::Tls,
        _ if bytes.starts_with(b"HTTP/") => Spoken::Http1,
        // A frame header: 24-bit length, type 4 (SETTINGS), flags 0 or 1 (ACK), stream 0.
        [_, _, _, 0x04, 0x00 | 0x01, 0, 0, 0, 0, ..] => Spoken::Http2,
        _ => Spoken::Other,
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Sniffed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let mut seen = crate::lock(&self.seen.0);
            let room = KEEP.saturating_sub(seen.len());
            if room > 0 {
                let new = &buf.filled()[before..];
                seen.extend_from_slice(&new[..new.len().min(room)]);
            }
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Sniffed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A TLS stream that remembers the TLS error a read or write met (an alert such as
/// "certificate required", which TLS 1.3 delivers after the client's handshake completed),
/// because HTTP/2 keeps only its text.
pub struct Watched<S> {
    inner: S,
    slot: TlsErrorSlot,
}

/// The TLS error a [`Watched`] stream met, readable after the stream moved on.
#[derive(Debug, Clone, Default)]
pub struct TlsErrorSlot(Arc<Mutex<Option<rustls::Error>>>);

impl<S> Watched<S> {
    /// Wraps `inner`; the slot reads the error it will have met.
    pub fn new(inner: S) -> (Self, TlsErrorSlot) {
        let slot = TlsErrorSlot::default();
        let watched = Self {
            inner,
            slot: slot.clone(),
        };
        (watched, slot)
    }

    fn note<T>(&self, result: &std::task::Poll<std::io::Result<T>>) {
        if let std::task::Poll::Ready(Err(error)) = result
            && let Some(tls) = error
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>())
        {
            crate::lock(&self.slot.0).get_or_insert_with(|| tls.clone());
        }
    }
}

impl TlsErrorSlot {
    /// `TLSHandshakeFailed` naming the TLS error met while doing `what`, if one was.
    pub fn failure(&self, what: &str) -> Option<Failure> {
        let error = crate::lock(&self.0).clone()?;
        Some(Failure::new(
            Reason::TLSHandshakeFailed,
            format!("{what}: the server ended the TLS session: {error}"),
        ))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let result = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        self.note(&result);
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let result = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(&result);
        result
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let result = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.note(&result);
        result
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_name_the_protocol() {
        assert_eq!(classify(b""), Spoken::Nothing);
        assert_eq!(classify(&[0x15, 0x03, 0x03, 0x00, 0x02]), Spoken::Tls);
        assert_eq!(classify(&[0x16, 0x03, 0x01]), Spoken::Tls);
        assert_eq!(classify(b"HTTP/1.1 400 Bad Request"), Spoken::Http1);
        let settings = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];
        assert_eq!(classify(&settings), Spoken::Http2);
        assert_eq!(classify(b"SSH-2.0-OpenSSH"), Spoken::Other);
    }
}
