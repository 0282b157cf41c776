//! Snapshots of the store's counters, as reported by `/stats`.
//!
//! Two ways to gather them: [`Store::stats`] walks every namespace (the
//! server-wide view, O(namespaces)), and [`Store::named_stats`] looks up
//! only the namespaces it is given, so a tenant's view costs O(its
//! namespaces) however many namespaces the server holds.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Store, now_ms, stats_of};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NamespaceStats {
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub total_keys: usize,
    /// Bytes accounted to the namespace's entries (see `ENTRY_OVERHEAD`).
    pub used_bytes: u64,
    pub evictions: u64,
    /// Keys removed because their TTL ran out.
    pub expirations: u64,
}

impl NamespaceStats {
    /// Adds `other`'s figures to these, for totals over several namespaces.
    pub fn add(&mut self, other: &NamespaceStats) {
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
        self.total_keys += other.total_keys;
        self.used_bytes += other.used_bytes;
        self.evictions += other.evictions;
        self.expirations += other.expirations;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Live keys in every namespace, the default one included.
    pub total_keys: usize,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub used_bytes: u64,
    pub evictions: u64,
    pub expirations: u64,
    pub default_namespace: NamespaceStats,
    /// Named namespaces holding at least one live key.
    pub namespaces: BTreeMap<String, NamespaceStats>,
}

impl StoreStats {
    /// The figures of `namespaces` alone, with totals over them: what a
    /// caller who may see only these namespaces is shown. The default
    /// namespace stays at zero.
    pub fn over(namespaces: BTreeMap<String, NamespaceStats>) -> StoreStats {
        let mut total = NamespaceStats::default();
        for stats in namespaces.values() {
            total.add(stats);
        }
        StoreStats::with_totals(&total, namespaces)
    }

    /// Figures whose totals are `total` (which may count namespaces not
    /// listed), listing `namespaces`; the default namespace stays at zero.
    pub fn with_totals(
        total: &NamespaceStats,
        namespaces: BTreeMap<String, NamespaceStats>,
    ) -> StoreStats {
        StoreStats {
            total_keys: total.total_keys,
            cache_hits: total.cache_hits,
            cache_misses: total.cache_misses,
            used_bytes: total.used_bytes,
            evictions: total.evictions,
            expirations: total.expirations,
            default_namespace: NamespaceStats::default(),
            namespaces,
        }
    }
}

impl Store {
    /// Counters of the named namespaces among `names` that hold at least
    /// one live key, as [`StoreStats::namespaces`] lists them: one lookup
    /// per name, whatever the number of namespaces. Names that are not
    /// valid namespace names cannot exist, so they are simply absent.
    pub fn named_stats<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> BTreeMap<String, NamespaceStats> {
        let now = now_ms();
        names
            .into_iter()
            .filter_map(|name| {
                let space = self.named_namespace(name)?;
                let stats = stats_of(&space, now);
                (stats.total_keys > 0).then(|| (name.to_owned(), stats))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_stats_looks_up_only_the_names_given_that_hold_keys() {
        let store = Store::in_memory();
        for (ns, keys) in [("a", 2), ("b", 1), ("c", 3)] {
            for i in 0..keys {
                store.set(Some(ns), &format!("k{i}"), "1", None).unwrap();
            }
        }
        store.set(Some("emptied"), "k", "1", None).unwrap();
        store.clear_namespace("emptied").unwrap();
        assert!(store.get(Some("b"), "k0").unwrap().is_some());

        let seen = store.named_stats(["b", "c", "emptied", "never", "not valid!"]);
        assert_eq!(seen.keys().collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(seen["b"].total_keys, 1);
        assert_eq!(seen["b"].cache_hits, 1);
        assert_eq!(seen["c"].total_keys, 3);
        // The same figures as the server-wide walk shows.
        let all = store.stats().namespaces;
        assert_eq!(seen["b"], all["b"]);
        assert_eq!(seen["c"], all["c"]);

        let over = StoreStats::over(seen);
        assert_eq!(over.total_keys, 4);
        assert_eq!(over.cache_hits, 1);
        assert_eq!(over.used_bytes, all["b"].used_bytes + all["c"].used_bytes);
        assert_eq!(over.default_namespace, NamespaceStats::default());
    }
}
