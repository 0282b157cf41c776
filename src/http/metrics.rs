//! `GET /metrics`: the Prometheus text exposition format (version 0.0.4).
//!
//! One function per metric family (requests, request durations, the
//! per-namespace families, the log, the store's bounds), in the order they
//! are written.
//!
//! Written by hand rather than with `prometheus-client` (the Prometheus
//! project's crate, evaluated at 0.24/0.25):
//! - its text encoder writes OpenMetrics 1.0 only: a counter's `# TYPE`
//!   names the family without `_total`, a `# EOF` line ends the answer and
//!   the content type is `application/openmetrics-text`. Scrapers and
//!   dashboards built on today's `text/plain; version=0.0.4` answer (and
//!   `tests/operability.rs`, which parses it strictly) would see it change;
//! - its `Histogram` takes a lock (`parking_lot::RwLock`, write side) on
//!   every `observe`, with a linear scan of its buckets; the request
//!   latencies are recorded on every request, the hot GET included, as a
//!   few `fetch_add`s on atomics ([`super::observe`]), lock-free. Its
//!   buckets are also the exposed ones, while ours are [`BUCKETS`] fine
//!   ones for `/performance`'s percentiles, of which `/metrics` shows a
//!   subset;
//! - every other figure is read from [`BackendStats`] at scrape time, so a
//!   registry would only be a second copy to fill on every scrape.
//!
//! The default namespace is labelled `namespace=""`: it has no name, and any
//! name would collide with a real namespace of that name (the empty string
//! is not a valid namespace name).
//!
//! Per-namespace series are capped (`--metrics-namespace-limit`, 100 by
//! default): Prometheus cannot take a label with 100,000 values, and the
//! answer would grow with every tenant. The largest namespaces keep their
//! own series; the rest are summed into one, `namespace="(other)"`, so each
//! family still adds up to the server's total. Parentheses cannot appear in
//! a namespace name, so that label never names a real namespace.

use std::fmt::Write;

use super::observe::{
    BOUNDS_NS, BUCKETS, HistogramSnapshot, Observer, RouteStats, is_exposed_bound,
};
use crate::backend::{BackendStats, PersistenceStats};
use crate::store::{NamespaceStats, StoreStats};
use crate::wal::{SYNC_BOUNDS, SyncSnapshot};

/// `(name, type, help, figure)` of a family with one sample per namespace.
type NamespaceFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&NamespaceStats) -> u64,
);

/// The families with one sample per namespace, in the order they are written.
const NAMESPACE_FAMILIES: [NamespaceFamily; 6] = [
    (
        "pykv_keys",
        "gauge",
        "Live keys, by namespace (the default namespace is namespace=\"\").",
        |s| s.total_keys as u64,
    ),
    (
        "pykv_used_bytes",
        "gauge",
        "Bytes accounted to the namespace's entries.",
        |s| s.used_bytes,
    ),
    (
        "pykv_cache_hits_total",
        "counter",
        "GETs that found their key.",
        |s| s.cache_hits,
    ),
    (
        "pykv_cache_misses_total",
        "counter",
        "GETs that did not find their key.",
        |s| s.cache_misses,
    ),
    (
        "pykv_evictions_total",
        "counter",
        "Keys evicted to stay within the memory or key limits.",
        |s| s.evictions,
    ),
    (
        "pykv_expirations_total",
        "counter",
        "Keys removed because their TTL ran out.",
        |s| s.expirations,
    ),
];

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The label value of the series summing the namespaces past the cap.
pub const OTHER_NAMESPACES: &str = "(other)";

/// The whole exposition, with at most `namespace_limit` named namespaces in
/// series of their own.
pub fn render(observer: &Observer, stats: &BackendStats, namespace_limit: usize) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let routes = observer.routes();
    requests(&mut out, &routes);
    request_durations(&mut out, &routes);
    namespaces(&mut out, &stats.store, namespace_limit);
    if let Some(persistence) = &stats.persistence {
        log(&mut out, persistence);
    }
    store_bounds(&mut out, stats);
    gauge(
        &mut out,
        "pykv_uptime_seconds",
        "Seconds since the server started.",
        Some(observer.uptime().as_secs_f64()),
    );
    out
}

/// `pykv_http_requests_total`: requests by route template, method, status.
fn requests(out: &mut String, routes: &[(&str, &RouteStats)]) {
    family(
        out,
        "pykv_http_requests_total",
        "counter",
        "HTTP requests answered, by route template, method and status.",
    );
    for (route, route_stats) in routes {
        for (method, status, count) in route_stats.requests() {
            let status = status.map_or_else(|| "other".to_owned(), |s| s.to_string());
            let _ = writeln!(
                out,
                "pykv_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {count}",
                escape(route)
            );
        }
    }
}

/// `pykv_http_request_duration_seconds`: one histogram per route template,
/// with the exposed subset of the observer's buckets.
fn request_durations(out: &mut String, routes: &[(&str, &RouteStats)]) {
    family(
        out,
        "pykv_http_request_duration_seconds",
        "histogram",
        "Time from the request's arrival to its answer's headers, by route template.",
    );
    for (route, route_stats) in routes {
        route_duration(out, &escape(route), &route_stats.latency());
    }
}

fn route_duration(out: &mut String, route: &str, snapshot: &HistogramSnapshot) {
    let mut cumulative = 0;
    for (i, bound) in BOUNDS_NS.iter().enumerate() {
        cumulative += snapshot.buckets[i];
        if is_exposed_bound(i) {
            let _ = writeln!(
                out,
                "pykv_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e9
            );
        }
    }
    debug_assert_eq!(cumulative + snapshot.buckets[BUCKETS - 1], snapshot.count);
    let _ = writeln!(
        out,
        "pykv_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
        snapshot.count
    );
    let _ = writeln!(
        out,
        "pykv_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
        snapshot.sum_ns as f64 / 1e9
    );
    let _ = writeln!(
        out,
        "pykv_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
        snapshot.count
    );
}

/// The per-namespace families (keys, bytes, hits, misses, evictions,
/// expirations), capped at `limit` named namespaces, then how many
/// namespaces there are.
fn namespaces(out: &mut String, store: &StoreStats, limit: usize) {
    let series = namespace_series(store, limit);
    for (name, kind, help, value) in NAMESPACE_FAMILIES {
        family(out, name, kind, help);
        for (namespace, ns_stats) in &series {
            let _ = writeln!(
                out,
                "{name}{{namespace=\"{}\"}} {}",
                escape(namespace),
                value(ns_stats)
            );
        }
    }
    gauge(
        out,
        "pykv_namespaces",
        "Named namespaces holding at least one live key; the largest have series of their own (--metrics-namespace-limit), the rest are summed in one.",
        Some(store.namespaces.len() as f64),
    );
}

/// The write-ahead log: its size, compactions, and how long its syncs take.
/// Absent for a backend that keeps no log.
fn log(out: &mut String, stats: &PersistenceStats) {
    gauge(
        out,
        "pykv_log_size_bytes",
        "Bytes in the write-ahead log.",
        Some(stats.log_size as f64),
    );
    family(
        out,
        "pykv_compactions_total",
        "counter",
        "Compactions of the log finished since the start.",
    );
    let _ = writeln!(out, "pykv_compactions_total {}", stats.compactions);
    family(
        out,
        "pykv_log_records_total",
        "counter",
        "Records written to the log, by who wrote them: the request's own worker (inline, while the kernel is far from throttling writes) or the log's writer thread.",
    );
    let _ = writeln!(
        out,
        "pykv_log_records_total{{by=\"worker\"}} {}",
        stats.records_inline
    );
    let _ = writeln!(
        out,
        "pykv_log_records_total{{by=\"writer\"}} {}",
        stats.records_by_writer
    );
    sync_histogram(out, &stats.log_syncs);
    gauge(
        out,
        "pykv_last_compaction_timestamp_seconds",
        "When the log was last compacted, seconds since the Unix epoch (absent before the first).",
        stats.last_compaction,
    );
}

/// The store's memory and key bounds, absent when unlimited.
fn store_bounds(out: &mut String, stats: &BackendStats) {
    gauge(
        out,
        "pykv_max_bytes",
        "The store's memory bound (absent when unlimited).",
        stats.max_bytes.map(|b| b as f64),
    );
    gauge(
        out,
        "pykv_max_keys",
        "The store's key bound (absent when unlimited).",
        stats.max_keys.map(|k| k as f64),
    );
}

/// The namespaces given series, with their figures: the default one, then
/// the `limit` largest named ones, by name, then `(other)` summing the rest
/// when there are more.
///
/// The largest are found by a selection (`select_nth_unstable_by`), O(n),
/// rather than a sort of every namespace: only the kept ones are sorted.
/// "Largest" is by live keys, then bytes, then name, so the choice is
/// stable between scrapes of an unchanged store.
fn namespace_series(stats: &StoreStats, limit: usize) -> Vec<(&str, NamespaceStats)> {
    let mut named: Vec<(&str, &NamespaceStats)> = stats
        .namespaces
        .iter()
        .map(|(name, figures)| (name.as_str(), figures))
        .collect();
    let mut other = None;
    if named.len() > limit {
        named.select_nth_unstable_by(limit, |(a_name, a), (b_name, b)| {
            (b.total_keys, b.used_bytes)
                .cmp(&(a.total_keys, a.used_bytes))
                .then_with(|| a_name.cmp(b_name))
        });
        let mut sum = NamespaceStats::default();
        for (_, figures) in named.drain(limit..) {
            sum.add(figures);
        }
        other = Some((OTHER_NAMESPACES, sum));
    }
    named.sort_unstable_by_key(|(name, _)| *name);
    std::iter::once(("", stats.default_namespace))
        .chain(named.into_iter().map(|(name, figures)| (name, *figures)))
        .chain(other)
        .collect()
}

fn sync_histogram(out: &mut String, syncs: &SyncSnapshot) {
    family(
        out,
        "pykv_wal_sync_duration_seconds",
        "histogram",
        "Time taken by each sync (fdatasync) of the write-ahead log.",
    );
    let mut cumulative = 0;
    for (bound, count) in SYNC_BOUNDS.iter().zip(&syncs.buckets) {
        cumulative += count;
        let _ = writeln!(
            out,
            "pykv_wal_sync_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "pykv_wal_sync_duration_seconds_bucket{{le=\"+Inf\"}} {}",
        syncs.count
    );
    let _ = writeln!(
        out,
        "pykv_wal_sync_duration_seconds_sum {}",
        syncs.sum_seconds
    );
    let _ = writeln!(out, "pykv_wal_sync_duration_seconds_count {}", syncs.count);
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: Option<f64>) {
    family(out, name, "gauge", help);
    if let Some(value) = value {
        let _ = writeln!(out, "{name} {value}");
    }
}

/// Label values: `\`, `"` and newlines escaped, as the format requires.
/// Route templates and namespace names never hold them; this is a guard.
fn escape(value: &str) -> std::borrow::Cow<'_, str> {
    if value.contains(['\\', '"', '\n']) {
        value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
            .into()
    } else {
        value.into()
    }
}
