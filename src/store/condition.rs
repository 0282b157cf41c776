//! Conditional writes, HTTP's optimistic concurrency: a write that happens
//! only if the key is as the client last saw it (`If-Match: "<etag>"`), or
//! only if it does not exist (`If-None-Match: *`). The check and the write
//! are one step under the key's shard lock, so of two racing writers with
//! the same tag exactly one wins.
//!
//! A key's tag is a hash of its value's JSON text: the first 64 bits of its
//! SHA-1. It changes whenever the value changes and costs nothing to keep
//! (it is not stored). SHA-1 rather than a cheaper hash because a Redis
//! script can compute it too (`redis.sha1hex`), so every backend and every
//! node agrees on a key's tag, and the Redis backend checks a condition in
//! the same script that writes. (It is an identity, not a defence: a
//! client that can write the key needs no collision.)

use super::namespace::Namespace;
use super::{Lsn, Mutation, Store, StoreError, access_of, now_ms};

/// What must hold for a conditional write to happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The key exists and its value's tag is this one.
    Matches(u64),
    /// The key exists (`If-Match: *`).
    Present,
    /// Never holds: `If-Match` with a tag this server cannot have given.
    Never,
    /// The key does not exist, or its tag is not this one (`If-None-Match:
    /// "<tag>"` on a write).
    Differs(u64),
    /// The key does not exist (or has expired).
    Absent,
}

/// The tag of a value: the first 64 bits of the SHA-1 of its JSON text.
pub fn etag_of(value: impl AsRef<[u8]>) -> u64 {
    use sha1::Digest;
    let digest = sha1::Sha1::digest(value.as_ref());
    u64::from_be_bytes(digest[..8].try_into().expect("SHA-1 has 20 bytes"))
}

impl Condition {
    /// Whether a key whose current tag is `current` meets it; the error
    /// carries that tag.
    pub fn holds(self, current: Option<u64>) -> Result<(), StoreError> {
        let holds = match self {
            Condition::Matches(tag) => current == Some(tag),
            Condition::Present => current.is_some(),
            Condition::Never => false,
            Condition::Differs(tag) => current != Some(tag),
            Condition::Absent => current.is_none(),
        };
        if holds {
            Ok(())
        } else {
            Err(StoreError::ConditionFailed { current })
        }
    }
}

impl Store {
    /// [`Store::set`] if `condition` holds for the key's current value.
    pub fn set_if(
        &self,
        namespace: Option<&str>,
        key: &str,
        value: &str,
        expires_at: Option<u64>,
        condition: Condition,
    ) -> Result<Lsn, StoreError> {
        self.check_key(key)?;
        self.check_namespace(namespace)?;
        let space = self.namespace_or_create(namespace);
        let index = Namespace::shard_index(&self.hasher, key);
        let _admission = self.admission();
        let mut shard = space.shard(index);
        let now = now_ms();
        let current = shard
            .get(key, now, access_of(now))
            .map(|e| etag_of(e.value()));
        condition.holds(current)?;
        let mutation = Mutation::Set {
            namespace,
            key,
            value,
            expires_at,
        };
        self.write(&space, index, shard, &mutation, true)
    }

    /// [`Store::delete`] if `condition` holds for the key's current value;
    /// `None` when the key was absent (and the condition allowed it).
    pub fn delete_if(
        &self,
        namespace: Option<&str>,
        key: &str,
        condition: Condition,
    ) -> Result<Option<Lsn>, StoreError> {
        self.check_namespace(namespace)?;
        let index = Namespace::shard_index(&self.hasher, key);
        let space = self.existing_namespace(namespace);
        let Some(mut shard) = space.as_ref().and_then(|space| space.existing_shard(index)) else {
            return condition.holds(None).map(|()| None);
        };
        let now = now_ms();
        let current = shard
            .get(key, now, access_of(now))
            .map(|e| etag_of(e.value()));
        condition.holds(current)?;
        // Removed under the same lock as the check.
        let mutation = Mutation::Delete { namespace, key };
        let space = space.as_ref().expect("the shard is the namespace's");
        self.remove_locked(space, index, shard, &mutation, true)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// The first 16 hex digits of SHA-1, as `redis.sha1hex` writes it.
    #[test]
    fn the_tag_is_the_head_of_sha1() {
        // SHA-1("abc") = a9993e364706816aba3e25717850c26c9cd0d89d
        assert_eq!(format!("{:016x}", etag_of("abc")), "a9993e364706816a");
    }

    #[test]
    fn writes_only_when_the_condition_holds() {
        let store = Store::in_memory();
        let tag = etag_of("1");
        assert!(
            store
                .set_if(None, "k", "1", None, Condition::Absent)
                .is_ok()
        );
        assert_eq!(
            store.set_if(None, "k", "2", None, Condition::Absent),
            Err(StoreError::ConditionFailed { current: Some(tag) })
        );
        assert!(
            store
                .set_if(None, "k", "2", None, Condition::Matches(tag))
                .is_ok()
        );
        assert_eq!(store.get(None, "k").unwrap().as_deref(), Some("2"));
        assert!(store.delete_if(None, "k", Condition::Matches(tag)).is_err());
        let deleted = store.delete_if(None, "k", Condition::Matches(etag_of("2")));
        assert!(deleted.unwrap().is_some());
        assert_eq!(store.get(None, "k").unwrap(), None);
    }

    #[test]
    fn of_racing_writers_with_the_same_tag_exactly_one_wins() {
        let store = Arc::new(Store::in_memory());
        store.set(None, "k", "0", None).unwrap();
        let tag = etag_of("0");
        let wins = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let (store, wins) = (store.clone(), wins.clone());
                std::thread::spawn(move || {
                    let value = format!("{}", i + 1);
                    if store
                        .set_if(None, "k", &value, None, Condition::Matches(tag))
                        .is_ok()
                    {
                        wins.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(wins.load(Ordering::SeqCst), 1);
    }
}
