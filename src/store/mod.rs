//! The storage engine: namespaces of keys holding JSON values, with TTLs and
//! per-namespace statistics. No HTTP and no files in here: the engine is a
//! plain Rust API, and every change it makes is handed, in order, to a
//! [`Journal`] (the write-ahead log, or nothing).
//!
//! Layout:
//! - [`namespace`]: name rules and the sharded key space of one namespace;
//! - [`shard`]: one shard's table and its expiry index;
//! - [`entry`]: an entry packed into one allocation;
//! - [`thin_bytes`]: that allocation behind an 8-byte handle;
//! - [`undo`]: taking back a mutation the journal could not keep;
//! - [`clock`]: wall-clock milliseconds, and the access clock of LRU;
//! - [`expire`]: the active expiry cycle;
//! - [`evict`]: memory limits, quotas and sampled-LRU eviction;
//! - [`sampling`]: picking namespaces for eviction by their bytes;
//! - [`registry`]: the store's usage and its indexes of namespaces;
//! - [`reclaim`]: freeing namespaces whose last key went;
//! - [`lazy_free`]: the thread that frees what a namespace clear took away;
//! - [`scan`]: listing a namespace's keys page by page;
//! - [`stats`]: the counters reported by `/stats`;
//! - [`counter`]: atomic increments of integer values;
//! - [`condition`]: conditional writes (`If-Match`, `If-None-Match`);
//! - [`ttl`]: a key's TTL read and changed on its own;
//! - [`batch`]: the ops of a batch and the plan of a transaction;
//! - [`bulk`]: replay's writes, a shard locked once for many of them;
//! - [`transaction`]: a transaction applied under its shards' locks and
//!   journaled as one record.

pub mod batch;
mod bulk;
mod clock;
mod condition;
mod counter;
mod entry;
mod evict;
mod expire;
mod export;
mod lazy_free;
mod namespace;
mod reclaim;
mod registry;
mod sampling;
mod scan;
mod shard;
mod stats;
mod thin_bytes;
mod transaction;
mod ttl;
mod undo;

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crossbeam_utils::sync::ShardedLock;
use hashbrown::{DefaultHashBuilder, HashMap};

use crate::feed::{Change, ChangeKind, Feed, Feeds, Retention, Watcher};
pub use batch::{BatchOp, MAX_BATCH_OPS, OpKind, Outcome};
pub use bulk::ReplayedWrite;
use clock::access_of;
pub use clock::{deadline_in, now_ms};
pub use condition::{Condition, etag_of};
pub use counter::counter_value;
pub use evict::{EvictionPolicy, Limit, Limits, MAX_LIMIT, QuotaReport};
pub use expire::spawn_expiry_cycle;
pub use export::{PAGE_BYTES, Record, RecordPage};
pub use namespace::{MAX_NAMESPACE_LEN, validate_namespace};
pub use scan::{KeyPage, MAX_PAGE};
pub use stats::{NamespaceStats, StoreStats};
pub use undo::Undo;

use namespace::Namespace;
use registry::Registry;
use shard::Entry;
use undo::{Previous, UndoAction};

/// Errors of the engine. The HTTP layer maps each to a status code in one
/// place (`http::error`).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("namespace {name:?} {reason}; use 1 to 64 of A-Z a-z 0-9 _ . -")]
    InvalidNamespace { name: String, reason: &'static str },
    #[error("key must not be empty")]
    EmptyKey,
    #[error("key is {len} bytes, over the limit of {max} bytes")]
    KeyTooLong { len: usize, max: usize },
    #[error(
        "{scope} is at its limit of {limit}; delete keys, raise the limit, \
         or run with --eviction lru to evict the least recently used keys"
    )]
    LimitReached { scope: String, limit: String },
    #[error("the entry takes {size} bytes, more than the {max} bytes {scope} may hold in all")]
    TooLarge { scope: String, size: u64, max: u64 },
    #[error("the write-ahead log cannot be written ({0}); the write was not applied, retry later")]
    LogUnavailable(String),
    /// An increment of a value that is not an integer; names its JSON type.
    #[error(
        "the value is {found}, not an integer, so it cannot be incremented; set it to an integer first"
    )]
    NotAnInteger { found: &'static str },
    #[error(
        "the counter would pass the range of a 64-bit signed integer ({value} + {by}); nothing was changed"
    )]
    Overflow { value: i64, by: i64 },
    /// A conditional write whose condition does not hold; the key's
    /// current tag, `None` when it does not exist.
    #[error("{}", condition_failed(*current))]
    ConditionFailed { current: Option<u64> },
    /// A transaction that applied nothing because op `index` (of `key`)
    /// could not be applied, for `cause`.
    #[error(
        "op {index} (key {key:?}) {}; nothing in the transaction was applied",
        aborted_because(cause)
    )]
    Aborted {
        index: usize,
        key: String,
        cause: Box<StoreError>,
    },
}

impl StoreError {
    /// A transaction aborted at op `index`, on `key`.
    pub fn aborted(index: usize, key: &str, cause: StoreError) -> Self {
        StoreError::Aborted {
            index,
            key: key.to_owned(),
            cause: Box::new(cause),
        }
    }
}

/// Why a transaction's op could not be applied, in words that fit after
/// "op N (key K)".
fn aborted_because(cause: &StoreError) -> String {
    match cause {
        StoreError::ConditionFailed { current: Some(tag) } => format!(
            "failed its condition: the key's current ETag is \"{tag:016x}\" (if_match names \
             another, or if_absent was given); read it again and retry"
        ),
        StoreError::ConditionFailed { current: None } => {
            "failed its condition: the key does not exist (if_match needs it to)".into()
        }
        other => format!("failed: {other}"),
    }
}

fn condition_failed(current: Option<u64>) -> &'static str {
    match current {
        Some(_) => {
            "the key changed since the ETag was read (If-Match), or it exists (If-None-Match: *); \
             nothing was written: read it again (the current ETag is in the answer's header)"
        }
        None => "the key does not exist, so If-Match cannot match; nothing was written",
    }
}

/// Position of a record in the journal; callers wait for it to be durable.
pub type Lsn = u64;

/// One change to the store, as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation<'a> {
    Set {
        namespace: Option<&'a str>,
        key: &'a str,
        /// JSON text of the value.
        value: &'a str,
        /// Absolute deadline, milliseconds since the Unix epoch.
        expires_at: Option<u64>,
    },
    Delete {
        namespace: Option<&'a str>,
        key: &'a str,
    },
    /// A delete made to keep a memory limit.
    Evict {
        namespace: Option<&'a str>,
        key: &'a str,
    },
    ClearNamespace {
        namespace: &'a str,
    },
    /// The writes of one transaction (`Set`s and `Delete`s of one
    /// namespace), journaled as one record so that a replay applies all of
    /// them or none.
    Transaction {
        namespace: Option<&'a str>,
        writes: &'a [Mutation<'a>],
    },
}

/// What [`Store::visit_live`] shows its visitor.
pub enum Visit<'m, 'a> {
    Entry(&'m Mutation<'a>),
    /// A shard has been visited and unlocked.
    ShardDone,
}

/// Where the engine records its changes.
///
/// `append` is called right after the mutation is applied in memory, while
/// the shard (or, for a clear, every shard of the namespace) is still
/// locked, so the journal sees the mutations of one key in exactly the order
/// they are applied. An error refuses the mutation: the journal gives the
/// undo back and the engine reverts at once. A journal that accepts a
/// mutation but later fails to make it durable reverts it with the undo.
pub trait Journal: Send + Sync {
    fn append(&self, mutation: &Mutation<'_>, undo: Undo) -> Result<Lsn, (StoreError, Undo)>;
}

impl<J: Journal + ?Sized> Journal for Arc<J> {
    fn append(&self, mutation: &Mutation<'_>, undo: Undo) -> Result<Lsn, (StoreError, Undo)> {
        (**self).append(mutation, undo)
    }
}

/// A journal that records nothing, for a store kept only in memory.
pub struct NoJournal;

impl Journal for NoJournal {
    fn append(&self, _: &Mutation<'_>, undo: Undo) -> Result<Lsn, (StoreError, Undo)> {
        undo.discard();
        Ok(0)
    }
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub max_key_bytes: usize,
    pub limits: Limits,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_key_bytes: 1024,
            limits: Limits::default(),
        }
    }
}

pub struct Store {
    config: StoreConfig,
    default: Arc<Namespace>,
    /// Why a lock around a plain map: lookups vastly outnumber the
    /// creation of namespaces, and readers only hold it for a hash probe.
    /// Why a `ShardedLock` rather than a `RwLock`: every request on a named
    /// namespace takes it, and a `RwLock`'s one counter of readers is a
    /// cache line written by every core at every request; a `ShardedLock`
    /// gives each thread a lock of its own to read under, and a writer
    /// takes them all (docs/BENCHMARKS.md, "Cache lines every core wrote").
    named: ShardedLock<HashMap<Box<str>, Arc<Namespace>>>,
    hasher: DefaultHashBuilder,
    /// Bytes and entries of the whole store, and its indexes of
    /// namespaces.
    registry: Arc<Registry>,
    /// Quotas set while running (`PUT /quota`), which outlive the
    /// namespace they are for while it has no keys.
    runtime_quotas: RwLock<HashMap<Box<str>, evict::Limit>>,
    /// Attached once, after the log has been replayed into the store.
    journal: OnceLock<Box<dyn Journal>>,
    /// Misses on namespaces that do not exist; they count in the totals.
    unknown_namespace_misses: AtomicU64,
    /// Whether any limit is set: without one, writes skip every check.
    limits_enabled: AtomicBool,
    /// Serializes writes under `noeviction` with limits, so a limit is
    /// checked and filled in one step.
    admission: Mutex<()>,
    eviction_log: evict::EvictionLog,
    /// The change feeds of the watched namespaces (`GET /watch`).
    feeds: Feeds,
}

impl Store {
    /// A store that journals nothing until [`Store::attach_journal`].
    pub fn new(config: StoreConfig) -> Self {
        let registry = Arc::new(Registry::default());
        let default_quota = config.limits.quota_of(None);
        let default = Arc::new(Namespace::new(None, default_quota, registry.clone()));
        registry::lock(&registry.eviction).add(&default);
        Store {
            limits_enabled: AtomicBool::new(evict::limits_enabled(&config.limits)),
            admission: Mutex::new(()),
            eviction_log: evict::EvictionLog::default(),
            feeds: Feeds::default(),
            default,
            config,
            registry,
            runtime_quotas: RwLock::default(),
            named: ShardedLock::default(),
            hasher: DefaultHashBuilder::default(),
            journal: OnceLock::new(),
            unknown_namespace_misses: AtomicU64::new(0),
        }
    }

    /// A store in memory only.
    pub fn in_memory() -> Self {
        Store::new(StoreConfig::default())
    }

    pub fn with_journal(config: StoreConfig, journal: Box<dyn Journal>) -> Self {
        let store = Store::new(config);
        store.attach_journal(journal);
        store
    }

    /// Starts journaling every mutation; done once, after replay.
    pub fn attach_journal(&self, journal: Box<dyn Journal>) {
        if self.journal.set(journal).is_err() {
            panic!("a store's journal is attached once");
        }
    }

    /// Stores `value` (JSON text) under `key`, replacing any previous value
    /// and deadline.
    pub fn set(
        &self,
        namespace: Option<&str>,
        key: &str,
        value: &str,
        expires_at: Option<u64>,
    ) -> Result<Lsn, StoreError> {
        self.check_key(key)?;
        self.check_namespace(namespace)?;
        let mutation = Mutation::Set {
            namespace,
            key,
            value,
            expires_at,
        };
        self.apply(&mutation, true)
    }

    /// Appends the live value's JSON text to `out`; false when absent.
    pub fn get_into(
        &self,
        namespace: Option<&str>,
        key: &str,
        out: &mut Vec<u8>,
    ) -> Result<bool, StoreError> {
        self.check_namespace(namespace)?;
        let now = now_ms();
        let access = access_of(now);
        let found = self.with_namespace(namespace, |space| {
            let index = Namespace::shard_index(&self.hasher, key);
            let Some(mut shard) = space.existing_shard(index) else {
                space.record_lookup(false);
                return false;
            };
            let found = match shard.get(key, now, access) {
                Some(entry) => {
                    out.extend_from_slice(entry.value().as_bytes());
                    true
                }
                None => false,
            };
            shard.count_lookup(found);
            found
        });
        if found.is_none() {
            self.unknown_namespace_misses
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(found.unwrap_or(false))
    }

    /// Looks up every key of `keys` in one namespace and calls `found`
    /// with its position and its live value's JSON text (`None`: absent),
    /// in order: one clock read, one namespace lookup and one count of
    /// hits and misses for all of them (a batch's gets).
    pub fn get_each(
        &self,
        namespace: Option<&str>,
        keys: &[&str],
        mut found: impl FnMut(usize, Option<&str>),
    ) -> Result<(), StoreError> {
        self.check_namespace(namespace)?;
        let now = now_ms();
        let access = access_of(now);
        let looked_up = self.with_namespace(namespace, |space| {
            let mut hits = 0;
            for (i, key) in keys.iter().enumerate() {
                let index = Namespace::shard_index(&self.hasher, key);
                let mut shard = space.existing_shard(index);
                let entry = shard.as_mut().and_then(|shard| shard.get(key, now, access));
                hits += u64::from(entry.is_some());
                found(i, entry.map(Entry::value));
            }
            space.hits.fetch_add(hits, Ordering::Relaxed);
            (space.misses).fetch_add(keys.len() as u64 - hits, Ordering::Relaxed);
        });
        if looked_up.is_none() {
            (self.unknown_namespace_misses).fetch_add(keys.len() as u64, Ordering::Relaxed);
            (0..keys.len()).for_each(|i| found(i, None));
        }
        Ok(())
    }

    /// The live value under `key`, as JSON text.
    pub fn get(&self, namespace: Option<&str>, key: &str) -> Result<Option<String>, StoreError> {
        let mut out = Vec::new();
        let found = self.get_into(namespace, key, &mut out)?;
        Ok(found.then(|| String::from_utf8(out).expect("values are stored as str")))
    }

    /// Deletes `key`; `None` when it did not exist (nothing is journaled).
    pub fn delete(&self, namespace: Option<&str>, key: &str) -> Result<Option<Lsn>, StoreError> {
        self.check_namespace(namespace)?;
        self.remove(namespace, key, true)
    }

    /// Removes every key of a named namespace; returns how many live keys
    /// went, and the journal position when any did.
    pub fn clear_namespace(&self, name: &str) -> Result<(usize, Option<Lsn>), StoreError> {
        validate_namespace(name)?;
        self.clear(name, true)
    }

    /// Applies a mutation, and journals it when `journal` is true (it is
    /// false while replaying the journal itself).
    pub fn apply(&self, mutation: &Mutation<'_>, journal: bool) -> Result<Lsn, StoreError> {
        match *mutation {
            Mutation::Set { namespace, key, .. } => {
                let space = self.namespace_or_create(namespace);
                let index = Namespace::shard_index(&self.hasher, key);
                let _admission = self.admission();
                let shard = space.shard(index);
                self.write(&space, index, shard, mutation, journal)
            }
            Mutation::Delete { namespace, key } | Mutation::Evict { namespace, key } => {
                let Some(space) = self.existing_namespace(namespace) else {
                    return Ok(0);
                };
                let index = Namespace::shard_index(&self.hasher, key);
                Ok(self
                    .remove_in(&space, index, mutation, journal)?
                    .unwrap_or(0))
            }
            Mutation::ClearNamespace { namespace } => {
                Ok(self.clear(namespace, journal)?.1.unwrap_or(0))
            }
            // Only replay applies a journaled transaction, alone: its
            // writes one after the other are the transaction.
            Mutation::Transaction { writes, .. } => {
                debug_assert!(!journal, "transactions are journaled by Store::transact");
                for write in writes {
                    self.apply(write, false)?;
                }
                Ok(0)
            }
        }
    }

    /// Under `noeviction`, checking a limit and filling it must be one
    /// step, or concurrent writers could all pass it: this lock, taken
    /// before the shard's, makes it one.
    fn admission(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        (self.limited() && self.config.limits.policy == EvictionPolicy::Noeviction)
            .then(|| self.admission.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Stores the value of a `Set` mutation in `shard` (shard `index` of
    /// `space`, locked by the caller), within the limits, and journals it
    /// when `journal` is true.
    fn write(
        &self,
        space: &Arc<Namespace>,
        index: usize,
        mut shard: namespace::ShardGuard<'_>,
        mutation: &Mutation<'_>,
        journal: bool,
    ) -> Result<Lsn, StoreError> {
        let Mutation::Set {
            key,
            value,
            expires_at,
            ..
        } = *mutation
        else {
            unreachable!("write takes sets")
        };
        let now = now_ms();
        let entry = Entry::new(
            key,
            value,
            expires_at.and_then(NonZeroU64::new),
            access_of(now),
        );
        if self.limited() && journal {
            let old_size = shard.peek(key).map(Entry::size);
            self.check_limits(space, entry.size(), old_size)?;
        }
        let old = shard.insert(entry, now);
        if !journal {
            return Ok(0);
        }
        let undo = UndoAction::Restore {
            shard: index,
            previous: Previous::of(key, old),
        };
        let lsn = self.journal_or_revert(mutation, space, undo, &mut [shard])?;
        if self.limited() {
            self.make_room(space);
        }
        Ok(lsn)
    }

    /// Hands an applied mutation to the journal; if the journal refuses it,
    /// reverts it on the shards still locked by the caller.
    fn journal_or_revert<S: std::ops::DerefMut<Target = shard::Shard>>(
        &self,
        mutation: &Mutation<'_>,
        space: &Arc<Namespace>,
        undo: UndoAction,
        locked: &mut [S],
    ) -> Result<Lsn, StoreError> {
        let undo = Undo::new(space.clone(), undo);
        let appended = match self.journal.get() {
            Some(journal) => journal.append(mutation, undo),
            None => NoJournal.append(mutation, undo),
        };
        match appended {
            Ok(lsn) => {
                publish(space, locked, mutation);
                Ok(lsn)
            }
            Err((error, undo)) => {
                undo.into_action().revert_in(locked);
                Err(error)
            }
        }
    }

    fn remove(
        &self,
        namespace: Option<&str>,
        key: &str,
        journal: bool,
    ) -> Result<Option<Lsn>, StoreError> {
        let Some(space) = self.existing_namespace(namespace) else {
            return Ok(None);
        };
        let index = Namespace::shard_index(&self.hasher, key);
        self.remove_in(&space, index, &Mutation::Delete { namespace, key }, journal)
    }

    /// Removes the key of `mutation` (a delete or an eviction) from shard
    /// `index` of `space`; `None` when it was not there.
    fn remove_in(
        &self,
        space: &Arc<Namespace>,
        index: usize,
        mutation: &Mutation<'_>,
        journal: bool,
    ) -> Result<Option<Lsn>, StoreError> {
        let Some(shard) = space.existing_shard(index) else {
            return Ok(None);
        };
        self.remove_locked(space, index, shard, mutation, journal)
    }

    /// [`Store::remove_in`] on a shard the caller has locked.
    fn remove_locked(
        &self,
        space: &Arc<Namespace>,
        index: usize,
        mut shard: namespace::ShardGuard<'_>,
        mutation: &Mutation<'_>,
        journal: bool,
    ) -> Result<Option<Lsn>, StoreError> {
        let (Mutation::Delete { key, .. } | Mutation::Evict { key, .. }) = *mutation else {
            unreachable!("remove_locked takes deletes and evictions")
        };
        let Some(old) = shard.remove(key, now_ms()) else {
            return Ok(None);
        };
        if !journal {
            return Ok(Some(0));
        }
        let undo = UndoAction::Restore {
            shard: index,
            previous: Previous::Entry(old),
        };
        self.journal_or_revert(mutation, space, undo, &mut [shard])
            .map(Some)
    }

    /// Every shard is locked for the swap so the clear is atomic with
    /// respect to writers, but each lock is held for O(1): the old maps are
    /// freed afterwards, off the lock.
    fn clear(&self, name: &str, journal: bool) -> Result<(usize, Option<Lsn>), StoreError> {
        let Some(space) = self.named_namespace(name) else {
            return Ok((0, None));
        };
        let now = now_ms();
        let mut guards = space.lock_all();
        let deleted: usize = guards.iter().map(|s| s.live_len(now)).sum();
        if deleted == 0 {
            return Ok((0, None));
        }
        let taken: Vec<_> = guards.iter_mut().map(|s| s.take()).collect();
        if !journal {
            return Ok((deleted, None));
        }
        // The journal keeps the taken maps in the undo until the clear is
        // durable, then hands them to the reclaimer (lazy_free.rs).
        let mutation = Mutation::ClearNamespace { namespace: name };
        let undo = UndoAction::RestoreShards(taken);
        let lsn = self.journal_or_revert(&mutation, &space, undo, &mut guards)?;
        Ok((deleted, Some(lsn)))
    }

    /// A watcher of `namespace`'s changes, from the position `from` (an
    /// event id) or from now. Taken under the map's write lock, as a
    /// namespace's creation is, so the namespace found or created later
    /// carries the feed.
    pub fn watch(
        &self,
        namespace: Option<&str>,
        from: Option<&str>,
    ) -> Result<Watcher, StoreError> {
        self.check_namespace(namespace)?;
        let named = self.named.write().unwrap_or_else(|p| p.into_inner());
        let (watcher, feed) = self.feeds.watch(namespace, from);
        let space = match namespace {
            None => Some(&self.default),
            Some(name) => named.get(name),
        };
        if let Some(space) = space {
            space.feed.attach(Some(feed));
        }
        Ok(watcher)
    }

    /// How much each namespace's feed keeps (`--watch-retention`).
    pub fn set_feed_retention(&self, retention: Retention) {
        self.feeds.set_retention(retention);
    }

    /// Stops feeding the namespaces that nobody watched for `linger`.
    pub fn retire_idle_feeds(&self, linger: std::time::Duration) {
        let retired = self.feeds.retire_idle(linger);
        if retired.is_empty() {
            return;
        }
        let named = self.named.write().unwrap_or_else(|p| p.into_inner());
        for name in retired {
            // Watched again meanwhile: `watch` holds this lock too.
            if self.feeds.get(name.as_deref()).is_some() {
                continue;
            }
            let space = match name.as_deref() {
                None => Some(&self.default),
                Some(name) => named.get(name),
            };
            if let Some(space) = space {
                space.feed.attach(None);
            }
        }
    }

    /// Names of the named namespaces holding at least one live key, sorted.
    pub fn namespaces(&self) -> Vec<String> {
        let now = now_ms();
        let mut names: Vec<String> = self
            .named_snapshot()
            .into_iter()
            .filter(|(_, space)| space.live_len(now) > 0)
            .map(|(name, _)| name)
            .collect();
        names.sort_unstable();
        names
    }

    /// Live keys in one namespace (`None`: the default namespace).
    pub fn namespace_len(&self, namespace: Option<&str>) -> Result<usize, StoreError> {
        Ok(self.namespace_stats(namespace)?.total_keys)
    }

    pub fn namespace_stats(&self, namespace: Option<&str>) -> Result<NamespaceStats, StoreError> {
        self.check_namespace(namespace)?;
        let now = now_ms();
        Ok(self
            .with_namespace(namespace, |space| stats_of(space, now))
            .unwrap_or_default())
    }

    /// Live keys in the whole store.
    pub fn len(&self) -> usize {
        self.stats().total_keys
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters of the whole store: O(namespaces), never O(keys).
    pub fn stats(&self) -> StoreStats {
        // Listed before the retired counters are read: a namespace listed
        // cannot be freed meanwhile, so none is counted twice or never.
        let named = self.named_snapshot();
        let now = now_ms();
        let default_namespace = stats_of(&self.default, now);
        let retired = &self.registry.retired;
        let mut stats = StoreStats {
            cache_hits: retired.hits.load(Ordering::Relaxed),
            cache_misses: self.unknown_namespace_misses.load(Ordering::Relaxed)
                + retired.misses.load(Ordering::Relaxed),
            evictions: retired.evictions.load(Ordering::Relaxed),
            expirations: retired.expirations.load(Ordering::Relaxed),
            used_bytes: self.registry.usage.bytes(),
            default_namespace,
            ..StoreStats::default()
        };
        let add = |stats: &mut StoreStats, ns: &NamespaceStats| {
            stats.total_keys += ns.total_keys;
            stats.cache_hits += ns.cache_hits;
            stats.cache_misses += ns.cache_misses;
            stats.evictions += ns.evictions;
            stats.expirations += ns.expirations;
        };
        add(&mut stats, &default_namespace);
        for (name, space) in named {
            let ns = stats_of(&space, now);
            add(&mut stats, &ns);
            if ns.total_keys > 0 {
                stats.namespaces.insert(name, ns);
            }
        }
        stats
    }

    /// The limits the store keeps.
    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// Calls `f` with a `Set` mutation for every live entry, one shard
    /// locked at a time, and with [`Visit::ShardDone`] after each shard, with
    /// no lock held: snapshots encode under the lock and write between.
    pub fn visit_live(&self, mut f: impl FnMut(Visit<'_, '_>)) {
        let now = now_ms();
        let mut visit = |namespace: Option<&str>, space: &Namespace| {
            for (_, shard) in space.existing_shards() {
                for entry in shard.live_entries(now) {
                    f(Visit::Entry(&Mutation::Set {
                        namespace,
                        key: entry.key(),
                        value: entry.value(),
                        expires_at: entry.expires_at().map(NonZeroU64::get),
                    }));
                }
                drop(shard);
                f(Visit::ShardDone);
            }
        };
        visit(None, &self.default);
        for (name, space) in self.named_snapshot() {
            visit(Some(&name), &space);
        }
    }

    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        if key.is_empty() {
            return Err(StoreError::EmptyKey);
        }
        if key.len() > self.config.max_key_bytes {
            return Err(StoreError::KeyTooLong {
                len: key.len(),
                max: self.config.max_key_bytes,
            });
        }
        Ok(())
    }

    fn check_namespace(&self, namespace: Option<&str>) -> Result<(), StoreError> {
        namespace.map_or(Ok(()), validate_namespace)
    }

    /// Runs `f` on an existing namespace; `None` when it does not exist.
    fn with_namespace<R>(
        &self,
        namespace: Option<&str>,
        f: impl FnOnce(&Namespace) -> R,
    ) -> Option<R> {
        match namespace {
            None => Some(f(&self.default)),
            Some(name) => {
                let named = self.named.read().unwrap_or_else(|p| p.into_inner());
                named.get(name).map(|space| f(space))
            }
        }
    }

    fn named_namespace(&self, name: &str) -> Option<Arc<Namespace>> {
        let named = self.named.read().unwrap_or_else(|p| p.into_inner());
        named.get(name).cloned()
    }

    /// An existing namespace, shared so it can go into an undo record.
    fn existing_namespace(&self, namespace: Option<&str>) -> Option<Arc<Namespace>> {
        match namespace {
            None => Some(self.default.clone()),
            Some(name) => self.named_namespace(name),
        }
    }

    fn namespace_or_create(&self, namespace: Option<&str>) -> Arc<Namespace> {
        let Some(name) = namespace else {
            return self.default.clone();
        };
        if let Some(space) = self.named_namespace(name) {
            return space;
        }
        let mut named = self.named.write().unwrap_or_else(|p| p.into_inner());
        named
            .entry(name.into())
            .or_insert_with(|| self.new_namespace(name))
            .clone()
    }

    /// A new named namespace, counted and indexed. It is noted as possibly
    /// empty at once: if the write that creates it fails, it is freed.
    fn new_namespace(&self, name: &str) -> Arc<Namespace> {
        let quota = self.quota_for(Some(name));
        let space = Arc::new(Namespace::new(Some(name), quota, self.registry.clone()));
        space.feed.attach(self.feeds.get(Some(name)));
        registry::lock(&self.registry.eviction).add(&space);
        space.noted_empty.store(true, Ordering::Relaxed);
        self.registry.note_emptied(name);
        space
    }

    /// Every namespace, the default one first, shared out so no lock is
    /// held while they are examined.
    fn all_namespaces(&self) -> Vec<Arc<Namespace>> {
        let named = self.named.read().unwrap_or_else(|p| p.into_inner());
        std::iter::once(self.default.clone())
            .chain(named.values().cloned())
            .collect()
    }

    /// Panics unless every shard's expiry index and bytes agree with its
    /// table.
    #[cfg(test)]
    fn assert_consistent(&self, context: &dyn std::fmt::Display) {
        for space in self.all_namespaces() {
            for (_, shard) in space.existing_shards() {
                shard.assert_consistent(context);
            }
        }
    }

    /// (shards allocated, buckets of their tables, bytes of the tables'
    /// allocations as the allocator rounds them, bytes of the entries'
    /// allocations, and as rounded).
    #[cfg(test)]
    fn footprint(&self) -> [usize; 5] {
        let mut total = [0; 5];
        for space in self.all_namespaces() {
            for (_, shard) in space.existing_shards() {
                let (buckets, allocations, blocks) = shard.footprint();
                // hashbrown: one slot and one control byte a bucket, and a
                // group's width (16) of control bytes more.
                let table = buckets * (size_of::<Entry>() + 1) + 16;
                let table = if buckets == 0 {
                    0
                } else {
                    entry::allocated(table)
                };
                for (sum, add) in total
                    .iter_mut()
                    .zip([1, buckets, table, allocations, blocks])
                {
                    *sum += add;
                }
            }
        }
        total
    }

    /// The named namespaces, copied out so no lock is held while they are
    /// examined.
    fn named_snapshot(&self) -> Vec<(String, Arc<Namespace>)> {
        let named = self.named.read().unwrap_or_else(|p| p.into_inner());
        named
            .iter()
            .map(|(name, space)| (name.to_string(), space.clone()))
            .collect()
    }
}

/// Hands an applied change to the namespace's feed, if it is watched:
/// first the expiries the change met on its shards, then the change. The
/// shards are still locked, so a key's events follow the order of its
/// changes.
fn publish<S: std::ops::DerefMut<Target = shard::Shard>>(
    space: &Namespace,
    locked: &mut [S],
    mutation: &Mutation<'_>,
) {
    let Some(feed) = space.feed.get() else {
        return;
    };
    for shard in locked.iter_mut() {
        for key in std::mem::take(&mut shard.expired_keys) {
            feed.publish(Change::removed(ChangeKind::Expire, &key));
        }
    }
    publish_change(&feed, mutation);
}

/// Publishes `mutation`'s events: one, or one per write of a transaction.
fn publish_change(feed: &Feed, mutation: &Mutation<'_>) {
    match *mutation {
        Mutation::Set {
            key,
            value,
            expires_at,
            ..
        } => feed.publish(Change::set(key, value, expires_at)),
        Mutation::Delete { key, .. } => feed.publish(Change::removed(ChangeKind::Delete, key)),
        Mutation::Evict { key, .. } => feed.publish(Change::removed(ChangeKind::Evict, key)),
        Mutation::ClearNamespace { .. } => feed.publish(Change::clear()),
        Mutation::Transaction { writes, .. } => {
            writes.iter().for_each(|write| publish_change(feed, write));
        }
    }
}

fn stats_of(space: &Namespace, now: u64) -> NamespaceStats {
    let (total_keys, lookups) = space.live_len_and_lookups(now);
    NamespaceStats {
        cache_hits: lookups.hits,
        cache_misses: lookups.misses,
        total_keys,
        used_bytes: space.usage.bytes(),
        evictions: space.evictions.load(Ordering::Relaxed),
        expirations: space.expirations.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod property_tests;
#[cfg(test)]
mod tests;
