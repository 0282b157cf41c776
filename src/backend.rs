//! The interface between the HTTP layer and whatever stores the data.
//!
//! Today one implementation exists, [`crate::embedded::EmbeddedBackend`]: the in-memory engine
//! of [`crate::store`] with its write-ahead log. The trait fits an
//! in-process store and not yet a remote one: only a write's durability is
//! awaited, while reads, deletes, clears, listings and figures answer at
//! once, and `namespaces()` and `stats()` cannot fail. [`BackendStats`] and
//! `compact()` speak the log's language (its size, compactions, sync
//! timings). A remote backend (a shard over the network) needs the
//! asynchronous, fallible interface that is the next step.

use crate::store::{KeyPage, Limit, NamespaceStats, QuotaReport, StoreError, StoreStats};
use crate::wal::SyncSnapshot;
use std::future::Future;
use std::pin::Pin;

/// A write's durability: awaiting it returns once the write is as durable
/// as the server's policy promises.
///
/// Why a boxed future rather than a channel type: it lets each backend
/// decide what "durable" means (a local log sync, a replica's ack) without
/// the HTTP layer knowing.
#[must_use = "a write is only acknowledged once its commit resolves"]
pub struct Commit(Option<DurabilityWait>);

type DurabilityWait = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

impl Commit {
    /// A write that is already as durable as it will get.
    pub fn done() -> Self {
        Commit(None)
    }

    pub fn pending(wait: impl Future<Output = Result<(), StoreError>> + Send + 'static) -> Self {
        Commit(Some(Box::pin(wait)))
    }

    pub async fn durable(self) -> Result<(), StoreError> {
        match self.0 {
            None => Ok(()),
            Some(wait) => wait.await,
        }
    }
}

/// Counters of the store and of its persistence, for `/stats`.
#[derive(Debug, Clone, Default)]
pub struct BackendStats {
    pub store: StoreStats,
    /// The store's bounds (`None`: unlimited).
    pub max_bytes: Option<u64>,
    pub max_keys: Option<u64>,
    /// Bytes in the write-ahead log.
    pub log_size: u64,
    /// When the log was last compacted, seconds since the Unix epoch.
    pub last_compaction: Option<f64>,
    /// Compactions finished since the start.
    pub compactions: u64,
    /// How long the log's syncs have taken.
    pub log_syncs: SyncSnapshot,
    pub uptime_seconds: f64,
}

/// What the HTTP API needs from a store. Namespaces are `None` for the
/// default namespace. Values are JSON text.
pub trait KvBackend: Send + Sync + 'static {
    fn set(
        &self,
        namespace: Option<&str>,
        key: &str,
        value: &str,
        ttl_secs: Option<u64>,
    ) -> Result<Commit, StoreError>;

    /// Appends the value's JSON text to `out`; false when the key is absent.
    fn get_into(
        &self,
        namespace: Option<&str>,
        key: &str,
        out: &mut Vec<u8>,
    ) -> Result<bool, StoreError>;

    /// `None` when the key did not exist.
    fn delete(&self, namespace: Option<&str>, key: &str) -> Result<Option<Commit>, StoreError>;

    /// Returns how many keys were deleted.
    fn clear_namespace(&self, namespace: &str) -> Result<(usize, Commit), StoreError>;

    /// Named namespaces holding at least one live key, sorted.
    fn namespaces(&self) -> Vec<String>;

    fn namespace_stats(&self, namespace: Option<&str>) -> Result<NamespaceStats, StoreError>;

    /// A page of a namespace's keys, in order, after `cursor`.
    fn list_keys(
        &self,
        namespace: Option<&str>,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage, StoreError>;

    /// Every figure of the whole server: O(namespaces), so the HTTP layer
    /// gathers it off its request workers (`http::views`).
    fn stats(&self) -> BackendStats;

    /// The figures of the named namespaces `names` only: those holding
    /// live keys, totals over them, and of the server-wide figures only the
    /// uptime. O(names) however many namespaces exist, for a tenant.
    fn scoped_stats(&self, names: &[String]) -> BackendStats;

    /// A namespace's quota and usage.
    fn quota(&self, namespace: Option<&str>) -> Result<QuotaReport, StoreError>;

    /// Replaces a namespace's quota until the next start.
    fn set_quota(&self, namespace: Option<&str>, quota: Limit) -> Result<QuotaReport, StoreError>;

    /// Starts rewriting the persistent form down to the live data, in the
    /// background; false when a rewrite is already running.
    fn compact(&self) -> bool;

    /// Why writes are refused now, if they are (the log cannot be written):
    /// `/health` then reports the server unhealthy.
    fn write_outage(&self) -> Option<String>;
}
