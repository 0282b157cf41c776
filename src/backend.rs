//! The interface between the HTTP layer and whatever stores the data.
//!
//! Every operation is asynchronous and may fail with a [`BackendError`], so
//! that a store across the network (Redis or Redis Cluster,
//! [`crate::redis_backend`]) fits behind it as well as the embedded engine
//! ([`crate::embedded`]) does.
//!
//! # Contracts a backend must meet
//!
//! - **Namespaces.** `None` is the default namespace; names are checked by
//!   the backend ([`crate::store::validate_namespace`]'s rules) and a bad one
//!   is [`StoreError::InvalidNamespace`]. Values are JSON text, stored and
//!   returned byte for byte.
//! - **Atomicity.** `set`, `delete` and `set_quota` are atomic per key (or
//!   per namespace for a quota): a reader sees the old value or the new one,
//!   never a mix. `clear_namespace` need not be atomic against concurrent
//!   writers to the same namespace: a key written while it runs may survive;
//!   every key present when it began and not rewritten is gone when it
//!   returns. Nothing spans two namespaces.
//! - **Durability.** A write's [`Commit`] resolves once the write is as
//!   durable as the backend promises; the HTTP layer acknowledges only then.
//!   A refused write changes nothing.
//! - **Batches.** [`KvBackend::batch`] runs its ops one by one, each as
//!   its single operation would run, succeeding or failing alone.
//!   [`KvBackend::transact`] runs them as one transaction in one
//!   namespace: every op is applied or none is, and no other request sees
//!   a part of it; the first op that cannot be applied (a condition, an
//!   increment of a non-integer) is [`StoreError::Aborted`], naming it.
//!   Both resolve once their writes are as durable as a single write's
//!   commit, and both may take their ops in one step (one log wait, one
//!   round trip): that is what they are for.
//! - **Expiry.** A key whose TTL has passed is never returned by `get_into`
//!   nor listed. Counts (`namespace_stats`, `stats`, `namespaces`) may still
//!   include keys that expired but were not yet reaped: they are exact for
//!   live keys and may overcount by keys expired since the last reaping.
//! - **Listing.** `list_keys` returns keys in ascending byte order of the
//!   key. A cursor is the last key of the previous page, opaque to clients:
//!   the next page holds the keys strictly greater than it. Keys present
//!   for the whole listing appear exactly once; keys written or deleted
//!   meanwhile may or may not appear.
//! - **Moving data.** `export_page` pages through a namespace under the
//!   listing's contract, with each key's value and absolute deadline, and
//!   counts no lookup. `import_records` stores records in order as `set`
//!   would (limits and quotas included) with their absolute deadlines,
//!   skips those already past, and stops at the first it must refuse:
//!   what precedes it stays stored, one [`Commit`] covering it all.
//! - **Failures.** A store that cannot be reached answers
//!   [`BackendError::Unavailable`], one too slow [`BackendError::TimedOut`]:
//!   the HTTP layer answers both with 503 and `Retry-After`, never 500.
//!
//! Persistence (a log's size, compaction, sync timings) is an optional
//! capability: [`BackendStats::persistence`] is `None` and
//! [`KvBackend::compact`] answers [`BackendError::Unsupported`] for a
//! backend without one.
//!
//! # Dispatch
//!
//! [`Backend`] is an enum over the implementations, not a `dyn` trait:
//! `async` methods of a trait object would return boxed futures, one
//! allocation per call on the GET path. With the enum, the embedded
//! backend's futures are plain state machines on the caller's stack that
//! complete at their first poll: no allocation, lock or thread hop is added
//! (measured in docs/BENCHMARKS.md).

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use crate::embedded::EmbeddedBackend;
use crate::feed::{FeedItem, Retention, Watcher};
use crate::memory::MemoryBackend;
use crate::redis_backend::{RedisBackend, RedisWatcher};
use crate::store::{
    BatchOp, Condition, KeyPage, Limit, NamespaceStats, Outcome, QuotaReport, Record, RecordPage,
    StoreError, StoreStats,
};
use crate::wal::SyncSnapshot;

/// Why a backend could not carry out an operation.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BackendError {
    /// The store refuses the operation itself: a bad name, a limit, a log
    /// that cannot be written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store cannot be reached.
    #[error("the storage backend is unavailable ({detail})")]
    Unavailable { detail: String },
    /// The store did not answer in time.
    #[error("the storage backend did not answer within {} ms", after.as_millis())]
    TimedOut { after: Duration },
    /// The write was applied, but fewer replicas than asked for confirmed
    /// it in time (Redis with `--redis-wait-replicas`): it may be lost if
    /// its master fails before they catch up.
    #[error(
        "the write was applied on the Redis master but confirmed by {confirmed} of the \
         {wanted} replicas required (--redis-wait-replicas) within {} ms",
        after.as_millis()
    )]
    NotReplicated {
        confirmed: u32,
        wanted: u32,
        after: Duration,
    },
    /// The backend lacks the capability the operation needs.
    #[error("this server's storage backend ({backend}) does not support {capability}")]
    Unsupported {
        backend: &'static str,
        capability: &'static str,
    },
}

/// A write's durability: awaiting it returns once the write is as durable
/// as the server's policy promises.
///
/// Why a boxed future rather than a channel type: it lets each backend
/// decide what "durable" means (a local log sync, a replica's ack) without
/// the HTTP layer knowing.
#[must_use = "a write is only acknowledged once its commit resolves"]
pub struct Commit(Option<DurabilityWait>);

type DurabilityWait = Pin<Box<dyn Future<Output = Result<(), BackendError>> + Send>>;

impl Commit {
    /// A write that is already as durable as it will get.
    pub fn done() -> Self {
        Commit(None)
    }

    pub fn pending(wait: impl Future<Output = Result<(), BackendError>> + Send + 'static) -> Self {
        Commit(Some(Box::pin(wait)))
    }

    pub async fn durable(self) -> Result<(), BackendError> {
        match self.0 {
            None => Ok(()),
            Some(wait) => wait.await,
        }
    }
}

/// Counters of the store, for `/stats` and `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct BackendStats {
    pub store: StoreStats,
    /// The store's bounds (`None`: unlimited).
    pub max_bytes: Option<u64>,
    pub max_keys: Option<u64>,
    /// The figures of the persistent form, for a backend that keeps one.
    pub persistence: Option<PersistenceStats>,
    pub uptime_seconds: f64,
}

/// The figures of a backend that keeps a write-ahead log.
#[derive(Debug, Clone, Default)]
pub struct PersistenceStats {
    /// Bytes in the log.
    pub log_size: u64,
    /// When the log was last compacted, seconds since the Unix epoch.
    pub last_compaction: Option<f64>,
    /// Compactions finished since the start.
    pub compactions: u64,
    /// How long the log's syncs have taken.
    pub log_syncs: SyncSnapshot,
    /// Records written by the appending worker itself, and by the log's
    /// writer thread (src/wal/writer.rs, "Inline writes").
    pub records_inline: u64,
    pub records_by_writer: u64,
}

/// What [`KvBackend::import_records`] did with a run of records.
#[must_use = "the records are only acknowledged once the commit resolves"]
pub struct Imported {
    /// Records dealt with from the start of the run: stored, or skipped
    /// because their deadline had passed.
    pub applied: usize,
    /// Of those, how many were stored.
    pub stored: usize,
    /// The durability of what was stored.
    pub commit: Commit,
    /// Why record number `applied` was refused; `None` when every record
    /// was applied. Nothing after it was tried.
    pub refused: Option<BackendError>,
}

impl Imported {
    /// The outcome of a run refused before any record was stored.
    pub fn refused(error: BackendError) -> Self {
        Imported {
            applied: 0,
            stored: 0,
            commit: Commit::done(),
            refused: Some(error),
        }
    }
}

/// Whether the backend can take writes now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// Writes are refused (a log that cannot be written, a store out of
    /// reach); `/health` then answers 503 with `detail`, which says what
    /// failed, never where: `/health` needs no token.
    WritesRefused {
        detail: String,
    },
}

/// What the HTTP API needs from a store. See the module's documentation
/// for the contracts.
pub trait KvBackend: Send + Sync + 'static {
    fn set(
        &self,
        namespace: Option<&str>,
        key: &str,
        value: &str,
        ttl_secs: Option<u64>,
    ) -> impl Future<Output = Result<Commit, BackendError>> + Send;

    /// Appends the value's JSON text to `out`; false when the key is absent
    /// (or expired), and then `out` is unchanged.
    fn get_into(
        &self,
        namespace: Option<&str>,
        key: &str,
        out: &mut Vec<u8>,
    ) -> impl Future<Output = Result<bool, BackendError>> + Send;

    /// `None` when the key did not exist.
    fn delete(
        &self,
        namespace: Option<&str>,
        key: &str,
    ) -> impl Future<Output = Result<Option<Commit>, BackendError>> + Send;

    /// Adds `by` to the integer under `key` and returns the sum, atomically
    /// (concurrent increments never lose an update). A missing or expired
    /// key counts from 0. The key keeps its TTL unless `ttl_secs` gives
    /// one. A value that is not an integer ([`StoreError::NotAnInteger`])
    /// or a sum past `i64` ([`StoreError::Overflow`]) changes nothing.
    fn incr(
        &self,
        namespace: Option<&str>,
        key: &str,
        by: i64,
        ttl_secs: Option<u64>,
    ) -> impl Future<Output = Result<(i64, Commit), BackendError>> + Send;

    /// [`KvBackend::set`] if `condition` holds for the key's current value
    /// ([`crate::store::etag_of`]), checked and written atomically; else
    /// [`StoreError::ConditionFailed`] with the current tag.
    fn set_if(
        &self,
        namespace: Option<&str>,
        key: &str,
        value: &str,
        ttl_secs: Option<u64>,
        condition: Condition,
    ) -> impl Future<Output = Result<Commit, BackendError>> + Send;

    /// [`KvBackend::delete`] if `condition` holds, atomically; else
    /// [`StoreError::ConditionFailed`].
    fn delete_if(
        &self,
        namespace: Option<&str>,
        key: &str,
        condition: Condition,
    ) -> impl Future<Output = Result<Option<Commit>, BackendError>> + Send;

    /// Milliseconds before `key` expires: `None` when it is absent (or
    /// expired), `Some(None)` when it never expires.
    fn ttl_ms(
        &self,
        namespace: Option<&str>,
        key: &str,
    ) -> impl Future<Output = Result<Option<Option<u64>>, BackendError>> + Send;

    /// Gives `key` a TTL of `ttl_secs` from now (`None`: never expires),
    /// keeping its value, atomically; `None` when the key is absent.
    fn expire(
        &self,
        namespace: Option<&str>,
        key: &str,
        ttl_secs: Option<u64>,
    ) -> impl Future<Output = Result<Option<Commit>, BackendError>> + Send;

    /// Runs `ops` in `namespace` one by one; the outcome of each, in order.
    /// `Err` only when the whole batch is refused (a bad namespace, a
    /// store out of reach). Resolves once every write is durable.
    fn batch(
        &self,
        namespace: Option<&str>,
        ops: &[BatchOp],
    ) -> impl Future<Output = Result<Vec<Result<Outcome, BackendError>>, BackendError>> + Send;

    /// Runs `ops` in `namespace` as one transaction (see the module's
    /// contracts); the outcome of each, in order. Resolves once its writes
    /// are durable.
    fn transact(
        &self,
        namespace: Option<&str>,
        ops: &[BatchOp],
    ) -> impl Future<Output = Result<Vec<Outcome>, BackendError>> + Send;

    /// Deletes every key of a named namespace; returns how many.
    fn clear_namespace(
        &self,
        namespace: &str,
    ) -> impl Future<Output = Result<(usize, Commit), BackendError>> + Send;

    fn namespace_stats(
        &self,
        namespace: Option<&str>,
    ) -> impl Future<Output = Result<NamespaceStats, BackendError>> + Send;

    /// A page of at most `limit` keys starting with `prefix`, in order,
    /// after `cursor`.
    fn list_keys(
        &self,
        namespace: Option<&str>,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<KeyPage, BackendError>> + Send;

    /// A page of at most `limit` live keys after `cursor`, in key order,
    /// with their values and absolute deadlines, for an export; it ends
    /// early after the record that brings its keys and values to
    /// [`crate::store::PAGE_BYTES`]. Reads count no hit or miss and mark
    /// nothing used.
    fn export_page(
        &self,
        namespace: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<RecordPage, BackendError>> + Send;

    /// Stores `records` in order, each as [`KvBackend::set`] would but with
    /// its absolute deadline, skipping those whose deadline has passed;
    /// stops at the first record refused (see [`Imported`]).
    fn import_records(
        &self,
        namespace: Option<&str>,
        records: &[Record],
    ) -> impl Future<Output = Imported> + Send;

    /// Every figure of the whole server: O(namespaces), so the HTTP layer
    /// gathers it off its request workers (`http::views`).
    fn stats(&self) -> impl Future<Output = Result<BackendStats, BackendError>> + Send;

    /// The figures of the named namespaces `names` only: those holding
    /// live keys, totals over them, and of the server-wide figures only the
    /// uptime. O(names) however many namespaces exist, for a tenant.
    fn scoped_stats(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<BackendStats, BackendError>> + Send;

    /// A namespace's quota and usage.
    fn quota(
        &self,
        namespace: Option<&str>,
    ) -> impl Future<Output = Result<QuotaReport, BackendError>> + Send;

    /// Replaces a namespace's quota: until the next start (embedded), or
    /// kept in the store for every node (Redis).
    fn set_quota(
        &self,
        namespace: Option<&str>,
        quota: Limit,
    ) -> impl Future<Output = Result<QuotaReport, BackendError>> + Send;

    /// Starts rewriting the persistent form down to the live data, in the
    /// background; false when a rewrite is already running.
    /// [`BackendError::Unsupported`] for a backend without one.
    fn compact(&self) -> impl Future<Output = Result<bool, BackendError>> + Send;

    fn health(&self) -> impl Future<Output = Health> + Send;

    /// A feed of the namespace's changes ([`crate::feed`]): from just
    /// after the event id `from` (a client's `Last-Event-ID`) when the
    /// backend still holds what follows it, else from now after a `reset`;
    /// from now when `from` is `None`. A change is in the feed once it is
    /// applied, in the order of its key's changes; ids grow within the
    /// namespace.
    fn watch(
        &self,
        namespace: Option<&str>,
        from: Option<&str>,
    ) -> impl Future<Output = Result<ChangeStream, BackendError>> + Send;
}

/// A watcher's stream of changes, from any backend.
pub enum ChangeStream {
    /// A cursor into the process's retention ring (embedded, memory).
    Local(Watcher),
    /// A Redis stream read on a connection of its own.
    Redis(RedisWatcher),
}

impl ChangeStream {
    /// The next items, waiting up to about `wait` for some: an empty
    /// vector when nothing came (time for a heartbeat).
    pub async fn next(&mut self, wait: Duration) -> Result<Vec<FeedItem>, BackendError> {
        match self {
            ChangeStream::Local(watcher) => Ok(watcher.next(wait).await),
            ChangeStream::Redis(watcher) => watcher.next(wait).await,
        }
    }
}

/// The backends this server can run on, chosen by `--backend`.
pub enum Backend {
    Embedded(EmbeddedBackend),
    /// For tests only (`--backend memory`).
    Memory(MemoryBackend),
    /// One Redis server or a Redis Cluster (`--backend redis://...`).
    Redis(RedisBackend),
}

/// Forwards a call to the backend inside, and awaits it.
///
/// A remote backend's future is boxed. Why: an enum's future is as large
/// as its largest variant's, and the pipeline allocates and copies every
/// request's whole future once; the Redis client's futures, several
/// kilobytes, made every GET of the embedded backend pay for them
/// (docs/BENCHMARKS.md, "The size of a request's future"). One allocation
/// is nothing beside a network round trip.
macro_rules! dispatch {
    ($self:ident, $backend:ident => $call:expr) => {
        match $self {
            Backend::Embedded($backend) => $call.await,
            Backend::Memory($backend) => $call.await,
            Backend::Redis($backend) => Box::pin($call).await,
        }
    };
}

impl KvBackend for Backend {
    async fn set(
        &self,
        namespace: Option<&str>,
        key: &str,
        value: &str,
        ttl_secs: Option<u64>,
    ) -> Result<Commit, BackendError> {
        dispatch!(self, b => b.set(namespace, key, value, ttl_secs))
    }

    async fn get_into(
        &self,
        namespace: Option<&str>,
        key: &str,
        out: &mut Vec<u8>,
    ) -> Result<bool, BackendError> {
        dispatch!(self, b => b.get_into(namespace, key, out))
    }

    async fn delete(
        &self,
        namespace: Option<&str>,
        key: &str,
    ) -> Result<Option<Commit>, BackendError> {
        dispatch!(self, b => b.delete(namespace, key))
    }

    async fn clear_namespace(&self, namespace: &str) -> Result<(usize, Commit), BackendError> {
        dispatch!(self, b => b.clear_namespace(namespace))
    }

    async fn batch(
        &self,
        namespace: Option<&str>,
        ops: &[BatchOp],
    ) -> Result<Vec<Result<Outcome, BackendError>>, BackendError> {
        dispatch!(self, b => b.batch(namespace, ops))
    }

    async fn transact(
        &self,
        namespace: Option<&str>,
        ops: &[BatchOp],
    ) -> Result<Vec<Outcome>, BackendError> {
        dispatch!(self, b => b.transact(namespace, ops))
    }

    async fn namespace_stats(
        &self,
        namespace: Option<&str>,
    ) -> Result<NamespaceStats, BackendError> {
        dispatch!(self, b => b.namespace_stats(namespace))
    }

    async fn list_keys(
        &self,
        namespace: Option<&str>,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage, BackendError> {
        dispatch!(self, b => b.list_keys(namespace, prefix, cursor, limit))
    }

    async fn export_page(
        &self,
        namespace: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage, BackendError> {
        dispatch!(self, b => b.export_page(namespace, cursor, limit))
    }

    async fn import_records(&self, namespace: Option<&str>, records: &[Record]) -> Imported {
        dispatch!(self, b => b.import_records(namespace, records))
    }

    async fn stats(&self) -> Result<BackendStats, BackendError> {
        dispatch!(self, b => b.stats())
    }

    async fn scoped_stats(&self, names: &[String]) -> Result<BackendStats, BackendError> {
        dispatch!(self, b => b.scoped_stats(names))
    }

    async fn quota(&self, namespace: Option<&str>) -> Result<QuotaReport, BackendError> {
        dispatch!(self, b => b.quota(namespace))
    }

    async fn set_quota(
        &self,
        namespace: Option<&str>,
        quota: Limit,
    ) -> Result<QuotaReport, BackendError> {
        dispatch!(self, b => b.set_quota(namespace, quota))
    }

    async fn incr(
        &self,
        namespace: Option<&str>,
        key: &str,
        by: i64,
        ttl_secs: Option<u64>,
    ) -> Result<(i64, Commit), BackendError> {
        dispatch!(self, b => b.incr(namespace, key, by, ttl_secs))
    }

    async fn ttl_ms(
        &self,
        namespace: Option<&str>,
        key: &str,
    ) -> Result<Option<Option<u64>>, BackendError> {
        dispatch!(self, b => b.ttl_ms(namespace, key))
    }

    async fn set_if(
        &self,
        namespace: Option<&str>,
        key: &str,
        value: &str,
        ttl_secs: Option<u64>,
        condition: Condition,
    ) -> Result<Commit, BackendError> {
        dispatch!(self, b => b.set_if(namespace, key, value, ttl_secs, condition))
    }

    async fn delete_if(
        &self,
        namespace: Option<&str>,
        key: &str,
        condition: Condition,
    ) -> Result<Option<Commit>, BackendError> {
        dispatch!(self, b => b.delete_if(namespace, key, condition))
    }

    async fn expire(
        &self,
        namespace: Option<&str>,
        key: &str,
        ttl_secs: Option<u64>,
    ) -> Result<Option<Commit>, BackendError> {
        dispatch!(self, b => b.expire(namespace, key, ttl_secs))
    }

    async fn compact(&self) -> Result<bool, BackendError> {
        dispatch!(self, b => b.compact())
    }

    async fn health(&self) -> Health {
        dispatch!(self, b => b.health())
    }

    async fn watch(
        &self,
        namespace: Option<&str>,
        from: Option<&str>,
    ) -> Result<ChangeStream, BackendError> {
        dispatch!(self, b => b.watch(namespace, from))
    }
}

impl Backend {
    /// How many events each namespace's change feed keeps
    /// (`--watch-retention`).
    pub fn set_feed_retention(&self, events: usize) {
        let retention = Retention {
            events,
            ..Retention::default()
        };
        match self {
            Backend::Embedded(backend) => backend.store().set_feed_retention(retention),
            Backend::Memory(backend) => backend.set_feed_retention(retention),
            Backend::Redis(backend) => backend.set_feed_retention(events),
        }
    }

    /// Finishes what the backend holds in flight (the embedded log: writes
    /// out and syncs what is buffered); later writes are refused.
    pub fn shutdown(&self) {
        match self {
            Backend::Embedded(backend) => backend.shutdown(),
            Backend::Memory(_) | Backend::Redis(_) => {}
        }
    }
}

impl From<EmbeddedBackend> for Backend {
    fn from(backend: EmbeddedBackend) -> Self {
        Backend::Embedded(backend)
    }
}

/// The future's output if it is ready at its first poll, else `None` (and
/// the future is dropped). For the embedded backend, whose operations never
/// wait, this runs them inline without a runtime's help.
pub fn ready_now<F: Future>(future: F) -> Option<F::Output> {
    let future = pin!(future);
    match future.poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// Runs a future to completion on this thread, parking it meanwhile. For
/// the views thread (src/http/views.rs), which is no runtime worker; the
/// caller enters the runtime first if the future needs its reactor.
pub fn wait_here<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}
