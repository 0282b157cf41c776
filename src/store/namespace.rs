//! Namespaces: the rules for their names, and the sharded key space each one
//! owns, with the bytes and keys it holds.
//!
//! Why every namespace owns its own shards (rather than all namespaces
//! sharing one map of `(namespace, key)`): clearing a namespace is then a
//! swap of its shard tables, O(shards) under the locks whatever its size,
//! and a tenant's traffic never contends on another tenant's locks.
//!
//! Why each shard is allocated on its first write: a namespace of a few
//! keys then pays for the few shards they fall in, not for all
//! [`SHARDS`] (a shard's struct is about 100 bytes, more than a small key).
//! A key's shard never changes, so no key ever moves; reads of a shard
//! never written find nothing without allocating it.

use std::hash::BuildHasher;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::StoreError;
use super::evict::{Limit, QuotaCell};
use super::registry::{Registry, UNSCHEDULED, lock as lock_registry};
use super::sampling::{NOWHERE, must_move};
use super::shard::{Lookups, Shard};
use crate::feed::{Change, ChangeKind, FeedSlot};

/// Longest namespace name accepted.
pub const MAX_NAMESPACE_LEN: usize = 64;

/// Checks a namespace name against `[A-Za-z0-9_.-]{1,64}`.
///
/// The character set keeps names safe in URLs, file names, log lines and
/// Prometheus labels without any escaping.
pub fn validate_namespace(name: &str) -> Result<(), StoreError> {
    let reason = if name.is_empty() {
        "must not be empty"
    } else if name.len() > MAX_NAMESPACE_LEN {
        "is longer than 64 characters"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        "may only contain letters, digits, '_', '.' and '-'"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidNamespace {
        name: name.to_owned(),
        reason,
    })
}

/// Shards per namespace: a power of two, enough that writers on a few cores
/// rarely meet, few enough that thousands of small namespaces stay cheap.
pub(crate) const SHARDS: usize = 16;

/// Bytes and entries held, kept as atomics so that limits are checked
/// without locking every shard. Signed, because a shard's changes are
/// added as deltas that may briefly run ahead of each other.
#[derive(Default)]
pub(crate) struct Usage {
    bytes: AtomicI64,
    keys: AtomicI64,
}

impl Usage {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed).max(0) as u64
    }

    pub fn keys(&self) -> u64 {
        self.keys.load(Ordering::Relaxed).max(0) as u64
    }

    /// Adds the deltas; returns the bytes and keys now held.
    pub fn add(&self, bytes: i64, keys: i64) -> (i64, i64) {
        let now_bytes = if bytes != 0 {
            self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes
        } else {
            self.bytes.load(Ordering::Relaxed)
        };
        let now_keys = if keys != 0 {
            self.keys.fetch_add(keys, Ordering::Relaxed) + keys
        } else {
            self.keys.load(Ordering::Relaxed)
        };
        (now_bytes, now_keys)
    }
}

pub(crate) struct Namespace {
    /// `None` for the default namespace.
    pub name: Option<Box<str>>,
    pub quota: QuotaCell,
    /// Each allocated on its first write.
    shards: [OnceLock<Box<Mutex<Shard>>>; SHARDS],
    pub usage: Usage,
    /// The store's usage and indexes, updated alongside.
    registry: Arc<Registry>,
    /// Lookups counted here rather than in a shard
    /// ([`Namespace::record_lookup`]); [`Namespace::lookups`] has them all.
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub evictions: AtomicU64,
    pub expirations: AtomicU64,
    /// When the expiry cycle is due to visit this namespace (its earliest
    /// deadline, or earlier), or `UNSCHEDULED`; changed only under the
    /// schedule's lock (`Registry::schedule`).
    pub wakeup: AtomicU64,
    /// Where this namespace sits in the eviction index.
    pub eviction_slot: AtomicU64,
    /// Whether it was noted as possibly empty and not looked at since.
    pub noted_empty: AtomicBool,
    /// Its change feed while it is watched (`GET /watch`).
    pub feed: FeedSlot,
}

/// A locked shard. Whatever is done through it is accounted to the
/// namespace's and the store's usage when it is released, so no mutation
/// path can forget the accounting.
pub(crate) struct ShardGuard<'a> {
    guard: MutexGuard<'a, Shard>,
    space: &'a Namespace,
    bytes: usize,
    len: usize,
    expirations: u64,
}

impl Deref for ShardGuard<'_> {
    type Target = Shard;
    fn deref(&self) -> &Shard {
        &self.guard
    }
}

impl DerefMut for ShardGuard<'_> {
    fn deref_mut(&mut self) -> &mut Shard {
        &mut self.guard
    }
}

impl Drop for ShardGuard<'_> {
    fn drop(&mut self) {
        let bytes = self.guard.bytes() as i64 - self.bytes as i64;
        let keys = self.guard.len() as i64 - self.len as i64;
        let ttl_written = self.guard.take_ttl_written();
        if bytes != 0 || keys != 0 {
            let (now_bytes, now_keys) = self.space.usage.add(bytes, keys);
            self.space.registry.usage.add(bytes, keys);
            self.space.after_change(now_bytes, now_keys, keys);
        }
        if bytes != 0 || keys != 0 || ttl_written {
            // Still locked: see `Registry::begin_visit` for why it must be.
            self.space.schedule_expiry(self.guard.earliest_deadline());
        }
        let expired = self.guard.expirations() - self.expirations;
        if expired != 0 {
            self.space.expirations.fetch_add(expired, Ordering::Relaxed);
            self.publish_expired();
        }
    }
}

impl ShardGuard<'_> {
    /// Publishes an `expire` event for each key noted as expired, still
    /// under the shard's lock: before any later change of the same key.
    pub fn publish_expired(&mut self) {
        if self.guard.expired_keys.is_empty() {
            return;
        }
        let keys = std::mem::take(&mut self.guard.expired_keys);
        if let Some(feed) = self.space.feed.get() {
            for key in keys {
                feed.publish(Change::removed(ChangeKind::Expire, &key));
            }
        }
    }
}

impl Namespace {
    pub fn new(name: Option<&str>, quota: Limit, registry: Arc<Registry>) -> Self {
        Namespace {
            name: name.map(Into::into),
            quota: QuotaCell::new(quota),
            shards: std::array::from_fn(|_| OnceLock::new()),
            usage: Usage::default(),
            registry,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
            wakeup: AtomicU64::new(UNSCHEDULED),
            eviction_slot: AtomicU64::new(NOWHERE),
            noted_empty: AtomicBool::new(false),
            feed: FeedSlot::default(),
        }
    }

    /// Bytes a namespace costs beyond its entries: itself, its shards, its
    /// slot in the namespace map and the indexes, its name. Counted in the
    /// store's usage (what `--max-memory` bounds) while it holds entries;
    /// once it holds none it is freed within a tick of the expiry thread.
    pub fn overhead(&self) -> u64 {
        overhead_of(self.name.as_deref())
    }

    /// After the usage changed by `delta` keys to `bytes` and `keys`:
    /// counts the namespace's overhead in the store's usage when it gets
    /// its first entry, and stops when its last goes (noting it then, to be
    /// freed); moves it to its new size class for eviction if it left its
    /// own. All of it is a comparison or an atomic load when nothing is to
    /// do.
    ///
    /// Why at these crossings rather than at creation and freeing: an
    /// eviction that empties a namespace makes room for its overhead at
    /// once, so that eviction never takes more keys to make up for a
    /// namespace not yet freed. Each crossing of zero is seen by exactly
    /// one guard (the counts are atomic sums), so they balance.
    fn after_change(&self, bytes: i64, keys: i64, delta: i64) {
        let before = keys - delta;
        if before <= 0 && keys > 0 {
            self.registry.usage.add(self.overhead() as i64, 0);
        } else if before > 0 && keys <= 0 {
            self.registry.usage.add(-(self.overhead() as i64), 0);
            if let Some(name) = &self.name
                && !self.noted_empty.swap(true, Ordering::Relaxed)
            {
                self.registry.note_emptied(name);
            }
        }
        if must_move(
            self.eviction_slot.load(Ordering::Relaxed),
            bytes.max(0) as u64,
        ) {
            lock_registry(&self.registry.eviction).reclassify(self);
        }
    }

    /// Has the expiry cycle visit this namespace at `earliest`, unless it
    /// will come earlier anyway.
    fn schedule_expiry(&self, earliest: Option<u64>) {
        if let Some(at) = earliest
            && at < self.wakeup.load(Ordering::SeqCst)
        {
            self.registry.schedule(self, at);
        }
    }

    /// Whether every shard is empty, expired entries included.
    pub fn is_empty(&self) -> bool {
        self.shards
            .iter()
            .filter_map(OnceLock::get)
            .all(|shard| lock(shard).len() == 0)
    }

    /// Index of the shard that owns `key`. Bits 40 and up: the shard's own
    /// table uses the low bits and the top seven of the same hash.
    pub fn shard_index(hasher: &impl BuildHasher, key: &str) -> usize {
        ((hasher.hash_one(key.as_bytes()) >> 40) as usize) & (SHARDS - 1)
    }

    /// The locked shard at `index`, allocated if it never was.
    pub fn shard(&self, index: usize) -> ShardGuard<'_> {
        self.guard(self.shards[index].get_or_init(Box::default))
    }

    /// The locked shard at `index`, if it was ever written.
    pub fn existing_shard(&self, index: usize) -> Option<ShardGuard<'_>> {
        self.shards[index].get().map(|shard| self.guard(shard))
    }

    /// The shards ever written, with their index, each locked in turn
    /// while the caller looks at it (and unlocked before the next).
    pub fn existing_shards(&self) -> impl Iterator<Item = (usize, ShardGuard<'_>)> {
        (0..SHARDS).filter_map(|index| Some((index, self.existing_shard(index)?)))
    }

    fn guard<'a>(&'a self, shard: &'a Mutex<Shard>) -> ShardGuard<'a> {
        let mut guard = lock(shard);
        guard.noting_expired = self.feed.is_watched();
        ShardGuard {
            bytes: guard.bytes(),
            len: guard.len(),
            expirations: guard.expirations(),
            guard,
            space: self,
        }
    }

    /// Locks every shard, in index order (the only order in which more than
    /// one shard is ever held, so it cannot deadlock). Allocates those never
    /// written: a clear and its undo work on all [`SHARDS`], index by index.
    pub fn lock_all(&self) -> Vec<ShardGuard<'_>> {
        (0..SHARDS).map(|i| self.shard(i)).collect()
    }

    pub fn live_len(&self, now_ms: u64) -> usize {
        self.existing_shards()
            .map(|(_, shard)| shard.live_len(now_ms))
            .sum()
    }

    /// Its hits and misses: those of its shards, and those counted here.
    pub fn lookups(&self) -> Lookups {
        self.existing_shards()
            .fold(self.bulk_lookups(), |sum, (_, shard)| sum + shard.lookups())
    }

    /// [`Namespace::live_len`] and [`Namespace::lookups`] in one pass over
    /// the shards.
    pub fn live_len_and_lookups(&self, now_ms: u64) -> (usize, Lookups) {
        self.existing_shards()
            .fold((0, self.bulk_lookups()), |(live, sum), (_, shard)| {
                (live + shard.live_len(now_ms), sum + shard.lookups())
            })
    }

    /// The lookups counted in the namespace itself ([`Namespace::record_lookup`]).
    fn bulk_lookups(&self) -> Lookups {
        Lookups {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Counts a lookup of a key in a shard never written (a miss), or of
    /// keys in bulk (a batch's gets, a transaction's reads); the lookup of
    /// one key in a shard is counted in the shard ([`Lookups`]).
    pub fn record_lookup(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What [`Namespace::overhead`] counts for a namespace of this name: a
/// fixed amount, so that what is added at its first key is what is taken
/// away at its last. It counts one shard: a namespace holding keys has at
/// least one; more (up to [`SHARDS`]) come with more keys.
pub(crate) fn overhead_of(name: Option<&str>) -> u64 {
    // The map's slot and the eviction index's, at their load factors.
    const SLOTS: usize = 2 * size_of::<(Box<str>, Arc<Namespace>)>() + 16;
    let arc_counts = 2 * size_of::<usize>();
    let name = name.map_or(0, str::len);
    (size_of::<Namespace>() + arc_counts + size_of::<Mutex<Shard>>() + SLOTS + name) as u64
}

/// Locks a shard, recovering it if a panicking thread poisoned the lock: a
/// shard's invariants hold between any two of its method calls, so the data
/// is still sound.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_documented_character_set() {
        for ok in ["a", "tenant_acme", "prod-eu.1", &"x".repeat(64)] {
            assert!(validate_namespace(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_empty_long_and_foreign_characters() {
        for bad in ["", &"x".repeat(65), "a b", "a/b", "a:b", "ü", "a\n"] {
            assert!(validate_namespace(bad).is_err(), "{bad:?}");
        }
    }
}
