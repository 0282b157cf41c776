//! `GET /performance` and `GET /performance/recent-errors`, as in the
//! Python PyKV, computed from the histograms and counters of
//! [`super::observe`] (bounded memory, whatever the traffic). The answers'
//! shapes are in [`crate::api`].

use std::collections::BTreeMap;

use super::observe::{HistogramSnapshot, Observer};
use crate::api::{OperationFigures, Performance, RecentErrors};

pub fn performance(observer: &Observer) -> Performance {
    let mut all = HistogramSnapshot::default();
    let mut total_errors = 0;
    let mut operation_breakdown = BTreeMap::new();
    for (route, stats) in observer.routes() {
        let snapshot = stats.latency();
        let errors = stats.errors();
        total_errors += errors;
        all.merge(&snapshot);
        operation_breakdown.insert(
            route.to_owned(),
            OperationFigures {
                count: snapshot.count,
                errors,
                avg_latency_ms: round(snapshot.mean_ms()),
                p95_latency_ms: round(snapshot.quantile_ms(0.95)),
                p99_latency_ms: round(snapshot.quantile_ms(0.99)),
            },
        );
    }
    let uptime = observer.uptime().as_secs_f64();
    Performance {
        total_operations: all.count,
        operations_per_second: round(all.count as f64 / uptime.max(1e-3)),
        error_rate: if all.count == 0 {
            0.0
        } else {
            // Counted a moment apart from the histograms: keep it in range.
            (total_errors as f64 / all.count as f64).min(1.0)
        },
        total_errors,
        avg_latency_ms: round(all.mean_ms()),
        p50_latency_ms: round(all.quantile_ms(0.50)),
        p95_latency_ms: round(all.quantile_ms(0.95)),
        p99_latency_ms: round(all.quantile_ms(0.99)),
        operation_breakdown,
        uptime_seconds: round(uptime),
    }
}

pub fn recent_errors(observer: &Observer) -> RecentErrors {
    let errors = observer.recent_errors();
    RecentErrors {
        count: errors.len(),
        errors,
    }
}

/// Three decimals: microseconds for latencies in milliseconds.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
