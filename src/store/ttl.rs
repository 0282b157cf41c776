//! A key's TTL read and changed on its own (`GET /ttl/{key}`,
//! `POST /expire`), without the client sending the value again.
//!
//! A changed deadline is journaled as the `SET` of the key's current value
//! with the new deadline: replay and compaction need nothing new, and the
//! deadline is absolute, so it survives a restart as `POST /set`'s does.

use std::num::NonZeroU64;

use super::namespace::Namespace;
use super::{Lsn, Mutation, Store, StoreError, access_of, now_ms};

impl Store {
    /// Milliseconds left before `key` expires: `None` when the key is
    /// absent (or expired), `Some(None)` when it never expires.
    pub fn ttl_ms(
        &self,
        namespace: Option<&str>,
        key: &str,
    ) -> Result<Option<Option<u64>>, StoreError> {
        self.check_namespace(namespace)?;
        let Some(space) = self.existing_namespace(namespace) else {
            return Ok(None);
        };
        let index = Namespace::shard_index(&self.hasher, key);
        let Some(mut shard) = space.existing_shard(index) else {
            return Ok(None);
        };
        let now = now_ms();
        Ok(shard
            .get(key, now, access_of(now))
            .map(|entry| entry.expires_at().map(|at| at.get().saturating_sub(now))))
    }

    /// Gives `key` the deadline `expires_at` (`None`: never expires),
    /// keeping its value; `None` when the key is absent (nothing is
    /// journaled then).
    pub fn expire(
        &self,
        namespace: Option<&str>,
        key: &str,
        expires_at: Option<u64>,
    ) -> Result<Option<Lsn>, StoreError> {
        self.check_namespace(namespace)?;
        let Some(space) = self.existing_namespace(namespace) else {
            return Ok(None);
        };
        let index = Namespace::shard_index(&self.hasher, key);
        let _admission = self.admission();
        let Some(mut shard) = space.existing_shard(index) else {
            return Ok(None);
        };
        let now = now_ms();
        let Some(value) = shard
            .get(key, now, access_of(now))
            .map(|e| e.value().to_owned())
        else {
            return Ok(None);
        };
        let mutation = Mutation::Set {
            namespace,
            key,
            value: &value,
            expires_at: expires_at.and_then(NonZeroU64::new).map(NonZeroU64::get),
        };
        self.write(&space, index, shard, &mutation, true).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sets_and_removes_a_deadline_keeping_the_value() {
        let store = Store::in_memory();
        assert_eq!(store.ttl_ms(None, "k").unwrap(), None);
        store.set(None, "k", "\"v\"", None).unwrap();
        assert_eq!(store.ttl_ms(None, "k").unwrap(), Some(None));
        store
            .expire(None, "k", Some(now_ms() + 60_000))
            .unwrap()
            .unwrap();
        let left = store.ttl_ms(None, "k").unwrap().unwrap().unwrap();
        assert!((59_000..=60_000).contains(&left), "{left}");
        assert_eq!(store.get(None, "k").unwrap().as_deref(), Some("\"v\""));
        store.expire(None, "k", None).unwrap().unwrap();
        assert_eq!(store.ttl_ms(None, "k").unwrap(), Some(None));
        assert_eq!(store.expire(None, "missing", None).unwrap(), None);
        // A deadline already past: the key is gone.
        store
            .expire(None, "k", Some(now_ms() - 1))
            .unwrap()
            .unwrap();
        assert_eq!(store.get(None, "k").unwrap(), None);
    }
}
