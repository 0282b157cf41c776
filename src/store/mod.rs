//! The storage engine: namespaces of keys holding JSON values, with TTLs and
//! per-namespace statistics. No HTTP and no files in here: the engine is a
//! plain Rust API, and every change it makes is handed, in order, to a
//! [`Journal`] (the write-ahead log, or nothing).
//!
//! Layout:
//! - [`namespace`]: name rules and the sharded key space of one namespace;
//! - [`shard`]: one shard's map and its expiry index;
//! - [`expire`]: the active expiry cycle;
//! - [`stats`]: the counters reported by `/stats`.

mod clock;
mod expire;
mod namespace;
mod shard;
mod stats;

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use hashbrown::{DefaultHashBuilder, HashMap};

pub use clock::now_ms;
pub use expire::spawn_expiry_cycle;
pub use namespace::{MAX_NAMESPACE_LEN, validate_namespace};
pub use stats::{NamespaceStats, StoreStats};

use namespace::Namespace;
use shard::Entry;

/// Errors of the engine. The HTTP layer maps each to a status code in one
/// place (`http::error`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("namespace {name:?} {reason}; use 1 to 64 of A-Z a-z 0-9 _ . -")]
    InvalidNamespace { name: String, reason: &'static str },
    #[error("key must not be empty")]
    EmptyKey,
    #[error("key is {len} bytes, over the limit of {max} bytes")]
    KeyTooLong { len: usize, max: usize },
    #[error("the write-ahead log cannot be written ({0}); the write was not applied, retry later")]
    LogUnavailable(String),
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
    ClearNamespace {
        namespace: &'a str,
    },
}

/// Where the engine records its changes.
///
/// `append` is called while the shard (or, for a clear, every shard of the
/// namespace) is locked, so the journal sees the mutations of one key in
/// exactly the order they are applied. An error refuses the mutation: the
/// engine then leaves memory unchanged.
pub trait Journal: Send + Sync {
    fn append(&self, mutation: &Mutation<'_>) -> Result<Lsn, StoreError>;
}

/// A journal that records nothing, for a store kept only in memory.
pub struct NoJournal;

impl Journal for NoJournal {
    fn append(&self, _: &Mutation<'_>) -> Result<Lsn, StoreError> {
        Ok(0)
    }
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub max_key_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_key_bytes: 1024,
        }
    }
}

/// Namespaces larger than this are freed on a background thread when
/// cleared, so the request that cleared them answers at once.
const BACKGROUND_FREE_THRESHOLD: usize = 10_000;

pub struct Store {
    config: StoreConfig,
    default: Namespace,
    /// Why a `RwLock` around a plain map: lookups vastly outnumber the
    /// creation of namespaces, and readers only hold it for a hash probe.
    named: RwLock<HashMap<Box<str>, Arc<Namespace>>>,
    hasher: DefaultHashBuilder,
    journal: Box<dyn Journal>,
    /// Misses on namespaces that do not exist; they count in the totals.
    unknown_namespace_misses: AtomicU64,
}

impl Store {
    pub fn new(config: StoreConfig, journal: Box<dyn Journal>) -> Self {
        Store {
            config,
            default: Namespace::new(),
            named: RwLock::default(),
            hasher: DefaultHashBuilder::default(),
            journal,
            unknown_namespace_misses: AtomicU64::new(0),
        }
    }

    /// A store in memory only.
    pub fn in_memory() -> Self {
        Store::new(StoreConfig::default(), Box::new(NoJournal))
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
        let found = self.with_namespace(namespace, |space| {
            let found = match space.shard_for(&self.hasher, key).get(key, now) {
                Some(entry) => {
                    out.extend_from_slice(entry.value.as_bytes());
                    true
                }
                None => false,
            };
            space.record_lookup(found);
            found
        });
        if found.is_none() {
            self.unknown_namespace_misses.fetch_add(1, Ordering::Relaxed);
        }
        Ok(found.unwrap_or(false))
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

    /// Applies a mutation, journaling it first when `journal` is true (it
    /// is false while replaying the journal itself).
    pub fn apply(&self, mutation: &Mutation<'_>, journal: bool) -> Result<Lsn, StoreError> {
        match *mutation {
            Mutation::Set {
                namespace,
                key,
                value,
                expires_at,
            } => {
                let entry = Entry {
                    value: value.into(),
                    expires_at: expires_at.and_then(NonZeroU64::new),
                };
                let now = now_ms();
                let space = self.namespace_or_create(namespace);
                let mut shard = space.shard_for(&self.hasher, key);
                let lsn = self.record(journal, mutation)?;
                shard.insert(key, entry, now);
                Ok(lsn)
            }
            Mutation::Delete { namespace, key } => {
                Ok(self.remove(namespace, key, journal)?.unwrap_or(0))
            }
            Mutation::ClearNamespace { namespace } => {
                Ok(self.clear(namespace, journal)?.1.unwrap_or(0))
            }
        }
    }

    fn record(&self, journal: bool, mutation: &Mutation<'_>) -> Result<Lsn, StoreError> {
        if journal {
            self.journal.append(mutation)
        } else {
            Ok(0)
        }
    }

    fn remove(
        &self,
        namespace: Option<&str>,
        key: &str,
        journal: bool,
    ) -> Result<Option<Lsn>, StoreError> {
        let now = now_ms();
        self.with_namespace(namespace, |space| {
            let mut shard = space.shard_for(&self.hasher, key);
            if shard.get(key, now).is_none() {
                return Ok(None);
            }
            let lsn = self.record(journal, &Mutation::Delete { namespace, key })?;
            shard.remove(key, now);
            Ok(Some(lsn))
        })
        .unwrap_or(Ok(None))
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
        let lsn = self.record(journal, &Mutation::ClearNamespace { namespace: name })?;
        let taken: Vec<_> = guards.iter_mut().map(|s| s.take()).collect();
        drop(guards);
        if deleted > BACKGROUND_FREE_THRESHOLD {
            std::thread::spawn(move || drop(taken));
        }
        Ok((deleted, Some(lsn)))
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
        let now = now_ms();
        let default_namespace = stats_of(&self.default, now);
        let mut stats = StoreStats {
            total_keys: default_namespace.total_keys,
            cache_hits: default_namespace.cache_hits,
            cache_misses: default_namespace.cache_misses
                + self.unknown_namespace_misses.load(Ordering::Relaxed),
            default_namespace,
            namespaces: BTreeMap::new(),
        };
        for (name, space) in self.named_snapshot() {
            let ns = stats_of(&space, now);
            stats.total_keys += ns.total_keys;
            stats.cache_hits += ns.cache_hits;
            stats.cache_misses += ns.cache_misses;
            if ns.total_keys > 0 {
                stats.namespaces.insert(name, ns);
            }
        }
        stats
    }

    /// One pass of active expiry: frees up to `budget_per_shard` expired
    /// entries in each shard that holds keys with a TTL. Returns how many
    /// entries were freed.
    pub fn expire_cycle(&self, budget_per_shard: usize) -> usize {
        let now = now_ms();
        let purge = |space: &Namespace| -> usize {
            space
                .each_shard(|s| {
                    if s.has_ttl_keys() {
                        s.purge_expired(now, budget_per_shard)
                    } else {
                        0
                    }
                })
                .sum()
        };
        let named = self.named_snapshot();
        purge(&self.default) + named.iter().map(|(_, s)| purge(s)).sum::<usize>()
    }

    /// Calls `f` with a `Set` mutation for every live entry, one shard
    /// locked at a time; used to write snapshots of the store.
    pub fn for_each_live(&self, mut f: impl FnMut(&Mutation<'_>)) {
        let now = now_ms();
        let mut visit = |namespace: Option<&str>, space: &Namespace| {
            for _ in space.each_shard(|shard| {
                for (key, entry) in shard.live_entries(now) {
                    f(&Mutation::Set {
                        namespace,
                        key,
                        value: &entry.value,
                        expires_at: entry.expires_at.map(NonZeroU64::get),
                    });
                }
            }) {}
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

    fn namespace_or_create(&self, namespace: Option<&str>) -> NamespaceRef<'_> {
        let Some(name) = namespace else {
            return NamespaceRef::Default(&self.default);
        };
        if let Some(space) = self.named_namespace(name) {
            return NamespaceRef::Named(space);
        }
        let mut named = self.named.write().unwrap_or_else(|p| p.into_inner());
        let space = named
            .entry(name.into())
            .or_insert_with(|| Arc::new(Namespace::new()));
        NamespaceRef::Named(space.clone())
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

/// A namespace found or created for a write.
enum NamespaceRef<'a> {
    Default(&'a Namespace),
    Named(Arc<Namespace>),
}

impl std::ops::Deref for NamespaceRef<'_> {
    type Target = Namespace;
    fn deref(&self) -> &Namespace {
        match self {
            NamespaceRef::Default(space) => space,
            NamespaceRef::Named(space) => space,
        }
    }
}

fn stats_of(space: &Namespace, now: u64) -> NamespaceStats {
    NamespaceStats {
        cache_hits: space.hits.load(Ordering::Relaxed),
        cache_misses: space.misses.load(Ordering::Relaxed),
        total_keys: space.live_len(now),
    }
}

#[cfg(test)]
mod tests;
