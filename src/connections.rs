//! Accepting connections with limits against abusive clients: at most
//! `--max-connections` at once (more wait in the kernel's backlog), headers
//! bounded by `--max-header-bytes` (hyper answers 431 past it), and
//! `--header-read-timeout`: a connection that sends no complete request
//! head for that long while none of its requests is being answered (an
//! idle keep-alive connection, or a slowloris client trickling bytes) is
//! closed, within 1.25 times the limit.
//!
//! Why a hand-written accept loop rather than `axum::serve`: axum's serve
//! has none of these knobs; hyper's connection builder has them.
//!
//! Why a watchdog per connection rather than hyper's own header read
//! timeout: hyper's arms a timer for every request (an allocation, a clock
//! read, an insertion into and a removal from tokio's timer wheel), which
//! measured 2 to 4% of the server's CPU per GET; the watchdog wakes four
//! times per timeout period per connection, whatever the traffic.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::http::hot;

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

/// Serves `service` on `listener` until `shutdown` resolves, then stops
/// accepting and lets the requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    service: hot::Service,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // No timer is given to hyper, so it arms none per request: the
    // watchdog below bounds the reading of headers instead.
    http.max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
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
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let watched = Watched {
            service: service.clone(),
            activity: activity.clone(),
        };
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), watched));
        let timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            // Dropping the connection closes it.
            tokio::select! {
                _ = connection => {}
                () = watchdog(&activity, timeout) => {}
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; shutting down anyway");
    }
}

/// What a connection's watchdog reads: requests started and finished.
#[derive(Default)]
struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
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
    service: hot::Service,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for Watched {
    type Response = <hot::Service as hyper::service::Service<Request<Incoming>>>::Response;
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
    answer: hot::Answer,
    activity: Arc<Activity>,
}

impl Future for Finishing {
    type Output = <hot::Answer as Future>::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let ready = Pin::new(&mut self.answer).poll(cx);
        if ready.is_ready() {
            self.activity.finished.fetch_add(1, Relaxed);
        }
        ready
    }
}
