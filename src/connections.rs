//! Accepting connections with limits against abusive clients: at most
//! `--max-connections` at once, headers bounded by `--max-header-bytes`
//! (hyper answers 431 past it), and `--header-read-timeout`: a connection
//! that sends no complete request head for that long while none of its
//! requests is being answered (an idle keep-alive connection, or a
//! slowloris client trickling bytes) is closed, within 1.25 times the
//! limit.
//!
//! At the connection limit, idle connections make room: a new connection
//! is accepted, and the connection idle the longest is closed for it. Idle
//! means no request being answered and not a byte received since the last
//! answer (or since it was accepted): a keep-alive connection between
//! requests, or one that never sent anything. Closing it loses nothing; a
//! client sending on it at that very moment sees the connection closed, as
//! with any keep-alive timeout. So idle connections alone cannot keep
//! anyone out. Connections in the middle of a request head or body are not
//! idle: while all are, new connections wait (accepted, unanswered, and
//! the rest in the kernel's backlog) until one ends or its header timeout
//! closes it.
//!
//! Why a hand-written accept loop rather than a framework's `serve`: those
//! have none of these knobs; hyper's connection builder has them.
//!
//! Why a watchdog per connection rather than hyper's own header read
//! timeout: hyper's arms a timer for every request (an allocation, a clock
//! read, an insertion into and a removal from tokio's timer wheel), which
//! measured 2 to 4% of the server's CPU per GET; the watchdog wakes four
//! times per timeout period per connection, whatever the traffic.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::http;
use crate::tls::Certificates;

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    /// hyper's read buffer, which bounds a request's headers; at least 8 KiB.
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
}

/// hyper refuses smaller read buffers.
const MIN_HEADER_BYTES: usize = 8192;
/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// At the limit with no idle connection, how often to look again for one
/// that has become idle (a free slot is taken at once, without waiting).
const ROOM_RETRY: Duration = Duration::from_millis(50);

/// Serves `service` on `listener` until `shutdown` resolves, then stops
/// accepting and lets the requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    service: http::Service,
    limits: ConnectionLimits,
    tls: Option<Arc<Certificates>>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let open = Arc::new(OpenConnections::default());
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // No timer is given to hyper, so it arms none per request: the
    // watchdog below bounds the reading of headers instead.
    http.max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES));
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait, don't spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let permit = tokio::select! {
            permit = make_room(&permits, &open) => permit,
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (id, activity) = open.add();
        let watched = Watched {
            service: service.for_connection(),
            activity: activity.clone(),
        };
        let stream = Observed {
            stream,
            activity: activity.clone(),
        };
        let timeout = limits.header_read_timeout;
        let (open, http, watcher, tls) =
            (open.clone(), http.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => {
                    let connection = http.serve_connection(TokioIo::new(stream), watched);
                    until_closed(watcher.watch(connection), &activity, timeout).await;
                }
                // The handshake, within the header timeout: a client that
                // never finishes it holds no slot for long. Plain HTTP
                // fails it, and the connection is closed.
                Some(certificates) => {
                    let handshake = certificates.acceptor().accept(stream);
                    match tokio::time::timeout(timeout, handshake).await {
                        Ok(Ok(stream)) => {
                            let connection = http.serve_connection(TokioIo::new(stream), watched);
                            until_closed(watcher.watch(connection), &activity, timeout).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
            open.remove(id);
            drop(permit);
        });
    }
    drop(listener);
    // A streamed answer (a change feed) would never finish by itself:
    // close those connections now; their clients reconnect elsewhere.
    open.close_streaming();
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; shutting down anyway");
    }
}

/// Serves a connection until it ends, its watchdog fires, or it is closed
/// to make room; dropping it closes it.
async fn until_closed(connection: impl Future, activity: &Activity, timeout: Duration) {
    tokio::select! {
        _ = connection => {}
        () = watchdog(activity, timeout) => {}
        () = activity.close.notified() => {}
    }
}

/// A slot for a new connection: a free one at once, else the one of the
/// connection idle the longest, which is closed for it. With none idle,
/// waits for a slot, looking again every [`ROOM_RETRY`] for a connection
/// that has become idle.
async fn make_room(permits: &Arc<Semaphore>, open: &OpenConnections) -> OwnedSemaphorePermit {
    loop {
        if let Ok(permit) = permits.clone().try_acquire_owned() {
            return permit;
        }
        open.close_oldest_idle();
        tokio::select! {
            permit = permits.clone().acquire_owned() => {
                return permit.expect("the semaphore is never closed");
            }
            () = tokio::time::sleep(ROOM_RETRY) => {}
        }
    }
}

/// Every open connection's [`Activity`], to find the one idle the longest.
///
/// Why a map under a mutex: it is touched once when a connection opens and
/// once when it closes, and scanned only at the limit; a scan reads a few
/// atomics per connection (microseconds for thousands).
struct OpenConnections {
    /// What `Activity::idle_since_ms` counts from.
    epoch: Instant,
    next_id: AtomicU64,
    connections: Mutex<HashMap<u64, Arc<Activity>>>,
}

impl Default for OpenConnections {
    fn default() -> Self {
        OpenConnections {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            connections: Mutex::default(),
        }
    }
}

impl OpenConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Activity>>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection, idle from now.
    fn add(&self) -> (u64, Arc<Activity>) {
        let id = self.next_id.fetch_add(1, Relaxed);
        let activity = Arc::new(Activity::new(self.epoch));
        self.lock().insert(id, activity.clone());
        (id, activity)
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Tells every connection sending a streamed answer to close: at
    /// shutdown, where they would hold the drain for its whole timeout.
    fn close_streaming(&self) {
        for activity in self.lock().values() {
            if activity.streaming.load(Relaxed) {
                activity.closing.store(true, Relaxed);
                activity.close.notify_one();
            }
        }
    }

    /// Tells the connection idle the longest to close (the oldest one on a
    /// tie); false if none is idle.
    ///
    /// Algorithm: one pass over the open connections keeping the idle one
    /// with the smallest `(idle since, id)`; ids grow with each accept, so
    /// on a tie the earlier connection goes first. The chosen one is marked
    /// as closing, so that the next pass, made before it has gone, does not
    /// choose it again.
    fn close_oldest_idle(&self) -> bool {
        let connections = self.lock();
        let oldest = connections
            .iter()
            .filter(|(_, activity)| activity.is_idle())
            .min_by_key(|(id, activity)| (activity.idle_since_ms.load(Relaxed), **id));
        let Some((_, activity)) = oldest else {
            return false;
        };
        activity.closing.store(true, Relaxed);
        activity.close.notify_one();
        tracing::debug!("at the connection limit: closing the connection idle the longest");
        true
    }
}

fn elapsed_ms(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What is known of one connection: requests started and finished (for its
/// watchdog), and whether and since when it is idle (to make room at the
/// limit).
struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
    /// Whether a byte arrived since the last answer (or the accept): a
    /// request head or body on its way.
    received: AtomicBool,
    /// Whether the socket's send buffer is full with an answer not yet
    /// written: the client is still reading it.
    write_blocked: AtomicBool,
    /// When the last answer was ready (or the connection accepted), in
    /// milliseconds since `epoch`.
    idle_since_ms: AtomicU64,
    epoch: Instant,
    /// Chosen to be closed to make room.
    closing: AtomicBool,
    /// Whether a streamed answer's body is being sent.
    streaming: AtomicBool,
    close: Notify,
}

impl Activity {
    /// A connection just accepted: idle from now.
    fn new(epoch: Instant) -> Self {
        Activity {
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            received: AtomicBool::new(false),
            write_blocked: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(elapsed_ms(epoch)),
            epoch,
            closing: AtomicBool::new(false),
            streaming: AtomicBool::new(false),
            close: Notify::new(),
        }
    }

    fn is_idle(&self) -> bool {
        !self.closing.load(Relaxed)
            && !self.received.load(Relaxed)
            && !self.write_blocked.load(Relaxed)
            && self.started.load(Relaxed) == self.finished.load(Relaxed)
    }

    /// An answer is ready: idle from now, until the next byte arrives.
    fn answered(&self) {
        self.idle_since_ms.store(elapsed_ms(self.epoch), Relaxed);
        self.received.store(false, Relaxed);
        self.finished.fetch_add(1, Relaxed);
    }
}

/// The connection's socket, noting in its [`Activity`] each arrival of
/// bytes and each write the socket cannot take yet (a relaxed load per
/// call, a store only when the state changes).
struct Observed {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl Observed {
    /// Notes whether a write had to wait for room in the send buffer: once
    /// written (into the kernel, which sends it even after a close), an
    /// answer no longer keeps the connection busy.
    fn note_write<T>(&self, written: Poll<T>) -> Poll<T> {
        let blocked = written.is_pending();
        if self.activity.write_blocked.load(Relaxed) != blocked {
            self.activity.write_blocked.store(blocked, Relaxed);
        }
        written
    }
}

impl AsyncRead for Observed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before && !self.activity.received.load(Relaxed) {
            self.activity.received.store(true, Relaxed);
        }
        read
    }
}

impl AsyncWrite for Observed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.note_write(written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.note_write(written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Resolves once the connection has gone `timeout` without starting a
/// request while none was being answered.
async fn watchdog(activity: &Activity, timeout: Duration) {
    let tick = (timeout / 4).max(Duration::from_millis(1));
    let mut seen = u64::MAX;
    let mut quiet_for = Duration::ZERO;
    loop {
        tokio::time::sleep(tick).await;
        let started = activity.started.load(Relaxed);
        let answering = started != activity.finished.load(Relaxed);
        if started != seen || answering {
            seen = started;
            quiet_for = Duration::ZERO;
        } else {
            quiet_for += tick;
            if quiet_for >= timeout {
                return;
            }
        }
    }
}

/// The server's service, counting one connection's requests for its
/// watchdog.
#[derive(Clone)]
struct Watched {
    service: http::ConnectionService,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for Watched {
    type Response =
        <http::ConnectionService as hyper::service::Service<Request<Incoming>>>::Response;
    type Error = std::convert::Infallible;
    type Future = Finishing;

    fn call(&self, request: Request<Incoming>) -> Finishing {
        self.activity.started.fetch_add(1, Relaxed);
        Finishing {
            answer: self.service.call(request),
            activity: self.activity.clone(),
        }
    }
}

/// An answer that counts itself finished when it is ready.
struct Finishing {
    answer: http::ResponseFuture,
    activity: Arc<Activity>,
}

impl Future for Finishing {
    type Output = <http::ResponseFuture as Future>::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut ready = Pin::new(&mut self.answer).poll(cx);
        if let Poll::Ready(Ok(response)) = &mut ready {
            // A streamed answer (a change feed, an export) is being
            // answered until its body ends: its connection is not idle.
            let done = AnsweredOnDrop(self.activity.clone());
            match response.body_mut().keep_until_end(done) {
                Ok(()) => self.activity.streaming.store(true, Relaxed),
                Err(done) => drop(done),
            }
        }
        ready
    }
}

/// Counts its connection's answer finished when dropped.
struct AnsweredOnDrop(Arc<Activity>);

impl Drop for AnsweredOnDrop {
    fn drop(&mut self) {
        self.0.streaming.store(false, Relaxed);
        self.0.answered();
    }
}
