//! Snapshots of the store's counters, as reported by `/stats`.

use std::collections::BTreeMap;

use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NamespaceStats {
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub total_keys: usize,
    /// Bytes accounted to the namespace's entries (see `ENTRY_OVERHEAD`).
    pub used_bytes: u64,
    pub evictions: u64,
    /// Keys removed because their TTL ran out.
    pub expirations: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Live keys in every namespace, the default one included.
    pub total_keys: usize,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub used_bytes: u64,
    pub evictions: u64,
    pub expirations: u64,
    pub default_namespace: NamespaceStats,
    /// Named namespaces holding at least one live key.
    pub namespaces: BTreeMap<String, NamespaceStats>,
}
