//! Operability: `GET /performance` and `GET /performance/recent-errors`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The answer of `GET /performance`. Latencies are in milliseconds, read
/// from fixed buckets (within about 25% of the exact figure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Performance {
    /// Requests answered since the start, every route included.
    pub total_operations: u64,
    /// `total_operations / uptime_seconds`: the average since the start.
    pub operations_per_second: f64,
    /// Share of requests answered with a status of 400 or more, 0 to 1.
    pub error_rate: f64,
    pub total_errors: u64,
    pub avg_latency_ms: f64,
    pub p50_latency_ms: f64,
    pub p95_latency_ms: f64,
    pub p99_latency_ms: f64,
    /// Per route template (`/set`, `/get/{key}`, ...).
    pub operation_breakdown: BTreeMap<String, OperationFigures>,
    pub uptime_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OperationFigures {
    pub count: u64,
    pub errors: u64,
    pub avg_latency_ms: f64,
    pub p95_latency_ms: f64,
    pub p99_latency_ms: f64,
}

/// The answer of `GET /performance/recent-errors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecentErrors {
    /// Oldest first; at most 100.
    pub errors: Vec<ErrorRecord>,
    pub count: usize,
}

/// One recorded error, for `/performance/recent-errors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorRecord {
    /// When it was answered, seconds since the Unix epoch.
    pub time: f64,
    /// A standard method, or `OTHER`.
    pub method: String,
    /// The route template (such as `/get/{key}`), never the raw path.
    pub route: String,
    pub status: u16,
    /// What was wrong, with what the client sent described rather than
    /// repeated (such as "got a JSON string of 9 characters").
    pub detail: String,
}
