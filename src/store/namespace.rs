//! Namespaces: the rules for their names, and the sharded key space each one
//! owns.
//!
//! Why every namespace owns its own shards (rather than all namespaces
//! sharing one map of `(namespace, key)`): clearing a namespace is then a
//! swap of its shard maps, O(shards) under the locks whatever its size, and
//! a tenant's traffic never contends on another tenant's locks.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::StoreError;
use super::shard::Shard;

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

pub(crate) struct Namespace {
    shards: Box<[Mutex<Shard>]>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl Namespace {
    pub fn new() -> Self {
        Namespace {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Index of the shard that owns `key`.
    pub fn shard_index(hasher: &impl BuildHasher, key: &str) -> usize {
        (hasher.hash_one(key) as usize) & (SHARDS - 1)
    }

    /// The locked shard at `index`.
    pub fn shard(&self, index: usize) -> MutexGuard<'_, Shard> {
        lock(&self.shards[index])
    }

    /// The locked shard that owns `key`.
    pub fn shard_for(&self, hasher: &impl BuildHasher, key: &str) -> MutexGuard<'_, Shard> {
        self.shard(Self::shard_index(hasher, key))
    }

    /// Locks every shard, in index order (the only order in which more than
    /// one shard is ever held, so it cannot deadlock).
    pub fn lock_all(&self) -> Vec<MutexGuard<'_, Shard>> {
        self.shards.iter().map(lock).collect()
    }

    /// Applies `f` to each shard in turn, holding one lock at a time.
    pub fn each_shard<R>(&self, mut f: impl FnMut(&mut Shard) -> R) -> impl Iterator<Item = R> {
        self.shards.iter().map(move |s| f(&mut lock(s)))
    }

    pub fn live_len(&self, now_ms: u64) -> usize {
        self.each_shard(|s| s.live_len(now_ms)).sum()
    }

    pub fn record_lookup(&self, hit: bool) {
        let counter = if hit { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Locks a shard, recovering it if a panicking thread poisoned the lock: a
/// shard's invariants hold between any two of its method calls, so the data
/// is still sound.
pub(crate) fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
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
