//! The server: `GET /stats`, `GET /health`, `POST /compact`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::status;

status!(HealthStatus { Healthy = "healthy" });
status!(UnhealthyStatus { Unhealthy = "unhealthy" });
status!(CompactStatus {
    CompactionStarted = "compaction_started",
    CompactionAlreadyRunning = "compaction_already_running",
});

/// Counters of one namespace.
// The seed's Python server sends only the hits, misses and keys: the rest
// default to 0 when decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamespaceStats {
    pub cache_hits: u64,
    pub cache_misses: u64,
    #[serde(default)]
    #[schema(required = true)]
    pub evictions: u64,
    /// Keys removed because their TTL ran out.
    #[serde(default)]
    #[schema(required = true)]
    pub expirations: u64,
    pub total_keys: usize,
    #[serde(default)]
    #[schema(required = true)]
    pub used_bytes: u64,
}

/// The answer of `GET /stats`.
// The seed's shape (the totals and `namespaces`) and this server's
// additions, in alphabetical order; what the seed's Python server does not
// send defaults when decoded. The names are borrowed when the server
// encodes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatsAnswer<'a> {
    pub cache_hits: u64,
    pub cache_misses: u64,
    #[serde(default)]
    #[schema(required = true)]
    pub default_namespace: NamespaceStats,
    #[serde(default)]
    #[schema(required = true)]
    pub evictions: u64,
    /// Keys removed because their TTL ran out.
    #[serde(default)]
    #[schema(required = true)]
    pub expirations: u64,
    /// Seconds since the Unix epoch, or null.
    pub last_compaction: Option<f64>,
    /// Bytes in the write-ahead log; absent for a backend that keeps none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_size: Option<u64>,
    /// null: unlimited.
    pub max_bytes: Option<u64>,
    /// null: unlimited.
    pub max_keys: Option<u64>,
    /// Only with `?ns=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Cow<'a, str>>,
    /// Only with `?ns=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_stats: Option<NamespaceStats>,
    /// Named namespaces holding at least one live key.
    pub namespaces: BTreeMap<Cow<'a, str>, NamespaceStats>,
    /// Every namespace's live keys; with `?ns=`, that namespace's.
    pub total_keys: usize,
    #[serde(default)]
    #[schema(required = true)]
    pub uptime_seconds: f64,
    #[serde(default)]
    #[schema(required = true)]
    pub used_bytes: u64,
}

/// The answer of `GET /health` while the server can write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthAnswer {
    /// Only with `?ns=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub status: HealthStatus,
    /// Live keys: every namespace's, or with `?ns=` that namespace's.
    pub store_size: usize,
}

/// `/health` when the write-ahead log cannot be written: writes are
/// refused with 503 until it can; a load balancer should take the node out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnhealthyAnswer {
    /// Why, and that writes are refused meanwhile.
    pub detail: String,
    pub status: UnhealthyStatus,
}

/// The answer of `POST /compact`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CompactAnswer {
    pub status: CompactStatus,
}
