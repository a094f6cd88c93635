//! Admin connections that cannot be used to starve the endpoints: a 5 s limit to send request
//! headers, a cap on open connections (the oldest idle one is dropped first, then the oldest
//! busy one), a maximum connection age, and responses whose bodies mark the connection busy
//! only while they are being sent. A kubelet probe, which opens a new connection each time,
//! is always served. What a client that never reads can make a connection hold is bounded
//! too: hyper's buffers at 64 KiB, the kernel's send buffer at 80 KiB (doubled by Linux), and
//! a body handed to hyper in 16 KiB slices of the one shared copy.

use std::{
    collections::BTreeMap,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response};
use hyper::{
    body::{Body, Frame, Incoming, SizeHint},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::oneshot;

use crate::lock;

/// Open admin connections at most; beyond it the oldest idle one is closed.
pub const MAX_CONNECTIONS: usize = 128;
/// Time a client has to send a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection is closed after this long, whatever it is doing (a client that never reads
/// a response cannot hold one longer).
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(30);
/// hyper's read and write buffers per connection at most (request heads included).
pub const MAX_BUFFER: usize = 64 * 1024;
/// The kernel's send buffer per connection (Linux doubles it for its own bookkeeping). It holds
/// at least two full segments on loopback (MSS 64 KiB), so the client ACKs at once: at 32 KiB
/// one segment was in flight, each waited for the client's delayed ACK (40 ms), and the
/// 18 MiB `/metrics` of 10,000 checks took 10 s over loopback (13 ms now).
pub const SEND_BUFFER: usize = 80 * 1024;
/// A response body goes to hyper in slices of this size.
const CHUNK: usize = 16 * 1024;

/// The open connections, oldest first.
#[derive(Default)]
pub struct Connections {
    state: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    open: BTreeMap<u64, Entry>,
}

struct Entry {
    busy: Arc<AtomicBool>,
    close: oneshot::Sender<()>,
}

/// One registered connection: closed when told (eviction), deregistered when dropped.
pub struct Registered {
    connections: Arc<Connections>,
    id: u64,
    pub busy: Arc<AtomicBool>,
    pub closed: oneshot::Receiver<()>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.connections.state).open.remove(&self.id);
    }
}

impl Connections {
    /// Registers a new connection, evicting the oldest idle one (else the oldest) at the cap.
    pub fn register(self: &Arc<Self>) -> Registered {
        let mut state = lock(&self.state);
        if state.open.len() >= MAX_CONNECTIONS {
            let victim = (state.open.iter())
                .find(|(_, e)| !e.busy.load(Ordering::Relaxed))
                .or_else(|| state.open.iter().next())
                .map(|(id, _)| *id);
            if let Some(entry) = victim.and_then(|id| state.open.remove(&id)) {
                let _ = entry.close.send(());
            }
        }
        let id = state.next;
        state.next += 1;
        let busy = Arc::new(AtomicBool::new(false));
        let (close, closed) = oneshot::channel();
        let entry = Entry {
            busy: busy.clone(),
            close,
        };
        state.open.insert(id, entry);
        Registered {
            connections: self.clone(),
            id,
            busy,
            closed,
        }
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        lock(&self.state).open.len()
    }
}

/// Serves HTTP/1 on `stream` with `handle`, within the limits above; `what` names the server
/// in debug logs.
pub async fn serve_limited<H, F>(
    stream: tokio::net::TcpStream,
    connections: &Arc<Connections>,
    what: &'static str,
    handle: H,
) where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Bytes>> + Send + 'static,
{
    if let Err(error) = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER) {
        tracing::debug!(%error, server = what, "cannot bound the send buffer");
    }
    let mut registered = connections.register();
    let busy = registered.busy.clone();
    let handle = Arc::new(handle);
    let service = service_fn(move |request| {
        let (handle, busy) = (handle.clone(), busy.clone());
        async move {
            busy.store(true, Ordering::Relaxed);
            let response = handle(request).await;
            Ok::<_, std::convert::Infallible>(response.map(|body| TrackedBody::new(body, busy)))
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUFFER)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => if let Err(error) = result {
            tracing::debug!(%error, server = what, "connection ended with an error");
        },
        _ = &mut registered.closed => tracing::debug!(server = what, "connection evicted at the connection cap"),
        () = tokio::time::sleep(MAX_CONNECTION_AGE) => tracing::debug!(server = what, "connection closed at its maximum age"),
    }
}

/// A response body, sent in slices of [`CHUNK`] bytes, that marks its connection busy until
/// it has been sent (or dropped).
pub struct TrackedBody {
    rest: Bytes,
    busy: Arc<AtomicBool>,
}

impl TrackedBody {
    pub fn new(body: Bytes, busy: Arc<AtomicBool>) -> Self {
        busy.store(true, Ordering::Relaxed);
        Self { rest: body, busy }
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.busy.store(false, Ordering::Relaxed);
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if self.rest.is_empty() {
            return Poll::Ready(None);
        }
        let take = self.rest.len().min(CHUNK);
        Poll::Ready(Some(Ok(Frame::data(self.rest.split_to(take)))))
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_goes_in_slices_of_one_copy() {
        use http_body_util::BodyExt;
        let body = Bytes::from(vec![1u8; CHUNK * 2 + 5]);
        let busy = Arc::new(AtomicBool::new(false));
        let mut tracked = TrackedBody::new(body.clone(), busy.clone());
        assert!(busy.load(Ordering::Relaxed));
        let mut sizes = Vec::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        while let Some(frame) = runtime.block_on(tracked.frame()) {
            let data = frame.unwrap().into_data().unwrap();
            assert!(body.as_ptr_range().contains(&data.as_ptr()), "not a copy");
            sizes.push(data.len());
        }
        assert_eq!(sizes, [CHUNK, CHUNK, 5]);
        drop(tracked);
        assert!(!busy.load(Ordering::Relaxed));
    }

    /// 8 MiB over loopback: with one segment in flight at a time it took about 5 s (40 ms per
    /// 64 KiB); it takes milliseconds. The bound leaves a busy machine 40 times the slack.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_body_is_not_held_back_by_delayed_acks_on_loopback() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        const SIZE: usize = 8 << 20;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Connections::default());
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let body = Bytes::from(vec![b'x'; SIZE]);
            serve_limited(stream, &connections, "test", move |_| {
                let body = body.clone();
                async move { Response::new(body) }
            })
            .await;
        });
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        let request = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        client.write_all(request).await.unwrap();
        let mut received = Vec::new();
        client.read_to_end(&mut received).await.unwrap();
        let took = started.elapsed();
        assert!(received.len() > SIZE, "{} bytes", received.len());
        assert!(took < Duration::from_millis(2_500), "8 MiB took {took:?}");
    }

    #[test]
    fn at_the_cap_the_oldest_idle_connection_goes_first() {
        let connections = Arc::new(Connections::default());
        let mut held: Vec<Registered> = (0..MAX_CONNECTIONS)
            .map(|_| connections.register())
            .collect();
        held[0].busy.store(true, Ordering::Relaxed);
        let _newcomer = connections.register();
        assert_eq!(connections.open(), MAX_CONNECTIONS);
        assert!(held[0].closed.try_recv().is_err(), "the busy oldest stays");
        assert!(
            held[1].closed.try_recv().is_ok(),
            "the oldest idle one is closed"
        );
    }
}
