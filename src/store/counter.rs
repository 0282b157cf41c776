//! Atomic counters (`POST /incr`): read the integer under a key, add to it,
//! store the sum, in one step under the key's shard lock, so that
//! concurrent increments never lose an update.
//!
//! The sum is journaled as the `SET` of its JSON text, with the key's
//! deadline: replay, compaction and the log's format need nothing new, and
//! a counter is an ordinary key to every other operation.

use std::num::NonZeroU64;

use super::namespace::Namespace;
use super::{Lsn, Mutation, Store, StoreError, access_of, now_ms};

impl Store {
    /// Adds `by` to the integer under `key` (0 when absent or expired) and
    /// returns the sum. The key keeps its deadline unless `expires_at`
    /// gives a new one; a new key has none unless given. A value that is
    /// not an integer, or a sum past the range of `i64`, changes nothing.
    pub fn incr(
        &self,
        namespace: Option<&str>,
        key: &str,
        by: i64,
        expires_at: Option<u64>,
    ) -> Result<(i64, Lsn), StoreError> {
        self.check_key(key)?;
        self.check_namespace(namespace)?;
        let space = self.namespace_or_create(namespace);
        let index = Namespace::shard_index(&self.hasher, key);
        let _admission = self.admission();
        let mut shard = space.shard(index);
        let now = now_ms();
        let (current, deadline) = match shard.get(key, now, access_of(now)) {
            Some(entry) => (
                counter_value(entry.value())?,
                entry.expires_at().map(NonZeroU64::get),
            ),
            None => (0, None),
        };
        let sum = current
            .checked_add(by)
            .ok_or(StoreError::Overflow { value: current, by })?;
        let text = sum.to_string();
        let mutation = Mutation::Set {
            namespace,
            key,
            value: &text,
            expires_at: expires_at.or(deadline),
        };
        let lsn = self.write(&space, index, shard, &mutation, true)?;
        Ok((sum, lsn))
    }
}

/// The integer a counter's JSON text holds, or what it is instead.
pub fn counter_value(json: &str) -> Result<i64, StoreError> {
    let json = json.trim();
    if let Ok(n) = json.parse::<i64>() {
        return Ok(n);
    }
    let found = match json.as_bytes().first() {
        Some(b'"') => "a JSON string",
        Some(b'{') => "a JSON object",
        Some(b'[') => "a JSON array",
        Some(b't' | b'f') => "a JSON boolean",
        Some(b'n') => "JSON null",
        // A number, but not an i64: a fraction, an exponent, or too large.
        _ => "a number that is not a 64-bit integer",
    };
    Err(StoreError::NotAnInteger { found })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn counts_from_zero_and_keeps_the_deadline() {
        let store = Store::in_memory();
        assert_eq!(store.incr(None, "c", 1, None).unwrap().0, 1);
        assert_eq!(store.incr(None, "c", -5, None).unwrap().0, -4);
        let deadline = now_ms() + 200;
        store.set(Some("n"), "t", "10", Some(deadline)).unwrap();
        assert_eq!(store.incr(Some("n"), "t", 2, None).unwrap().0, 12);
        assert_eq!(store.get(Some("n"), "t").unwrap().as_deref(), Some("12"));
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(
            store.get(Some("n"), "t").unwrap(),
            None,
            "the deadline was kept"
        );
        // Expired, it counts from 0 again.
        assert_eq!(store.incr(Some("n"), "t", 1, None).unwrap().0, 1);
    }

    #[test]
    fn refuses_what_is_not_an_integer_and_overflows_changing_nothing() {
        let store = Store::in_memory();
        for (value, found) in [
            ("\"7\"", "a JSON string"),
            ("{}", "a JSON object"),
            ("1.5", "a number that is not a 64-bit integer"),
            ("true", "a JSON boolean"),
        ] {
            store.set(None, "k", value, None).unwrap();
            assert_eq!(
                store.incr(None, "k", 1, None),
                Err(StoreError::NotAnInteger { found })
            );
            assert_eq!(store.get(None, "k").unwrap().as_deref(), Some(value));
        }
        store.set(None, "max", &i64::MAX.to_string(), None).unwrap();
        assert!(matches!(
            store.incr(None, "max", 1, None),
            Err(StoreError::Overflow { .. })
        ));
        assert_eq!(store.incr(None, "max", -1, None).unwrap().0, i64::MAX - 1);
    }

    #[test]
    fn concurrent_increments_lose_no_update() {
        let store = Arc::new(Store::in_memory());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        store.incr(Some("n"), "hits", 1, None).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(
            store.get(Some("n"), "hits").unwrap().as_deref(),
            Some("4000")
        );
    }
}
