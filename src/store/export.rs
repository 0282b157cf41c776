//! Reading a namespace out whole, page by page, with each key's value and
//! absolute deadline: what an export streams and an import (or
//! `pykv migrate`) writes back with [`Store::set`].
//!
//! A page is the listing's page ([`Store::list_keys`]), so it keeps the
//! listing's promise: every key live for the whole export is met exactly
//! once, in key order. Its entries are then read one shard lock at a time
//! with `peek`, which neither counts a lookup nor marks the key used: an
//! export is no reader's traffic and must not reorder the LRU.

use super::namespace::Namespace;
use super::{Store, StoreError, now_ms};

/// Bytes of keys and values after which a page ends, before its count of
/// keys is reached: a page of large values stays about this size.
pub const PAGE_BYTES: usize = 1 << 20;

/// One key as an export writes it and an import restores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    /// JSON text of the value.
    pub value: String,
    /// Absolute deadline, milliseconds since the Unix epoch; `None`: the
    /// key never expires.
    pub expires_at: Option<u64>,
}

impl Record {
    /// Whether its deadline has passed at `now_ms`: an import skips it.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now_ms)
    }
}

/// A page of records, in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordPage {
    pub records: Vec<Record>,
    /// Where the next page starts; `None` when this page is the last.
    pub next_cursor: Option<String>,
}

impl Store {
    /// Up to `limit` live keys of `namespace` after `after`, in order, with
    /// their values and deadlines, ending early past [`PAGE_BYTES`]. A key
    /// removed between the listing and the read is left out: it was not
    /// live for the whole export.
    pub fn export_page(
        &self,
        namespace: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage, StoreError> {
        let page = self.list_keys(namespace, "", after, limit)?;
        let now = now_ms();
        let mut out = RecordPage {
            records: Vec::new(),
            next_cursor: page.next_cursor,
        };
        self.with_namespace(namespace, |space| {
            let mut bytes = 0;
            for (i, key) in page.keys.iter().enumerate() {
                let index = Namespace::shard_index(&self.hasher, key);
                let Some(shard) = space.existing_shard(index) else {
                    continue;
                };
                let Some(entry) = shard.peek(key).filter(|e| !e.is_expired(now)) else {
                    continue;
                };
                bytes += key.len() + entry.value().len();
                out.records.push(Record {
                    key: key.clone(),
                    value: entry.value().to_owned(),
                    expires_at: entry.expires_at().map(|at| at.get()),
                });
                if bytes >= PAGE_BYTES && i + 1 < page.keys.len() {
                    out.next_cursor = Some(key.clone());
                    break;
                }
            }
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_carry_values_and_absolute_deadlines_in_key_order() {
        let store = Store::in_memory();
        let deadline = now_ms() + 60_000;
        store.set(Some("n"), "b", "2", Some(deadline)).unwrap();
        store.set(Some("n"), "a", "\"one\"", None).unwrap();
        store.set(Some("n"), "c", "3", Some(now_ms() - 1)).unwrap();
        store.set(Some("m"), "x", "0", None).unwrap();
        let first = store.export_page(Some("n"), None, 1).unwrap();
        assert_eq!(
            first.records,
            vec![Record {
                key: "a".into(),
                value: "\"one\"".into(),
                expires_at: None
            }]
        );
        let rest = store
            .export_page(Some("n"), first.next_cursor.as_deref(), 10)
            .unwrap();
        assert_eq!(
            rest.records,
            vec![Record {
                key: "b".into(),
                value: "2".into(),
                expires_at: Some(deadline)
            }]
        );
        assert_eq!(rest.next_cursor, None);
        // An export reads without counting lookups.
        assert_eq!(store.namespace_stats(Some("n")).unwrap().cache_hits, 0);
        assert!(
            store
                .export_page(Some("nope"), None, 10)
                .unwrap()
                .records
                .is_empty()
        );
    }
}
