//! One shard of a namespace: a hash map of entries plus the index of their
//! expiry deadlines.
//!
//! Why a `BTreeSet<(deadline, key)>` beside the map: the active expiry cycle
//! must find the keys that are due without walking the whole map, so the
//! cost of a tick is proportional to what expires, not to what is stored.
//! Only keys with a TTL pay for a copy of their name in the index.

use std::collections::BTreeSet;
use std::num::NonZeroU64;

use hashbrown::HashMap;

/// A stored value: the JSON text the client sent, kept verbatim so that it
/// is given back unchanged without being parsed again.
pub(crate) type JsonText = Box<str>;

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub value: JsonText,
    /// Absolute deadline in milliseconds since the Unix epoch.
    pub expires_at: Option<NonZeroU64>,
}

impl Entry {
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|at| at.get() <= now_ms)
    }
}

#[derive(Default)]
pub(crate) struct Shard {
    map: HashMap<Box<str>, Entry>,
    expiry: BTreeSet<(u64, Box<str>)>,
}

impl Shard {
    /// The live entry under `key`; an expired one is removed on the way.
    pub fn get(&mut self, key: &str, now_ms: u64) -> Option<&Entry> {
        if self.map.get(key)?.is_expired(now_ms) {
            self.remove(key, now_ms);
            return None;
        }
        self.map.get(key)
    }

    /// Stores `entry`, returning the live entry it replaced.
    pub fn insert(&mut self, key: &str, entry: Entry, now_ms: u64) -> Option<Entry> {
        if let Some(at) = entry.expires_at {
            self.expiry.insert((at.get(), key.into()));
        }
        let old = match self.map.get_mut(key) {
            Some(slot) => Some(std::mem::replace(slot, entry)),
            None => {
                self.map.insert(key.into(), entry);
                None
            }
        };
        let old = old?;
        if let Some(at) = old.expires_at {
            self.unindex(at.get(), key);
        }
        (!old.is_expired(now_ms)).then_some(old)
    }

    /// Removes `key`, returning its entry if it was live.
    pub fn remove(&mut self, key: &str, now_ms: u64) -> Option<Entry> {
        let old = self.map.remove(key)?;
        if let Some(at) = old.expires_at {
            self.unindex(at.get(), key);
        }
        (!old.is_expired(now_ms)).then_some(old)
    }

    fn unindex(&mut self, deadline: u64, key: &str) {
        // BTreeSet needs an owned tuple to look up; this only runs for keys
        // that carry a TTL.
        self.expiry.remove(&(deadline, Box::<str>::from(key)));
    }

    /// Removes up to `budget` entries whose deadline has passed; returns how
    /// many were removed.
    pub fn purge_expired(&mut self, now_ms: u64, budget: usize) -> usize {
        let mut removed = 0;
        while removed < budget {
            match self.expiry.first() {
                Some((deadline, _)) if *deadline <= now_ms => {
                    let (_, key) = self.expiry.pop_first().expect("first() was Some");
                    self.map.remove(&key);
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
        self.map.len() - self.expired_count(now_ms)
    }

    pub fn has_ttl_keys(&self) -> bool {
        !self.expiry.is_empty()
    }

    /// Iterates the live entries, for snapshots and listings.
    pub fn live_entries(&self, now_ms: u64) -> impl Iterator<Item = (&str, &Entry)> {
        self.map
            .iter()
            .filter(move |(_, e)| !e.is_expired(now_ms))
            .map(|(k, e)| (&**k, e))
    }

    /// Empties the shard in O(1), handing back the old contents so that the
    /// caller can free them outside the lock.
    pub fn take(&mut self) -> Shard {
        std::mem::take(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(v: &str, at: Option<u64>) -> Entry {
        Entry {
            value: v.into(),
            expires_at: at.and_then(NonZeroU64::new),
        }
    }

    #[test]
    fn insert_replaces_and_reindexes_deadline() {
        let mut s = Shard::default();
        assert!(s.insert("k", entry("1", Some(100)), 0).is_none());
        let old = s.insert("k", entry("2", None), 0).unwrap();
        assert_eq!(&*old.value, "1");
        assert!(!s.has_ttl_keys(), "old deadline must leave the index");
        assert_eq!(s.purge_expired(1_000, 10), 0);
        assert_eq!(&*s.get("k", 1_000).unwrap().value, "2");
    }

    #[test]
    fn expired_entries_are_invisible_and_purged() {
        let mut s = Shard::default();
        s.insert("a", entry("1", Some(100)), 0);
        s.insert("b", entry("2", Some(200)), 0);
        s.insert("c", entry("3", None), 0);
        assert_eq!(s.live_len(50), 3);
        assert_eq!(s.live_len(100), 2);
        assert!(s.get("a", 100).is_none());
        assert_eq!(s.purge_expired(250, 10), 1);
        assert_eq!(s.live_len(250), 1);
        assert!(!s.has_ttl_keys());
    }

    #[test]
    fn purge_respects_budget() {
        let mut s = Shard::default();
        for i in 0..10 {
            s.insert(&format!("k{i}"), entry("v", Some(10)), 0);
        }
        assert_eq!(s.purge_expired(20, 4), 4);
        assert_eq!(s.purge_expired(20, 100), 6);
        assert_eq!(s.live_len(20), 0);
    }

    #[test]
    fn remove_of_expired_entry_reports_nothing() {
        let mut s = Shard::default();
        s.insert("a", entry("1", Some(10)), 0);
        assert!(s.remove("a", 20).is_none());
        assert_eq!(s.live_len(0), 0);
    }
}
