//! Who asks: one task per keep-alive HTTP/1.1 connection, on a tokio
//! runtime of `--threads` workers, each speaking through hyper's client
//! connection API directly (no pool, no per-request allocation beyond the
//! request itself), so the generator costs the shared cores as little as
//! possible.
//!
//! Every request takes a ticket from a shared counter, which ends the run
//! after `-n` tickets or once `--duration` has passed.
//!
//! - **Closed-loop** (default): a connection sends its next request as
//!   soon as it has the previous answer. This finds the peak throughput,
//!   but its latencies flatter a slow server: while the server stalls, the
//!   generator stops sending, so the requests that would have waited are
//!   never measured ("coordinated omission").
//! - **Open-loop** (`--rate R`): ticket `k` is due at `start + k / R`,
//!   whatever the answers do, handed out by a [`Pacer`] thread that wakes
//!   every 50 µs (tokio's timer fires on whole milliseconds, which sent
//!   paced requests in bursts). A request is timed from when it was
//!   *due*, so queueing behind a stall, or waiting for a free connection,
//!   counts in its latency, as a real client arriving at that moment would
//!   see it. This is how "p99 at half the peak" is measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::Uri;
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::BenchArgs;
use super::pacer::Pacer;
use super::progress::Progress;
use super::report::{ErrorKind, Outcome, Setup, Summary, Tally};
use super::workload::{Mix, Op, Requests, batch_keys};

type Sender = SendRequest<Full<Bytes>>;

/// When a run ends.
#[derive(Debug, Clone, Copy)]
pub enum Stop {
    /// After this many requests.
    Count(u64),
    /// Once this long has passed (paced: once tickets fall due after it).
    Time(Duration),
}

/// Everything a run needs, checked before anything is sent.
pub struct Plan {
    /// `host:port` to connect to.
    authority: String,
    requests: Requests,
    mix: Mix,
    /// Ops per `POST /batch` under `--op batch`; `None`: one op a request.
    batch_size: Option<usize>,
    namespaces: u32,
    keyspace: u64,
    stop: Stop,
    rate: Option<f64>,
    warmup: Option<Duration>,
    timeout: Duration,
    preload: bool,
    quiet: bool,
    setup: Setup,
}

/// Checks the arguments and turns them into a [`Plan`].
pub fn plan(args: &BenchArgs) -> Result<Plan, String> {
    let (authority, host, prefix) = parse_url(&args.url)?;
    Ok(Plan {
        authority,
        requests: Requests::new(host, prefix, args.namespaces, args.value_size, args.ttl)
            .speaking(args.api),
        mix: args.mix()?,
        batch_size: args.batch_size()?,
        namespaces: args.namespaces,
        keyspace: args.keyspace,
        stop: args.stop()?,
        rate: args.rate()?,
        warmup: args.warmup()?,
        timeout: Duration::from_secs(args.timeout),
        preload: args.preload,
        quiet: args.quiet,
        setup: Setup {
            url: args.url.clone(),
            connections: args.connections,
            threads: args.threads,
            keyspace: args.keyspace,
            namespaces: args.namespaces,
            value_size: args.value_size,
            target_rate: args.rate,
            batch_size: args.batch_size()?,
            preloaded: 0,
            warmup_s: args.warmup,
        },
    })
}

/// `http://host:port/prefix` into the address to connect to, the `Host`
/// header and the path prefix.
fn parse_url(url: &str) -> Result<(String, String, String), String> {
    let uri: Uri = url.parse().map_err(|e| format!("--url {url:?}: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("--url {url:?}: only http:// URLs are supported"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("--url {url:?}: no host"))?;
    let port = authority.port_u16().unwrap_or(80);
    let connect = format!("{}:{port}", authority.host());
    let prefix = uri.path().trim_end_matches('/').to_owned();
    Ok((connect, authority.as_str().to_owned(), prefix))
}

/// Runs the plan on its own runtime: preload (if asked), then the
/// measured phase.
pub fn run(mut plan: Plan, args: &BenchArgs) -> Result<Summary, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads as usize)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    if plan.preload {
        plan.setup.preloaded = plan.keyspace;
    }
    runtime.block_on(drive(Arc::new(plan), args.connections as usize))
}

async fn drive(plan: Arc<Plan>, connections: usize) -> Result<Summary, String> {
    let mut conns = connect_all(&plan.authority, connections).await;
    if plan.preload {
        let phase = Phase::preload(plan.clone());
        let (tally, kept, _) = phase.run(conns).await;
        check_preload(&tally)?;
        conns = kept;
    }
    if let Some(warmup) = plan.warmup {
        // The same load, for a while; its figures are dropped.
        (_, conns, _) = Phase::warmup(plan.clone(), warmup).run(conns).await;
    }
    let (tally, _, elapsed) = Phase::measure(plan.clone()).run(conns).await;
    Ok(Summary {
        setup: plan.setup.clone(),
        tally,
        elapsed,
    })
}

/// A preload that did not set every key would make the GETs miss: stop.
fn check_preload(tally: &Tally) -> Result<(), String> {
    if tally.failed() == 0 && tally.non_2xx() == 0 {
        return Ok(());
    }
    Err(format!(
        "--preload: {} of {} SETs failed ({} without an answer, {} non-2xx); first error: {}",
        tally.failed() + tally.non_2xx(),
        tally.attempted(),
        tally.failed(),
        tally.non_2xx(),
        tally.first_error().unwrap_or("an HTTP error status"),
    ))
}

/// Opens every connection before the clock starts, so connecting is not
/// measured; one that fails is retried (and counted) by its task.
async fn connect_all(authority: &str, n: usize) -> Vec<Option<Sender>> {
    let attempts = (0..n).map(|_| {
        let authority = authority.to_owned();
        tokio::spawn(async move { connect(&authority).await.ok() })
    });
    let mut conns = Vec::with_capacity(n);
    for attempt in attempts.collect::<Vec<_>>() {
        conns.push(attempt.await.ok().flatten());
    }
    conns
}

async fn connect(authority: &str) -> Result<Sender, (ErrorKind, String)> {
    let refused =
        |e: &dyn std::fmt::Display| (ErrorKind::Connect, format!("connect to {authority}: {e}"));
    let stream = TcpStream::connect(authority)
        .await
        .map_err(|e| refused(&e))?;
    stream.set_nodelay(true).map_err(|e| refused(&e))?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| refused(&e))?;
    // The connection's own task reads and writes the socket; it ends when
    // the sender is dropped or the peer closes.
    tokio::spawn(connection);
    Ok(sender)
}

/// One phase of a run: its tickets, and what each ticket asks.
struct Phase {
    plan: Arc<Plan>,
    /// Shown by the progress bar.
    label: &'static str,
    /// Preload: ticket `k` sets key `k`; measure: random keys and ops.
    preload: bool,
    stop: Stop,
    rate: Option<f64>,
    next: AtomicU64,
    done: AtomicU64,
    start: Instant,
    /// Open-loop only: hands out tickets as they fall due.
    pacer: Option<Pacer>,
}

/// A request to send: its key, its operation, and when it falls due.
struct Ticket {
    index: u64,
    op: Op,
    due: Option<Instant>,
}

impl Phase {
    fn preload(plan: Arc<Plan>) -> Self {
        let stop = Stop::Count(plan.keyspace);
        Phase::new(plan, "preload", true, stop, None)
    }

    fn warmup(plan: Arc<Plan>, time: Duration) -> Self {
        let rate = plan.rate;
        Phase::new(plan, "warmup", false, Stop::Time(time), rate)
    }

    fn measure(plan: Arc<Plan>) -> Self {
        let (stop, rate) = (plan.stop, plan.rate);
        Phase::new(plan, "bench", false, stop, rate)
    }

    fn new(
        plan: Arc<Plan>,
        label: &'static str,
        preload: bool,
        stop: Stop,
        rate: Option<f64>,
    ) -> Self {
        Phase {
            plan,
            label,
            preload,
            stop,
            rate,
            next: AtomicU64::new(0),
            done: AtomicU64::new(0),
            start: Instant::now(),
            pacer: None,
        }
    }

    /// Runs one task per connection until the tickets run out; returns
    /// the merged tally, the connections (for the next phase) and the
    /// phase's wall time.
    async fn run(mut self, conns: Vec<Option<Sender>>) -> (Tally, Vec<Option<Sender>>, Duration) {
        self.start = Instant::now();
        if let Some(rate) = self.rate {
            let pacer = Pacer::start(self.start, rate, self.stop, conns.len());
            self.pacer = Some(pacer.expect("cannot start the pacing thread"));
        }
        let phase = Arc::new(self);
        let counter = phase.clone();
        let progress = Progress::start(phase.label, phase.plan.quiet, phase.stop, move || {
            counter.done.load(Ordering::Relaxed)
        });
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|conn| tokio::spawn(phase.clone().drive(conn)))
            .collect();
        let (mut tally, mut kept) = (Tally::default(), Vec::with_capacity(tasks.len()));
        for task in tasks {
            let (part, conn) = task.await.expect("a connection task panicked");
            tally.merge(part);
            kept.push(conn);
        }
        let elapsed = phase.start.elapsed();
        progress.finish();
        (tally, kept, elapsed)
    }

    /// One connection's loop: take a ticket, wait until it is due, send,
    /// record.
    async fn drive(self: Arc<Self>, mut conn: Option<Sender>) -> (Tally, Option<Sender>) {
        let mut tally = Tally::default();
        let mut rng = fastrand::Rng::new();
        loop {
            if let Some(pacer) = &self.pacer {
                pacer.wait().await;
            }
            let Some(ticket) = self.take(&mut rng) else {
                break;
            };
            let clock = start_clock(ticket.due);
            let request = match (ticket.op, self.plan.batch_size) {
                (Op::Batch, Some(size)) => {
                    let plan = &self.plan;
                    let ops = batch_keys(&plan.mix, size, plan.keyspace, plan.namespaces, &mut rng);
                    plan.requests.build_batch(&ops)
                }
                (op, _) => self.plan.requests.build(op, ticket.index),
            };
            let outcome = self.attempt(&mut conn, request).await;
            tally.record(ticket.op, clock.elapsed(), outcome);
            self.done.fetch_add(1, Ordering::Relaxed);
        }
        (tally, conn)
    }

    /// The next ticket, or `None` once the phase is over.
    fn take(&self, rng: &mut fastrand::Rng) -> Option<Ticket> {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let due = self
            .rate
            .map(|rate| self.start + Duration::from_secs_f64(k as f64 / rate));
        let more = match self.stop {
            Stop::Count(n) => k < n,
            Stop::Time(limit) => due.unwrap_or_else(Instant::now) < self.start + limit,
        };
        if !more {
            return None;
        }
        Some(if self.preload {
            Ticket {
                index: k,
                op: Op::Set,
                due,
            }
        } else {
            let op = match self.plan.batch_size {
                Some(_) => Op::Batch,
                None => self.plan.mix.pick(rng),
            };
            Ticket {
                index: rng.u64(0..self.plan.keyspace),
                op,
                due,
            }
        })
    }

    /// Sends one request (reconnecting first if the connection was lost)
    /// and reads the whole answer, within `--timeout`.
    async fn attempt(
        &self,
        conn: &mut Option<Sender>,
        request: hyper::Request<Full<Bytes>>,
    ) -> Outcome {
        let timeout = self.plan.timeout;
        let outcome = tokio::time::timeout(timeout, exchange(&self.plan.authority, conn, request))
            .await
            .unwrap_or_else(|_| {
                Err((
                    ErrorKind::Timeout,
                    format!("no answer within {} s", timeout.as_secs()),
                ))
            });
        if outcome.is_err() {
            // The connection may be in any state: start afresh.
            *conn = None;
        }
        outcome
    }
}

/// When a request's latency starts counting: when it fell due (the
/// pacer hands tickets out no sooner), or now in closed loop.
fn start_clock(due: Option<Instant>) -> Instant {
    due.unwrap_or_else(Instant::now)
}

async fn exchange(
    authority: &str,
    conn: &mut Option<Sender>,
    request: hyper::Request<Full<Bytes>>,
) -> Outcome {
    let sender = match conn {
        Some(sender) => sender,
        None => conn.insert(connect(authority).await?),
    };
    let broken = |e: hyper::Error| (ErrorKind::Request, format!("request to {authority}: {e}"));
    sender.ready().await.map_err(broken)?;
    let response = sender.send_request(request).await.map_err(broken)?;
    let status = response.status().as_u16();
    response.into_body().collect().await.map_err(broken)?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let (connect, host, prefix) = parse_url("http://localhost:9000/kv/").unwrap();
        assert_eq!(
            (connect.as_str(), host.as_str(), prefix.as_str()),
            ("localhost:9000", "localhost:9000", "/kv")
        );
        let (connect, _, prefix) = parse_url("http://127.0.0.1").unwrap();
        assert_eq!((connect.as_str(), prefix.as_str()), ("127.0.0.1:80", ""));
        assert!(parse_url("https://x").is_err());
        assert!(parse_url("not a url").is_err());
    }
}
