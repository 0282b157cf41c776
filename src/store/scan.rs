//! Listing a namespace's keys page by page, in key order, for the console
//! and for clients that need to walk a namespace.
//!
//! Why "the smallest keys after the cursor" rather than Redis's SCAN over
//! table buckets: the cursor is then the last key returned, and stays
//! valid whatever the table does meanwhile (a resize moves every bucket).
//! Every key present for the whole listing is returned exactly once, in
//! order; keys written or deleted meanwhile may or may not appear. A page
//! costs one pass over the namespace, one shard locked at a time, so no
//! listing ever holds a namespace's locks for longer than one shard's pass.

use std::collections::BinaryHeap;

use super::{Store, StoreError, now_ms};

/// Most keys a page may hold.
pub const MAX_PAGE: usize = 1000;

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys in order.
    pub keys: Vec<String>,
    /// Where the next page starts (the last key of this one); `None` when
    /// this page is the last.
    pub next_cursor: Option<String>,
}

impl Store {
    /// Up to `limit` live keys of `namespace` that start with `prefix` and
    /// sort after `after`, in order.
    pub fn list_keys(
        &self,
        namespace: Option<&str>,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage, StoreError> {
        self.check_namespace(namespace)?;
        let limit = limit.clamp(1, MAX_PAGE);
        let now = now_ms();
        // A max-heap of the `limit + 1` smallest keys seen: one more than
        // the page, to know whether another page follows.
        let mut smallest: BinaryHeap<String> = BinaryHeap::with_capacity(limit + 2);
        self.with_namespace(namespace, |space| {
            for (_, shard) in space.existing_shards() {
                for entry in shard.live_entries(now) {
                    let key = entry.key();
                    if !key.starts_with(prefix) || after.is_some_and(|a| key <= a) {
                        continue;
                    }
                    if smallest.len() <= limit {
                        smallest.push(key.to_owned());
                    } else if smallest.peek().is_some_and(|top| key < top.as_str()) {
                        smallest.pop();
                        smallest.push(key.to_owned());
                    }
                }
            }
        });
        let mut keys = smallest.into_sorted_vec();
        let more = keys.len() > limit;
        keys.truncate(limit);
        let next_cursor = if more { keys.last().cloned() } else { None };
        Ok(KeyPage { keys, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[test]
    fn pages_walk_every_key_once_in_order() {
        let store = Store::in_memory();
        for i in 0..250 {
            store
                .set(Some("n"), &format!("k{i:03}"), "1", None)
                .unwrap();
        }
        store.set(Some("n"), "other", "1", None).unwrap();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .list_keys(Some("n"), "k", cursor.as_deref(), 100)
                .unwrap();
            assert!(page.keys.len() <= 100);
            seen.extend(page.keys);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let expected: Vec<String> = (0..250).map(|i| format!("k{i:03}")).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn expired_keys_and_other_namespaces_are_not_listed() {
        let store = Store::in_memory();
        store.set(Some("n"), "live", "1", None).unwrap();
        store.set(Some("n"), "gone", "1", Some(1)).unwrap();
        store.set(Some("m"), "elsewhere", "1", None).unwrap();
        store.set(None, "default", "1", None).unwrap();
        let page = store.list_keys(Some("n"), "", None, 10).unwrap();
        assert_eq!(page.keys, vec!["live"]);
        assert_eq!(page.next_cursor, None);
        assert_eq!(
            store.list_keys(None, "", None, 10).unwrap().keys,
            vec!["default"]
        );
        assert!(
            store
                .list_keys(Some("nope"), "", None, 10)
                .unwrap()
                .keys
                .is_empty()
        );
    }
}
