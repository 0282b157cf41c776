//! What came back: each connection keeps its own [`Tally`] (no sharing on
//! the hot path), merged at the end into a [`Summary`] printed as text or
//! as one JSON object.
//!
//! Latencies go into an HDR histogram at microsecond resolution with 3
//! significant digits: percentiles up to p99.9 and the max are exact to
//! 0.1 %, in constant memory, whatever the number of requests.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::workload::Op;

/// Longest latency the histogram holds exactly (longer ones are clamped);
/// above any `--timeout`.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The TCP connection or the HTTP handshake failed (e.g. refused).
    Connect,
    /// The connection broke while sending or receiving (e.g. reset).
    Request,
    /// No complete answer within `--timeout`.
    Timeout,
}

impl ErrorKind {
    const ALL: [ErrorKind; 3] = [ErrorKind::Connect, ErrorKind::Request, ErrorKind::Timeout];

    fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Request => "request",
            ErrorKind::Timeout => "timeout",
        }
    }
}

/// The outcome of one request.
pub type Outcome = Result<u16, (ErrorKind, String)>;

/// Counts of one connection (or, merged, of the whole run).
pub struct Tally {
    /// Latency of every answered request, in microseconds.
    latency: Histogram<u64>,
    /// Requests attempted, by operation.
    ops: [u64; 3],
    /// Answers by HTTP status.
    statuses: BTreeMap<u16, u64>,
    /// Requests without an answer, by [`ErrorKind`].
    errors: [u64; 3],
    /// The first error's message, to tell the user what went wrong.
    first_error: Option<String>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .expect("valid histogram bounds"),
            ops: [0; 3],
            statuses: BTreeMap::new(),
            errors: [0; 3],
            first_error: None,
        }
    }
}

impl Tally {
    pub fn record(&mut self, op: Op, latency: Duration, outcome: Outcome) {
        self.ops[op.index()] += 1;
        match outcome {
            Ok(status) => {
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                self.latency.saturating_record(micros.max(1));
                *self.statuses.entry(status).or_default() += 1;
            }
            Err((kind, message)) => {
                self.errors[kind as usize] += 1;
                self.first_error.get_or_insert(message);
            }
        }
    }

    pub fn merge(&mut self, other: Tally) {
        self.latency
            .add(&other.latency)
            .expect("histograms share their bounds");
        for (total, n) in self.ops.iter_mut().zip(other.ops) {
            *total += n;
        }
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        for (total, n) in self.errors.iter_mut().zip(other.errors) {
            *total += n;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub fn attempted(&self) -> u64 {
        self.ops.iter().sum()
    }

    pub fn answered(&self) -> u64 {
        self.statuses.values().sum()
    }

    pub fn failed(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Answers whose status is not 2xx.
    pub fn non_2xx(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(status, _)| !(200..300).contains(*status))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn first_error(&self) -> Option<&str> {
        self.first_error.as_deref()
    }
}

/// How the run was set up, echoed in the report.
#[derive(Debug, Clone)]
pub struct Setup {
    pub url: String,
    pub connections: u32,
    pub threads: u32,
    pub keyspace: u64,
    pub namespaces: u32,
    pub value_size: usize,
    pub target_rate: Option<f64>,
    /// Ops per request under `--op batch`.
    pub batch_size: Option<usize>,
    pub preloaded: u64,
    /// Seconds of unmeasured load before the measured phase.
    pub warmup_s: f64,
}

/// The whole run's figures.
pub struct Summary {
    pub setup: Setup,
    pub tally: Tally,
    pub elapsed: Duration,
}

/// The percentiles reported, with their JSON names.
const PERCENTILES: [(&str, f64); 4] =
    [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)];

impl Summary {
    /// Answers per second of wall time (errors excluded).
    pub fn throughput(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.tally.answered() as f64 / secs
        } else {
            0.0
        }
    }

    /// Keys read or written per second: answers times the ops each
    /// carries.
    pub fn keys_per_second(&self) -> f64 {
        self.throughput() * self.setup.batch_size.unwrap_or(1) as f64
    }

    /// Latency figures in microseconds; null when nothing was answered.
    fn latency_json(&self) -> Value {
        let h = &self.tally.latency;
        if h.is_empty() {
            return Value::Null;
        }
        let mut out = serde_json::Map::new();
        out.insert("min".into(), json!(h.min()));
        out.insert("mean".into(), json!(round2(h.mean())));
        for (name, q) in PERCENTILES {
            out.insert(name.into(), json!(h.value_at_percentile(q)));
        }
        out.insert("max".into(), json!(h.max()));
        Value::Object(out)
    }

    pub fn to_json(&self) -> Value {
        let t = &self.tally;
        let s = &self.setup;
        let ops: serde_json::Map<_, _> = Op::ALL
            .iter()
            .map(|op| (op.name().into(), json!(t.ops[op.index()])))
            .collect();
        let status: serde_json::Map<_, _> = t
            .statuses
            .iter()
            .map(|(code, n)| (code.to_string(), json!(n)))
            .collect();
        let errors: serde_json::Map<_, _> = ErrorKind::ALL
            .iter()
            .map(|k| (k.name().into(), json!(t.errors[*k as usize])))
            .collect();
        json!({
            "url": s.url,
            "connections": s.connections,
            "threads": s.threads,
            "keyspace": s.keyspace,
            "namespaces": s.namespaces,
            "value_size": s.value_size,
            "target_rate": s.target_rate,
            "preloaded": s.preloaded,
            "warmup_s": s.warmup_s,
            "requests": t.attempted(),
            "answered": t.answered(),
            "elapsed_s": (self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "throughput_rps": round2(self.throughput()),
            "batch_size": s.batch_size,
            "keys_per_s": round2(self.keys_per_second()),
            "ops": ops,
            "latency_us": self.latency_json(),
            "status": status,
            "non_2xx": t.non_2xx(),
            "errors": errors,
            "errors_total": t.failed(),
            "first_error": t.first_error(),
        })
    }

    pub fn to_text(&self) -> String {
        let t = &self.tally;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} requests in {:.2} s over {} connections ({} generator threads){}",
            t.attempted(),
            self.elapsed.as_secs_f64(),
            self.setup.connections,
            self.setup.threads,
            self.setup
                .target_rate
                .map(|r| format!(", paced at {r:.0} req/s"))
                .unwrap_or_default(),
        );
        let ops: Vec<String> = Op::ALL
            .iter()
            .map(|op| format!("{} {}", op.name(), t.ops[op.index()]))
            .collect();
        let _ = writeln!(out, "  operations:  {}", ops.join(", "));
        let _ = writeln!(out, "  throughput:  {:.0} requests/s", self.throughput());
        if let Some(size) = self.setup.batch_size {
            let keys = self.keys_per_second();
            let _ = writeln!(
                out,
                "  keys:        {keys:.0} keys/s ({size} ops per batch)"
            );
        }
        self.latency_text(&mut out);
        self.outcomes_text(&mut out);
        out
    }

    fn latency_text(&self, out: &mut String) {
        let h = &self.tally.latency;
        if h.is_empty() {
            let _ = writeln!(out, "  latency:     no answers");
            return;
        }
        let mut parts: Vec<String> = PERCENTILES
            .iter()
            .map(|(name, q)| format!("{name} {}", micros(h.value_at_percentile(*q))))
            .collect();
        parts.push(format!("max {}", micros(h.max())));
        let _ = writeln!(out, "  latency:     {}", parts.join("  "));
    }

    fn outcomes_text(&self, out: &mut String) {
        let t = &self.tally;
        let statuses: Vec<String> = t
            .statuses
            .iter()
            .map(|(code, n)| format!("{code}: {n}"))
            .collect();
        let _ = writeln!(out, "  statuses:    {}", or_none(&statuses));
        let errors: Vec<String> = ErrorKind::ALL
            .iter()
            .filter(|k| t.errors[**k as usize] > 0)
            .map(|k| format!("{}: {}", k.name(), t.errors[*k as usize]))
            .collect();
        let _ = writeln!(out, "  errors:      {}", or_none(&errors));
    }

    /// The message for a run in which some requests got no answer.
    pub fn failure_message(&self) -> Option<String> {
        let t = &self.tally;
        (t.failed() > 0).then(|| {
            format!(
                "{} of {} requests got no answer from {}; first error: {}",
                t.failed(),
                t.attempted(),
                self.setup.url,
                t.first_error().unwrap_or("unknown"),
            )
        })
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `850 us`, or `12.3 ms` from 10 ms up.
fn micros(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{us} us")
    }
}

fn or_none(parts: &[String]) -> String {
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_counts() {
        let mut a = Tally::default();
        a.record(Op::Get, Duration::from_micros(100), Ok(200));
        a.record(Op::Get, Duration::from_micros(300), Ok(404));
        let mut b = Tally::default();
        b.record(
            Op::Set,
            Duration::ZERO,
            Err((ErrorKind::Connect, "refused".into())),
        );
        a.merge(b);
        assert_eq!(
            (a.attempted(), a.answered(), a.failed(), a.non_2xx()),
            (3, 2, 1, 1)
        );
        assert_eq!(a.first_error(), Some("refused"));
        assert_eq!(a.latency.max(), 300);
    }
}
