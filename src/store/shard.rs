//! One shard of a namespace: a hash table of packed entries, the index of
//! their expiry deadlines, and the bytes they take.
//!
//! Why a `BTreeSet<(deadline, key)>` beside the table: the active expiry
//! cycle must find the keys that are due without walking the whole table,
//! so the cost of a tick is proportional to what expires, not to what is
//! stored. Only keys with a TTL pay for a copy of their name in the index.
//!
//! Why hashbrown's `HashTable` rather than a `HashMap`: the key lives inside
//! the entry's single allocation, and the table's bucket API lets eviction
//! pick random entries in O(1), as Redis's sampled LRU does.

use std::collections::BTreeSet;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

pub(crate) use super::entry::Entry;

#[derive(Default)]
pub(crate) struct Shard {
    table: HashTable<Entry>,
    expiry: BTreeSet<(u64, Box<str>)>,
    hasher: DefaultHashBuilder,
    /// Bytes accounted to the entries held, expired ones included until
    /// they are freed.
    bytes: usize,
    /// Entries freed because their deadline passed, since the start.
    expirations: u64,
    /// Whether an entry with a deadline was inserted since the shard's
    /// guard last looked, which then makes sure the expiry cycle is due
    /// by the earliest deadline.
    ttl_written: bool,
    /// Whether to note the keys that expire (their namespace is watched);
    /// set by the shard's guard when it is locked.
    pub noting_expired: bool,
    /// The keys that expired since the guard looked, when noting: the
    /// change feed's `expire` events.
    pub expired_keys: Vec<Box<str>>,
    /// Lookups of a single key in this shard, since the start.
    lookups: Lookups,
}

/// Lookups that found their key live, and that did not: the namespace's
/// `cache_hits` and `cache_misses` are its shards' sums.
///
/// Why counted in the shard rather than in the namespace: under the shard's
/// lock, in memory that the lock has just brought to the core, where a
/// namespace's counter is one cache line that every core wrote at every
/// GET of the namespace (docs/BENCHMARKS.md, "Cache lines every core
/// wrote").
#[derive(Default, Clone, Copy)]
pub(crate) struct Lookups {
    pub hits: u64,
    pub misses: u64,
}

impl std::ops::Add for Lookups {
    type Output = Lookups;
    fn add(self, other: Lookups) -> Lookups {
        Lookups {
            hits: self.hits + other.hits,
            misses: self.misses + other.misses,
        }
    }
}

/// A candidate for eviction: how long ago it was used, and its key.
pub(crate) struct Sample {
    pub idle: u32,
    pub key: Box<str>,
}

impl Shard {
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The live entry under `key`, marked as used at `access`; an expired
    /// one is removed on the way.
    pub fn get(&mut self, key: &str, now_ms: u64, access: u32) -> Option<&Entry> {
        let hash = self.hash(key.as_bytes());
        // One probe of the table; the fields are borrowed apart so that the
        // entry can be handed out while the others are updated.
        let Shard {
            table,
            expiry,
            bytes,
            expirations,
            noting_expired,
            expired_keys,
            ..
        } = self;
        let slot = table
            .find_entry(hash, |e| e.key_bytes() == key.as_bytes())
            .ok()?;
        if slot.get().is_expired(now_ms) {
            let (old, _) = slot.remove();
            forget(bytes, expiry, &old);
            *expirations += 1;
            if *noting_expired {
                expired_keys.push(key.into());
            }
            return None;
        }
        let entry = slot.into_mut();
        entry.touch(access);
        Some(entry)
    }

    /// The entry under `key`, live or not, without marking it used.
    pub fn peek(&self, key: &str) -> Option<&Entry> {
        let hash = self.hash(key.as_bytes());
        self.table.find(hash, |e| e.key_bytes() == key.as_bytes())
    }

    /// Stores `entry`, returning the live entry it replaced.
    ///
    /// The old entry is forgotten before the new deadline is indexed: when
    /// both have the same deadline (the same key set twice with the same
    /// TTL within one millisecond), indexing first and forgetting second
    /// would remove the pair just added, and the key would never expire.
    pub fn insert(&mut self, entry: Entry, now_ms: u64) -> Option<Entry> {
        let deadline = entry.expires_at().map(|at| (at.get(), entry.key().into()));
        self.bytes += entry.size();
        let hash = self.hash(entry.key_bytes());
        let hasher = &self.hasher;
        let old = match self.table.entry(
            hash,
            |e| e.key_bytes() == entry.key_bytes(),
            |e| hasher.hash_one(e.key_bytes()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut slot) => {
                Some(std::mem::replace(slot.get_mut(), entry))
            }
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(entry);
                None
            }
        };
        if let Some(old) = &old {
            self.forget(old);
        }
        if let Some(deadline) = deadline {
            self.expiry.insert(deadline);
            self.ttl_written = true;
        }
        self.live_or_expired(old?, now_ms)
    }

    /// Removes `key`, returning its entry if it was live.
    pub fn remove(&mut self, key: &str, now_ms: u64) -> Option<Entry> {
        let hash = self.hash(key.as_bytes());
        let old = self
            .table
            .find_entry(hash, |e| e.key_bytes() == key.as_bytes())
            .ok()?
            .remove()
            .0;
        self.forget(&old);
        self.live_or_expired(old, now_ms)
    }

    /// `old`, an entry that left the table, if it was live; otherwise it
    /// counts as expired.
    fn live_or_expired(&mut self, old: Entry, now_ms: u64) -> Option<Entry> {
        if old.is_expired(now_ms) {
            self.note_expired(old.key());
            return None;
        }
        Some(old)
    }

    /// Counts an entry that left the table because its deadline passed,
    /// and notes its key for the change feed when asked to. Every expiry
    /// (on a read, over a write, by the expiry cycle) comes through here
    /// or, on the read path, does the same in place.
    fn note_expired(&mut self, key: &str) {
        self.expirations += 1;
        if self.noting_expired {
            self.expired_keys.push(key.into());
        }
    }

    /// Drops what the shard keeps about an entry that left the table.
    fn forget(&mut self, old: &Entry) {
        forget(&mut self.bytes, &mut self.expiry, old);
    }

    /// Removes up to `budget` entries whose deadline has passed; returns how
    /// many were removed.
    pub fn purge_expired(&mut self, now_ms: u64, budget: usize) -> usize {
        let mut removed = 0;
        while removed < budget {
            match self.expiry.first() {
                Some((deadline, _)) if *deadline <= now_ms => {
                    let (_, key) = self.expiry.pop_first().expect("first() was Some");
                    let hash = self.hash(key.as_bytes());
                    if let Ok(slot) = self
                        .table
                        .find_entry(hash, |e| e.key_bytes() == key.as_bytes())
                    {
                        self.bytes -= slot.get().size();
                        slot.remove();
                        self.note_expired(&key);
                    }
                    removed += 1;
                }
                _ => break,
            }
        }
        removed
    }

    /// Number of entries whose deadline has passed but that are still held.
    fn expired_count(&self, now_ms: u64) -> usize {
        self.expiry
            .range(..(now_ms + 1, Box::<str>::from("")))
            .count()
    }

    /// Number of live (unexpired) entries.
    pub fn live_len(&self, now_ms: u64) -> usize {
        self.table.len() - self.expired_count(now_ms)
    }

    /// Entries held, expired ones included until they are freed.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn expirations(&self) -> u64 {
        self.expirations
    }

    /// Counts a lookup of one key: a hit if it was found live.
    pub fn count_lookup(&mut self, hit: bool) {
        match hit {
            true => self.lookups.hits += 1,
            false => self.lookups.misses += 1,
        }
    }

    pub fn lookups(&self) -> Lookups {
        self.lookups
    }

    pub fn has_ttl_keys(&self) -> bool {
        !self.expiry.is_empty()
    }

    /// The earliest deadline held, expired or not.
    pub fn earliest_deadline(&self) -> Option<u64> {
        self.expiry.first().map(|(at, _)| *at)
    }

    /// Whether an entry with a deadline was inserted since the last call.
    pub fn take_ttl_written(&mut self) -> bool {
        std::mem::take(&mut self.ttl_written)
    }

    /// Iterates the live entries, for snapshots and listings.
    pub fn live_entries(&self, now_ms: u64) -> impl Iterator<Item = &Entry> {
        self.table.iter().filter(move |e| !e.is_expired(now_ms))
    }

    /// A random entry, for sampled eviction: a random bucket, then the next
    /// occupied one. Expired entries are the best candidates of all.
    pub fn sample(&self, rng: &mut fastrand::Rng, access: u32, now_ms: u64) -> Option<Sample> {
        if self.table.is_empty() {
            return None;
        }
        let buckets = self.table.num_buckets();
        let start = rng.usize(..buckets);
        (0..buckets)
            .map(|i| (start + i) % buckets)
            .find_map(|i| self.table.get_bucket(i))
            .map(|entry| Sample {
                idle: if entry.is_expired(now_ms) {
                    u32::MAX
                } else {
                    access.wrapping_sub(entry.last_access())
                },
                key: entry.key().into(),
            })
    }

    /// Panics unless the expiry index holds exactly the deadlines of the
    /// table's entries, and `bytes` their sizes: the invariants every
    /// method keeps.
    #[cfg(test)]
    pub fn assert_consistent(&self, context: &dyn std::fmt::Display) {
        let deadlines: BTreeSet<(u64, Box<str>)> = self
            .table
            .iter()
            .filter_map(|e| e.expires_at().map(|at| (at.get(), e.key().into())))
            .collect();
        assert_eq!(
            deadlines, self.expiry,
            "expiry index out of step: {context}"
        );
        let bytes: usize = self.table.iter().map(Entry::size).sum();
        assert_eq!(bytes, self.bytes, "bytes out of step: {context}");
    }

    /// (buckets of the table, bytes of the entries' allocations, bytes
    /// of the blocks the allocator gives them), for the breakdown of a
    /// key's bytes in docs/BENCHMARKS.md.
    #[cfg(test)]
    pub fn footprint(&self) -> (usize, usize, usize) {
        let (allocations, blocks) = self.table.iter().fold((0, 0), |(a, b), e| {
            (
                a + e.allocation_len(),
                b + super::entry::allocated(e.allocation_len()),
            )
        });
        (self.table.num_buckets(), allocations, blocks)
    }

    /// Empties the shard in O(1), handing back the old contents so that the
    /// caller can free them outside the lock.
    pub fn take(&mut self) -> Shard {
        let empty = Shard {
            hasher: self.hasher.clone(),
            expirations: self.expirations,
            lookups: self.lookups,
            ..Shard::default()
        };
        std::mem::replace(self, empty)
    }
}

/// Drops the bytes and deadline of an entry that left the table.
fn forget(bytes: &mut usize, expiry: &mut BTreeSet<(u64, Box<str>)>, old: &Entry) {
    *bytes -= old.size();
    if let Some(at) = old.expires_at() {
        // BTreeSet needs an owned tuple to look up; only keys with a TTL pay
        // for it.
        expiry.remove(&(at.get(), Box::<str>::from(old.key())));
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU64;

    use super::*;

    fn entry(k: &str, v: &str, at: Option<u64>) -> Entry {
        Entry::new(k, v, at.and_then(NonZeroU64::new), 0)
    }

    #[test]
    fn insert_replaces_and_reindexes_deadline() {
        let mut s = Shard::default();
        assert!(s.insert(entry("k", "1", Some(100)), 0).is_none());
        let old = s.insert(entry("k", "2", None), 0).unwrap();
        assert_eq!(old.value(), "1");
        assert!(!s.has_ttl_keys(), "old deadline must leave the index");
        assert_eq!(s.purge_expired(1_000, 10), 0);
        assert_eq!(s.get("k", 1_000, 1).unwrap().value(), "2");
    }

    #[test]
    fn the_same_deadline_set_twice_stays_indexed() {
        let mut s = Shard::default();
        s.insert(entry("k", "1", Some(100)), 0);
        s.insert(entry("k", "1", Some(100)), 0);
        s.assert_consistent(&"after two sets");
        assert_eq!(s.live_len(100), 0, "due at 100, so not live");
        assert_eq!(s.purge_expired(100, 10), 1);
        assert_eq!((s.len(), s.bytes()), (0, 0));
    }

    #[test]
    fn expired_entries_are_invisible_and_purged() {
        let mut s = Shard::default();
        s.insert(entry("a", "1", Some(100)), 0);
        s.insert(entry("b", "2", Some(200)), 0);
        s.insert(entry("c", "3", None), 0);
        assert_eq!(s.live_len(50), 3);
        assert_eq!(s.live_len(100), 2);
        assert!(s.get("a", 100, 0).is_none());
        assert_eq!(s.purge_expired(250, 10), 1);
        assert_eq!(s.live_len(250), 1);
        assert!(!s.has_ttl_keys());
    }

    #[test]
    fn purge_respects_budget() {
        let mut s = Shard::default();
        for i in 0..10 {
            s.insert(entry(&format!("k{i}"), "v", Some(10)), 0);
        }
        assert_eq!(s.purge_expired(20, 4), 4);
        assert_eq!(s.purge_expired(20, 100), 6);
        assert_eq!(s.live_len(20), 0);
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn bytes_follow_every_change() {
        let mut s = Shard::default();
        s.insert(entry("a", "1", None), 0);
        let one = s.bytes();
        assert_eq!(one, entry("a", "1", None).size());
        s.insert(entry("b", "22", Some(5)), 0);
        s.insert(entry("a", "333", None), 0);
        assert_eq!(
            s.bytes(),
            entry("b", "22", Some(5)).size() + entry("a", "333", None).size()
        );
        s.remove("a", 0);
        s.purge_expired(10, 10);
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn remove_of_expired_entry_reports_nothing() {
        let mut s = Shard::default();
        s.insert(entry("a", "1", Some(10)), 0);
        assert!(s.remove("a", 20).is_none());
        assert_eq!(s.live_len(0), 0);
    }

    #[test]
    fn sampling_finds_entries_and_their_idleness() {
        let mut s = Shard::default();
        let mut rng = fastrand::Rng::with_seed(7);
        assert!(s.sample(&mut rng, 0, 0).is_none());
        s.insert(Entry::new("old", "1", None, 10), 0);
        let sample = s.sample(&mut rng, 100, 0).unwrap();
        assert_eq!((&*sample.key, sample.idle), ("old", 90));
    }
}
