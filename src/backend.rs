//! The interface between the HTTP layer and whatever stores the data.
//!
//! Today one implementation exists, [`Db`]: the in-memory engine of
//! [`crate::store`] (and its write-ahead log). Another backend (a remote
//! shard, a disk-based engine) can sit behind the same HTTP API by
//! implementing [`KvBackend`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use crate::store::{NamespaceStats, Store, StoreError, StoreStats};

/// A write's durability: awaiting it returns once the write is as durable
/// as the server's policy promises.
///
/// Why a boxed future rather than a channel type: it lets each backend
/// decide what "durable" means (a local log sync, a replica's ack) without
/// the HTTP layer knowing.
#[must_use = "a write is only acknowledged once its commit resolves"]
pub struct Commit(Option<Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>>);

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
    pub evictions: u64,
    /// Bytes in the write-ahead log.
    pub log_size: u64,
    /// When the log was last compacted, seconds since the Unix epoch.
    pub last_compaction: Option<f64>,
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

    fn stats(&self) -> BackendStats;
}

/// The engine, kept in memory, behind [`KvBackend`].
pub struct Db {
    store: Arc<Store>,
    started: Instant,
}

impl Db {
    pub fn new(store: Arc<Store>) -> Self {
        Db {
            store,
            started: Instant::now(),
        }
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

impl KvBackend for Db {
    fn set(
        &self,
        namespace: Option<&str>,
        key: &str,
        value: &str,
        ttl_secs: Option<u64>,
    ) -> Result<Commit, StoreError> {
        let expires_at = ttl_secs.map(|ttl| crate::store::now_ms() + ttl * 1000);
        self.store.set(namespace, key, value, expires_at)?;
        Ok(Commit::done())
    }

    fn get_into(
        &self,
        namespace: Option<&str>,
        key: &str,
        out: &mut Vec<u8>,
    ) -> Result<bool, StoreError> {
        self.store.get_into(namespace, key, out)
    }

    fn delete(&self, namespace: Option<&str>, key: &str) -> Result<Option<Commit>, StoreError> {
        Ok(self.store.delete(namespace, key)?.map(|_| Commit::done()))
    }

    fn clear_namespace(&self, namespace: &str) -> Result<(usize, Commit), StoreError> {
        let (deleted, _) = self.store.clear_namespace(namespace)?;
        Ok((deleted, Commit::done()))
    }

    fn namespaces(&self) -> Vec<String> {
        self.store.namespaces()
    }

    fn namespace_stats(&self, namespace: Option<&str>) -> Result<NamespaceStats, StoreError> {
        self.store.namespace_stats(namespace)
    }

    fn stats(&self) -> BackendStats {
        BackendStats {
            store: self.store.stats(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            ..BackendStats::default()
        }
    }
}
