//! Bounded memory: a global limit and per-namespace quotas, kept by
//! evicting least recently used keys (`lru`) or by refusing writes
//! (`noeviction`).
//!
//! LRU is approximated as Redis does it: each eviction samples
//! [`SAMPLES`] random entries and evicts the one idle longest. Exact LRU
//! would need a linked list through every entry (16 more bytes a key);
//! docs/BENCHMARKS.md measures the sampled hit rate against exact LRU on a
//! skewed workload.
//!
//! A namespace at its quota evicts only its own keys, so a noisy tenant
//! cannot push out another's. The global limit evicts across namespaces,
//! picking each sample's namespace in proportion to the bytes it holds, in
//! O(1) whatever the number of namespaces ([`super::sampling`]).
//!
//! Evictions are journaled (as `DEL` records marked `"evicted":true`), so a
//! restart does not bring an evicted key back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::namespace::{Namespace, SHARDS, Usage};
use super::registry::lock;
use super::shard::Sample;
use super::{Mutation, Store, StoreError, access_of, now_ms};

/// Entries sampled per eviction.
pub const SAMPLES: usize = 16;

/// What the store does at a limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EvictionPolicy {
    /// Evict the least recently used keys (sampled) to make room.
    #[default]
    Lru,
    /// Refuse a write that would pass a limit (HTTP 507); evict nothing.
    Noeviction,
}

/// The largest `max_bytes` or `max_keys` accepted anywhere: the flags
/// (`--max-memory`, `--max-keys`), the quota file and `PUT /quota` all check
/// against this one bound. Usage is counted in signed 64 bits, and
/// [`QuotaCell`] keeps `u64::MAX` to mean "unlimited", so a bound must stay
/// below both.
pub const MAX_LIMIT: u64 = i64::MAX as u64;

/// A bound on bytes and keys; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limit {
    pub max_bytes: Option<u64>,
    pub max_keys: Option<u64>,
}

impl Limit {
    pub fn is_unlimited(&self) -> bool {
        self.max_bytes.is_none() && self.max_keys.is_none()
    }

    fn exceeded_by(&self, usage: &Usage) -> bool {
        self.would_exceed(usage, 0, 0)
    }

    /// Whether `usage` grown by `bytes` and `keys` would pass the limit.
    ///
    /// Computed in 128 bits: every `u64` bound and every `u64` usage plus an
    /// `i64` change fits there, so no bound can wrap around to a negative
    /// one (a bound over `i64::MAX` once refused or evicted everything).
    fn would_exceed(&self, usage: &Usage, bytes: i64, keys: i64) -> bool {
        let over = |max: Option<u64>, used: u64, delta: i64| {
            max.is_some_and(|max| i128::from(used) + i128::from(delta) > i128::from(max))
        };
        over(self.max_bytes, usage.bytes(), bytes) || over(self.max_keys, usage.keys(), keys)
    }

    fn describe(&self) -> String {
        match (self.max_bytes, self.max_keys) {
            (Some(b), Some(k)) => format!("{b} bytes and {k} keys"),
            (Some(b), None) => format!("{b} bytes"),
            (None, Some(k)) => format!("{k} keys"),
            (None, None) => "no limit".into(),
        }
    }
}

/// A namespace's quota, changeable while the server runs (the admin
/// endpoint). `u64::MAX` stands for "unlimited".
#[derive(Default)]
pub(crate) struct QuotaCell {
    max_bytes: AtomicU64,
    max_keys: AtomicU64,
}

impl QuotaCell {
    pub fn new(limit: Limit) -> Self {
        let cell = QuotaCell::default();
        cell.set(limit);
        cell
    }

    pub fn get(&self) -> Limit {
        let read = |a: &AtomicU64| Some(a.load(Ordering::Relaxed)).filter(|&v| v != u64::MAX);
        Limit {
            max_bytes: read(&self.max_bytes),
            max_keys: read(&self.max_keys),
        }
    }

    pub fn set(&self, limit: Limit) {
        let write =
            |a: &AtomicU64, v: Option<u64>| a.store(v.unwrap_or(u64::MAX), Ordering::Relaxed);
        write(&self.max_bytes, limit.max_bytes);
        write(&self.max_keys, limit.max_keys);
    }
}

/// Every bound the store keeps.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// The whole store (`--max-memory`, `--max-keys`).
    pub global: Limit,
    /// Namespaces without a quota of their own, the default one included.
    pub default_quota: Limit,
    /// Quotas of named namespaces.
    pub quotas: std::collections::HashMap<String, Limit>,
    pub policy: EvictionPolicy,
}

impl Limits {
    pub fn quota_of(&self, namespace: Option<&str>) -> Limit {
        namespace
            .and_then(|name| self.quotas.get(name))
            .copied()
            .unwrap_or(self.default_quota)
    }

    fn any(&self) -> bool {
        !self.global.is_unlimited()
            || !self.default_quota.is_unlimited()
            || self.quotas.values().any(|q| !q.is_unlimited())
    }
}

impl Store {
    /// Whether limits are set at all; without them writes skip every check.
    pub(super) fn limited(&self) -> bool {
        self.limits_enabled.load(Ordering::Relaxed)
    }

    /// Sets a namespace's quota while the server runs (it lasts until the
    /// next start, where the quota file rules again); evicts at once under
    /// `lru` if the namespace is now over it. Returns the quota and usage.
    pub fn set_quota(
        &self,
        namespace: Option<&str>,
        quota: Limit,
    ) -> Result<QuotaReport, StoreError> {
        self.check_namespace(namespace)?;
        if let Some(name) = namespace {
            // Kept apart from the namespace, which is freed while it has no
            // keys: the quota holds for the keys it gets later.
            let mut quotas = self
                .runtime_quotas
                .write()
                .unwrap_or_else(|p| p.into_inner());
            quotas.insert(name.into(), quota);
        }
        if !quota.is_unlimited() {
            self.limits_enabled.store(true, Ordering::Relaxed);
        }
        let Some(space) = self.existing_namespace(namespace) else {
            return self.quota(namespace);
        };
        space.quota.set(quota);
        self.make_room(&space);
        Ok(quota_report(&space))
    }

    /// The quota a namespace starts with: one set while running, or the
    /// quota file's.
    pub(super) fn quota_for(&self, namespace: Option<&str>) -> Limit {
        let quotas = self
            .runtime_quotas
            .read()
            .unwrap_or_else(|p| p.into_inner());
        namespace
            .and_then(|name| quotas.get(name))
            .copied()
            .unwrap_or_else(|| self.config.limits.quota_of(namespace))
    }

    /// A namespace's quota and what it uses.
    pub fn quota(&self, namespace: Option<&str>) -> Result<QuotaReport, StoreError> {
        self.check_namespace(namespace)?;
        Ok(match self.existing_namespace(namespace) {
            Some(space) => quota_report(&space),
            None => QuotaReport {
                quota: self.quota_for(namespace),
                used_bytes: 0,
                used_keys: 0,
            },
        })
    }

    /// Under `noeviction`, refuses a write that would pass a limit. Also,
    /// under any policy, refuses an entry that could never fit.
    pub(super) fn check_limits(
        &self,
        space: &Namespace,
        entry_size: usize,
        old_size: Option<usize>,
    ) -> Result<(), StoreError> {
        self.check_fits(space, entry_size)?;
        let bytes = entry_size as i64 - old_size.unwrap_or(0) as i64;
        self.check_room(space, bytes, i64::from(old_size.is_none()))
    }

    /// Refuses an entry of `entry_size` bytes that could never fit in
    /// `space` or the store, under any policy.
    pub(super) fn check_fits(
        &self,
        space: &Namespace,
        entry_size: usize,
    ) -> Result<(), StoreError> {
        let size = entry_size as u64;
        let quota = space.quota.get();
        for (limit, scope) in [
            (&quota, space.describe()),
            (&self.config.limits.global, "the store".into()),
        ] {
            if limit.max_bytes.is_some_and(|max| size > max) {
                return Err(StoreError::TooLarge {
                    scope,
                    size,
                    max: limit.max_bytes.unwrap_or_default(),
                });
            }
        }
        Ok(())
    }

    /// Under `noeviction`, refuses a change of `bytes` and `keys` in
    /// `space` that would pass its quota or the store's limit.
    pub(super) fn check_room(
        &self,
        space: &Namespace,
        bytes: i64,
        keys: i64,
    ) -> Result<(), StoreError> {
        let limits = &self.config.limits;
        if limits.policy != EvictionPolicy::Noeviction {
            return Ok(());
        }
        let quota = space.quota.get();
        if quota.would_exceed(&space.usage, bytes, keys) {
            return Err(StoreError::LimitReached {
                scope: space.describe(),
                limit: quota.describe(),
            });
        }
        if limits
            .global
            .would_exceed(&self.registry.usage, bytes, keys)
        {
            return Err(StoreError::LimitReached {
                scope: "the store".into(),
                limit: limits.global.describe(),
            });
        }
        Ok(())
    }

    /// Under `lru`, evicts until `space` is within its quota and the store
    /// within its limit.
    pub(super) fn make_room(&self, space: &Arc<Namespace>) {
        if self.config.limits.policy != EvictionPolicy::Lru {
            return;
        }
        // Bounded: an eviction that found nothing to take stops the loop.
        while space.quota.get().exceeded_by(&space.usage) {
            if !self.evict_from(space) {
                break;
            }
        }
        while self.config.limits.global.exceeded_by(&self.registry.usage) {
            if !self.evict_global() {
                break;
            }
        }
    }

    /// After replay (limits may have shrunk since the log was written):
    /// evicts until every namespace and the store are within bounds.
    pub fn enforce_limits(&self) {
        if !self.limited() {
            return;
        }
        let mut spaces = self.all_namespaces();
        spaces.retain(|space| !space.quota.get().is_unlimited());
        for space in spaces {
            self.make_room(&space);
        }
        self.make_room(&self.default);
    }

    /// Evicts the stalest of a sample of `space`'s entries.
    fn evict_from(&self, space: &Arc<Namespace>) -> bool {
        let mut rng = fastrand::Rng::new();
        let now = now_ms();
        let access = access_of(now);
        let victim = (0..SAMPLES)
            .filter_map(|_| sample(space, &mut rng, access, now))
            .max_by_key(|(sample, _)| sample.idle);
        let Some((sample, shard)) = victim else {
            return false;
        };
        self.evict(space, shard, &sample.key);
        true
    }

    /// Evicts across namespaces: picks [`SAMPLES`] namespaces in
    /// proportion to the bytes they hold (from the eviction index, without
    /// walking the namespaces), samples an entry of each, and evicts the
    /// stalest.
    fn evict_global(&self) -> bool {
        let mut rng = fastrand::Rng::new();
        let picked = lock(&self.registry.eviction).pick(&mut rng, SAMPLES);
        let now = now_ms();
        let access = access_of(now);
        let victim = picked
            .iter()
            .filter_map(|space| {
                let (sample, shard) = sample(space, &mut rng, access, now)?;
                Some((sample, space, shard))
            })
            .max_by_key(|(sample, _, _)| sample.idle);
        let Some((sample, space, shard)) = victim else {
            return false;
        };
        self.evict(space, shard, &sample.key);
        true
    }

    /// Removes one key for room, journaled so that it stays evicted.
    fn evict(&self, space: &Arc<Namespace>, shard: usize, key: &str) {
        let mutation = Mutation::Evict {
            namespace: space.name.as_deref(),
            key,
        };
        // Someone may have deleted it since it was sampled: then the room
        // is made already, and nothing is counted.
        if let Ok(Some(_)) = self.remove_in(space, shard, &mutation, true) {
            space.evictions.fetch_add(1, Ordering::Relaxed);
            // Neither the key nor the namespace: both are tenant data (a
            // namespace may name a customer), and logs are kept and shipped
            // (SECURITY.md). Which namespaces lose keys is in `/stats`.
            tracing::debug!("evicted a key");
            self.eviction_log.record();
        }
    }
}

/// Evictions summed up in the log at info level, at most once a second:
/// one line per eviction would flood it exactly when memory is tight.
#[derive(Default)]
pub(super) struct EvictionLog {
    since_last_line: AtomicU64,
    last_line_ms: AtomicU64,
}

impl EvictionLog {
    fn record(&self) {
        let evicted = self.since_last_line.fetch_add(1, Ordering::Relaxed) + 1;
        let now = now_ms();
        let last = self.last_line_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 1000
            && self
                .last_line_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let evicted = evicted.max(self.since_last_line.swap(0, Ordering::Relaxed));
            tracing::info!(evicted, "evicted keys to stay within the memory limits");
        }
    }
}

/// A namespace's quota beside its usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaReport {
    pub quota: Limit,
    pub used_bytes: u64,
    /// Entries held (expired ones included until they are freed).
    pub used_keys: u64,
}

fn quota_report(space: &Namespace) -> QuotaReport {
    QuotaReport {
        quota: space.quota.get(),
        used_bytes: space.usage.bytes(),
        used_keys: space.usage.keys(),
    }
}

/// A random entry of `space` and its shard: a random shard first, then the
/// next ones until one holds entries, so a namespace whose keys sit in a
/// few shards is still sampled every time.
fn sample(
    space: &Namespace,
    rng: &mut fastrand::Rng,
    access: u32,
    now: u64,
) -> Option<(Sample, usize)> {
    let start = rng.usize(..SHARDS);
    (0..SHARDS).map(|i| (start + i) % SHARDS).find_map(|shard| {
        let sample = space.existing_shard(shard)?.sample(rng, access, now)?;
        Some((sample, shard))
    })
}

impl Namespace {
    /// How errors name this namespace.
    fn describe(&self) -> String {
        match &self.name {
            Some(name) => format!("namespace {name:?}"),
            None => "the default namespace".into(),
        }
    }
}

pub(super) fn limits_enabled(limits: &Limits) -> bool {
    limits.any()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;

    const HUGE: [u64; 4] = [
        MAX_LIMIT,
        MAX_LIMIT + 1,
        10_000_000_000_000_000_000,
        u64::MAX - 1,
    ];

    /// A bound past `i64::MAX` once wrapped around to a negative one, which
    /// every usage exceeded: `noeviction` refused every write and `lru`
    /// evicted every key as it was written.
    #[test]
    fn bounds_past_i64_max_are_not_negative() {
        let usage = Usage::default();
        for max in HUGE {
            let limit = Limit {
                max_bytes: Some(max),
                max_keys: Some(max),
            };
            assert!(!limit.exceeded_by(&usage), "{max}");
            assert!(!limit.would_exceed(&usage, i64::MAX, 1), "{max}");
        }
        let tight = Limit {
            max_bytes: Some(0),
            max_keys: Some(0),
        };
        assert!(!tight.exceeded_by(&usage));
        assert!(tight.would_exceed(&usage, 0, 1));
        assert!(tight.would_exceed(&usage, 1, 0));
    }

    #[test]
    fn huge_limits_keep_every_key_under_both_policies() {
        for policy in [EvictionPolicy::Lru, EvictionPolicy::Noeviction] {
            for max in HUGE {
                let store = Store::new(StoreConfig {
                    limits: Limits {
                        global: Limit {
                            max_bytes: Some(max),
                            max_keys: Some(max),
                        },
                        policy,
                        ..Limits::default()
                    },
                    ..StoreConfig::default()
                });
                for i in 0..5 {
                    store.set(None, &format!("k{i}"), "1", None).unwrap();
                }
                assert_eq!(store.len(), 5, "{policy:?} {max}");
            }
        }
    }
}
