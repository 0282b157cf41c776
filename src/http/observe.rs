//! Request counters, latency histograms and the recent-errors ring, shared
//! by `/metrics` and `/performance`, fed by the pipeline's observe stage.
//!
//! # Why this design
//!
//! Everything on the request path is a relaxed atomic add into memory that is
//! allocated once: no lock, no allocation, no list of requests.
//!
//! - **Per route, fixed buckets.** Each route template has a histogram of
//!   [`BUCKETS`] atomic counters (plus count and sum), and a small table of
//!   `(method, status) -> count`. A request costs one hash of its template
//!   (short, and the same string every time) and four or five `fetch_add`s.
//!   Percentiles are read from the buckets (interpolated inside one), so
//!   they are within a bucket's width (about 25%) of the truth, whatever the
//!   number of requests; memory stays about 1 KiB per route.
//! - **One copy of the counters per thread ("stripes").** Each thread
//!   counts into a stripe of its own, in cache lines of its own; readers
//!   sum the stripes. Why: with one copy, requests for the same route on
//!   different cores wrote the same cache lines, which then moved between
//!   the cores at nearly every request, and that showed in the profile
//!   (docs/BENCHMARKS.md, "Cache lines every core wrote"). There are as
//!   many stripes as cores (a thread takes the next one the first time it
//!   counts), and a route's stripes are allocated by its first request.
//! - **Labels are route templates** (the router's), never the raw path, so
//!   keys never become labels: the table holds at most [`MAX_ROUTES`]
//!   templates (the router has about twenty). Requests that match no route
//!   are counted under [`UNMATCHED`].
//! - **Errors** (status >= 400) also go into a ring of the last
//!   [`RECENT_ERRORS`], behind a mutex taken only for those answers. What
//!   is kept is the error's [`diagnostic`](ApiError::diagnostic), built by
//!   the error itself without anything the client sent (key, value,
//!   namespace, token, path), never the answer's text; an error answer that
//!   is not an [`ApiError`] (`/health`'s 503) is kept as its status's
//!   reason.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_utils::CachePadded;
use hyper::{Method, StatusCode};

use super::error::{ApiError, method_label};
use super::reply::Response;
use crate::api::ErrorRecord;

/// Route label of requests that matched no route (the 404 fallback).
pub const UNMATCHED: &str = "unmatched";
/// Route templates tracked; more (there are not) share [`UNMATCHED`]'s.
pub const MAX_ROUTES: usize = 64;
/// Errors kept for `/performance/recent-errors`.
pub const RECENT_ERRORS: usize = 100;
/// Distinct `(method, status)` pairs counted per route; more are counted
/// under status `other`.
const PAIRS: usize = 32;
/// Longest detail kept in the ring, in bytes.
const MAX_DETAIL: usize = 300;

/// Upper bounds of the latency buckets, in nanoseconds: the R10 series
/// (1, 1.25, 1.6, 2, 2.5, 3.2, 4, 5, 6.3, 8) for each decade from 10 µs to
/// 100 s. Requests slower than the last bound go in an overflow bucket.
pub static BOUNDS_NS: [u64; BUCKETS - 1] = bounds();
/// Latency buckets, the overflow one included.
pub const BUCKETS: usize = 7 * 10 + 1;
/// Which of [`BOUNDS_NS`] are exposed to Prometheus (1, 2.5 and 5 per
/// decade, 100 µs to 10 s): enough for a dashboard, few enough series.
pub fn is_exposed_bound(index: usize) -> bool {
    let bound = BOUNDS_NS[index];
    (100_000..=10_000_000_000).contains(&bound) && matches!(index % 10, 0 | 4 | 7)
}

const fn bounds() -> [u64; BUCKETS - 1] {
    const R10: [u64; 10] = [100, 125, 160, 200, 250, 320, 400, 500, 630, 800];
    let mut out = [0; BUCKETS - 1];
    // 10 µs = 10_000 ns = 100 * 100.
    let mut scale = 100;
    let mut decade = 0;
    while decade < 7 {
        let mut i = 0;
        while i < 10 {
            out[decade * 10 + i] = R10[i] * scale;
            i += 1;
        }
        scale *= 10;
        decade += 1;
    }
    out
}

fn bucket_of(nanos: u64) -> usize {
    BOUNDS_NS.partition_point(|&bound| bound < nanos)
}

/// A latency histogram of fixed buckets.
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    fn record(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(nanos)].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(nanos, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// A copy of the counters, to read without racing the writers.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets: [u64; BUCKETS] = std::array::from_fn(|i| self.buckets[i].load(Relaxed));
        HistogramSnapshot {
            // The sum of the buckets, rather than `count`, so that the two
            // always agree in one snapshot.
            count: buckets.iter().sum(),
            buckets,
            sum_ns: self.sum_ns.load(Relaxed),
        }
    }
}

#[derive(Clone)]
pub struct HistogramSnapshot {
    pub buckets: [u64; BUCKETS],
    pub count: u64,
    pub sum_ns: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        HistogramSnapshot {
            buckets: [0; BUCKETS],
            count: 0,
            sum_ns: 0,
        }
    }
}

impl HistogramSnapshot {
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_ns += other.sum_ns;
    }

    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.sum_ns as f64 / self.count as f64 / 1e6
    }

    /// The `q` quantile (0 to 1) in milliseconds, interpolated linearly
    /// inside its bucket; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let rank = (q * self.count as f64).ceil().max(1.0);
        let mut below = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if (below + n) as f64 >= rank {
                let low = if i == 0 { 0 } else { BOUNDS_NS[i - 1] };
                // The overflow bucket has no upper bound: report its floor.
                let high = BOUNDS_NS.get(i).copied().unwrap_or(low);
                let within = (rank - below as f64) / n as f64;
                return (low as f64 + within * (high - low) as f64) / 1e6;
            }
            below += n;
        }
        BOUNDS_NS[BUCKETS - 2] as f64 / 1e6
    }
}

/// Counters of one route template: a stripe per thread, summed by the
/// readers.
pub struct RouteStats {
    /// `(method index << 16 | status)`, 0 for a free slot: what each of a
    /// stripe's `pair_counts` counts, the same for every stripe.
    pair_keys: [AtomicU32; PAIRS],
    stripes: Box<[CachePadded<Stripe>]>,
}

/// One thread's counts of a route.
#[derive(Default)]
struct Stripe {
    latency: Histogram,
    pair_counts: [AtomicU64; PAIRS],
    /// Requests whose pair found no free slot.
    other: AtomicU64,
}

/// Stripes of every route: one per core.
static STRIPES: LazyLock<usize> =
    LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(64)));

/// The calling thread's stripe: threads take the stripes in turn, the
/// first time each counts.
fn stripe_of_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Relaxed) % *STRIPES;
    }
    STRIPE.with(|stripe| *stripe)
}

impl Default for RouteStats {
    fn default() -> Self {
        RouteStats {
            pair_keys: Default::default(),
            stripes: (0..*STRIPES).map(|_| CachePadded::default()).collect(),
        }
    }
}

impl RouteStats {
    /// Counts one answer, in the calling thread's stripe.
    fn record(&self, method: usize, status: u16, latency: Duration) {
        let stripe = &self.stripes[stripe_of_thread()];
        stripe.latency.record(latency);
        match self.pair_slot(method, status) {
            Some(i) => stripe.pair_counts[i].fetch_add(1, Relaxed),
            None => stripe.other.fetch_add(1, Relaxed),
        };
    }

    /// The slot of `(method, status)` in `pair_keys`, claimed by its first
    /// answer; `None` when every slot holds another pair.
    fn pair_slot(&self, method: usize, status: u16) -> Option<usize> {
        let key = ((method as u32 + 1) << 16) | u32::from(status);
        let start = (key as usize).wrapping_mul(0x9E37_79B9) % PAIRS;
        (0..PAIRS).map(|probe| (start + probe) % PAIRS).find(|&i| {
            let current = self.pair_keys[i].load(Relaxed);
            current == key
                || (current == 0
                    && match self.pair_keys[i].compare_exchange(0, key, Relaxed, Relaxed) {
                        Ok(_) => true,
                        Err(other) => other == key,
                    })
        })
    }

    /// A counter of every stripe, summed.
    fn sum(&self, counter: impl Fn(&Stripe) -> &AtomicU64) -> u64 {
        let stripes = self.stripes.iter();
        stripes.map(|stripe| counter(stripe).load(Relaxed)).sum()
    }

    /// The latency histogram of every stripe, merged.
    pub fn latency(&self) -> HistogramSnapshot {
        let mut merged = HistogramSnapshot::default();
        for stripe in &self.stripes {
            merged.merge(&stripe.latency.snapshot());
        }
        merged
    }

    /// `(method, status, count)` for every pair seen; `status` is `None`
    /// for the overflow count.
    pub fn requests(&self) -> Vec<(&'static str, Option<u16>, u64)> {
        let mut out: Vec<_> = (0..PAIRS)
            .filter_map(|i| {
                let key = self.pair_keys[i].load(Relaxed);
                (key != 0).then(|| {
                    let method = METHODS[(key >> 16) as usize - 1];
                    let count = self.sum(|s| &s.pair_counts[i]);
                    (method, Some(key as u16), count)
                })
            })
            .collect();
        let other = self.sum(|s| &s.other);
        if other > 0 {
            out.push(("OTHER", None, other));
        }
        out.sort_unstable();
        out
    }

    /// Requests answered with a status of 400 or more.
    pub fn errors(&self) -> u64 {
        self.requests()
            .iter()
            .filter(|(_, status, _)| status.is_some_and(|s| s >= 400))
            .map(|(_, _, n)| n)
            .sum()
    }
}

/// Method labels; anything else is `OTHER`.
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "OTHER",
];

fn method_index(method: &Method) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method.as_str())
        .unwrap_or(METHODS.len() - 1)
}

/// A route template's place in the table, claimed by its first request.
type Slot = OnceLock<Route>;

struct Route {
    template: Box<str>,
    label: Box<str>,
    stats: RouteStats,
}

/// Everything the operability endpoints read.
pub struct Observer {
    started: Instant,
    slots: Box<[Slot]>,
    /// [`UNMATCHED`], and the routes that found the table full.
    unmatched: RouteStats,
    errors: Mutex<VecDeque<ErrorRecord>>,
}

impl Default for Observer {
    fn default() -> Self {
        Observer {
            started: Instant::now(),
            slots: (0..MAX_ROUTES).map(|_| Slot::new()).collect(),
            unmatched: RouteStats::default(),
            errors: Mutex::new(VecDeque::with_capacity(RECENT_ERRORS)),
        }
    }
}

impl Observer {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The stats and label of a route template, found by open addressing;
    /// the first request of a template claims a slot (its allocations, once).
    fn route(&self, template: Option<&str>) -> (&RouteStats, &str) {
        let Some(template) = template else {
            return (&self.unmatched, UNMATCHED);
        };
        let start = fnv1a(template) as usize % self.slots.len();
        for probe in 0..self.slots.len() {
            let slot = &self.slots[(start + probe) % self.slots.len()];
            let route = slot.get_or_init(|| Route {
                template: template.into(),
                label: label_of(template).into(),
                stats: RouteStats::default(),
            });
            if *route.template == *template {
                return (&route.stats, &route.label);
            }
        }
        (&self.unmatched, UNMATCHED)
    }

    /// Every route seen, with its label, sorted by label; [`UNMATCHED`] last
    /// when it has counts.
    pub fn routes(&self) -> Vec<(&str, &RouteStats)> {
        let mut out: Vec<_> = self
            .slots
            .iter()
            .filter_map(|slot| slot.get().map(|route| (&*route.label, &route.stats)))
            .collect();
        out.sort_unstable_by_key(|(route, _)| *route);
        if self.unmatched.latency().count > 0 {
            out.push((UNMATCHED, &self.unmatched));
        }
        out
    }

    /// The last errors, oldest first.
    pub fn recent_errors(&self) -> Vec<ErrorRecord> {
        let errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        errors.iter().cloned().collect()
    }

    fn push_error(&self, record: ErrorRecord) {
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        if errors.len() == RECENT_ERRORS {
            errors.pop_front();
        }
        errors.push_back(record);
    }
}

/// The label of a template: the router's `{*key}` wildcard written `{key}`, as in
/// the OpenAPI document.
fn label_of(template: &str) -> String {
    template.replace("{*", "{")
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Observer {
    /// Counts a request under its route template, method and status, and
    /// logs a line at debug level (never the key, value or headers).
    /// Returns the route's label.
    pub fn record(
        &self,
        template: Option<&str>,
        method: &Method,
        status: StatusCode,
        latency: Duration,
    ) -> &str {
        let (stats, route) = self.route(template);
        stats.record(method_index(method), status.as_u16(), latency);
        tracing::debug!(
            method = method_label(method.as_str()),
            route,
            status = status.as_u16(),
            latency_ms = latency.as_secs_f64() * 1e3,
            "request"
        );
        route
    }

    /// Records an answer started at `start` ([`Observer::record`]) and,
    /// when it is an error, keeps its diagnostic in the ring of recent
    /// errors. Returns the answer, the error's included.
    pub fn finish(
        &self,
        method: &Method,
        template: Option<&str>,
        start: Instant,
        outcome: Result<Response, ApiError>,
    ) -> Response {
        let (response, diagnostic) = match outcome {
            Ok(response) => (response, None),
            Err(error) => {
                let diagnostic = error.diagnostic();
                (error.into_response(), Some(diagnostic))
            }
        };
        let status = response.status();
        let route = self.record(template, method, status, start.elapsed());
        if status.as_u16() < 400 {
            return response;
        }
        let detail = match diagnostic {
            Some(diagnostic) => truncate(&diagnostic),
            None => status.canonical_reason().unwrap_or("error").to_owned(),
        };
        self.push_error(ErrorRecord {
            time: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
            method: method_label(method.as_str()).to_owned(),
            route: route.to_owned(),
            status: status.as_u16(),
            detail,
        });
        response
    }
}

/// At most [`MAX_DETAIL`] bytes, cut at a character boundary.
fn truncate(detail: &str) -> String {
    if detail.len() <= MAX_DETAIL {
        return detail.to_owned();
    }
    let mut end = MAX_DETAIL;
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &detail[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_increasing_and_expose_round_numbers() {
        assert!(BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(BOUNDS_NS[0], 10_000);
        assert_eq!(*BOUNDS_NS.last().unwrap(), 80_000_000_000);
        let exposed: Vec<u64> = (0..BUCKETS - 1)
            .filter(|&i| is_exposed_bound(i))
            .map(|i| BOUNDS_NS[i])
            .collect();
        assert_eq!(exposed.first(), Some(&100_000));
        assert_eq!(exposed.last(), Some(&10_000_000_000));
        assert_eq!(exposed.len(), 16);
    }

    #[test]
    fn quantiles_fall_in_the_right_bucket() {
        let h = Histogram::default();
        for _ in 0..90 {
            h.record(Duration::from_micros(100));
        }
        for _ in 0..10 {
            h.record(Duration::from_millis(10));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 100);
        assert!(s.quantile_ms(0.5) <= 0.1 && s.quantile_ms(0.5) > 0.08);
        let p95 = s.quantile_ms(0.95);
        assert!(p95 > 8.0 && p95 <= 10.0, "{p95}");
        assert!((s.mean_ms() - 1.09).abs() < 1e-9);
    }

    #[test]
    fn routes_are_interned_once_and_wildcards_relabelled() {
        let o = Observer::default();
        let (a, label) = o.route(Some("/get/{*key}"));
        assert_eq!(label, "/get/{key}");
        let (b, _) = o.route(Some("/get/{*key}"));
        assert!(std::ptr::eq(a, b));
        let latency = Duration::from_micros(100);
        a.record(0, 200, latency);
        a.record(0, 200, latency);
        a.record(0, 404, latency);
        assert_eq!(
            a.requests(),
            vec![("GET", Some(200), 2), ("GET", Some(404), 1)]
        );
        assert_eq!(a.errors(), 1);
        assert_eq!(o.route(None).1, UNMATCHED);
    }

    #[test]
    fn the_counts_of_every_thread_are_summed() {
        let o = Observer::default();
        std::thread::scope(|scope| {
            for _ in 0..2 * *STRIPES + 1 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        let latency = Duration::from_micros(50);
                        o.record(Some("/set"), &Method::POST, StatusCode::OK, latency);
                    }
                });
            }
        });
        let answers = (2 * *STRIPES as u64 + 1) * 1000;
        let routes = o.routes();
        let [(route, stats)] = routes.as_slice() else {
            panic!("one route, not {}", routes.len());
        };
        assert_eq!(*route, "/set");
        assert_eq!(stats.requests(), vec![("POST", Some(200), answers)]);
        let latency = stats.latency();
        assert_eq!(latency.count, answers);
        assert_eq!(latency.sum_ns, answers * 50_000);
    }

    #[test]
    fn long_details_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_DETAIL);
        let cut = truncate(&long);
        assert!(cut.len() <= MAX_DETAIL + '…'.len_utf8(), "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short"), "short");
    }
}
