//! Replay's writes, applied many at a time.
//!
//! Why: applied one by one, each replayed SET looks its namespace up (a
//! read lock and an `Arc` count), locks its shard and, on unlocking,
//! accounts its bytes to the namespace and the store: about eight atomic
//! operations a record. Each is a full barrier on x86, which waits for the
//! record's stores into a large table (cache misses) to drain, so the
//! misses of one record could not overlap those of the next: 13 % of a
//! replay's samples sat on the first of them. Here a namespace is looked
//! up once per call, and a shard locked (and accounted) once for each run
//! of consecutive writes that fall in it; the caller orders a namespace's
//! writes by [`Store::shard_of`] to make the runs long.
//!
//! Nothing is journaled, limits are not checked (replay restores what the
//! log holds; `Store::enforce_limits` runs after), and the feed sees
//! nothing (nobody watches before the server listens).

use std::num::NonZeroU64;

use super::clock::access_of;
use super::namespace::{Namespace, ShardGuard};
use super::shard::Entry;
use super::{Mutation, Store};

/// A set or delete of replay, made ready to apply: a set's entry is built
/// (allocated and filled) where it is made, so that replay builds entries
/// on its decoding thread, while the line is in that core's cache, and the
/// applying thread only inserts them.
pub struct ReplayedWrite<'a>(Write<'a>);

enum Write<'a> {
    Set(Entry),
    Delete(&'a str),
}

impl<'a> ReplayedWrite<'a> {
    /// The set of a replayed `Mutation::Set`, at the wall-clock time `now`
    /// (milliseconds) for its last access.
    pub fn new(mutation: &Mutation<'a>, now: u64) -> Self {
        match *mutation {
            Mutation::Set {
                key,
                value,
                expires_at,
                ..
            } => {
                let at = expires_at.and_then(NonZeroU64::new);
                ReplayedWrite(Write::Set(Entry::new(key, value, at, access_of(now))))
            }
            Mutation::Delete { key, .. } => ReplayedWrite(Write::Delete(key)),
            _ => panic!("a replayed write is a set or a delete, not {mutation:?}"),
        }
    }

    pub fn key(&self) -> &str {
        match &self.0 {
            Write::Set(entry) => entry.key(),
            Write::Delete(key) => key,
        }
    }
}

impl Store {
    /// The shard of a namespace that holds `key`: writes of one namespace
    /// ordered by it (keeping their order within each shard) are applied
    /// with one lock per shard by [`Store::apply_replayed`].
    pub fn shard_of(&self, key: &str) -> usize {
        Namespace::shard_index(&self.hasher, key)
    }

    /// Applies `writes` to `namespace` in their order, without journaling
    /// them, at the wall-clock time `now` (milliseconds): what replaying
    /// them one by one with [`Store::apply`] would do.
    pub fn apply_replayed<'w>(
        &self,
        namespace: Option<&str>,
        writes: impl IntoIterator<Item = ReplayedWrite<'w>>,
        now: u64,
    ) {
        let mut writes = writes.into_iter().peekable();
        let mut space = self.existing_namespace(namespace);
        // A namespace that does not exist is created by its first set, as
        // `apply` does; deletes before it find nothing to delete.
        while space.is_none() {
            match writes.peek() {
                None => return,
                Some(ReplayedWrite(Write::Set(_))) => {
                    space = Some(self.namespace_or_create(namespace));
                }
                Some(_) => drop(writes.next()),
            }
        }
        let space = space.expect("found or created above");
        let mut locked: Option<(usize, ShardGuard<'_>)> = None;
        for write in writes {
            let index = self.shard_of(write.key());
            let shard = match &mut locked {
                Some((at, shard)) if *at == index => shard,
                // The previous run's guard accounts its changes as it is
                // replaced.
                _ => &mut locked.insert((index, space.shard(index))).1,
            };
            match write.0 {
                Write::Set(entry) => drop(shard.insert(entry, now)),
                Write::Delete(key) => drop(shard.remove(key, now)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::now_ms;

    /// The same writes, applied by `apply_replayed` in shard order and one
    /// by one in log order, leave the same store.
    #[test]
    fn applies_as_one_by_one_does() {
        let bulk = Store::in_memory();
        let single = Store::in_memory();
        let mut writes = Vec::new();
        let keys: Vec<String> = (0..200).map(|i| format!("k{}", i % 70)).collect();
        for (i, key) in keys.iter().enumerate() {
            writes.push(match i % 5 {
                3 => Mutation::Delete {
                    namespace: Some("n"),
                    key,
                },
                4 => Mutation::Set {
                    namespace: Some("n"),
                    key,
                    value: "\"later\"",
                    expires_at: Some(now_ms() + 3_600_000),
                },
                _ => Mutation::Set {
                    namespace: Some("n"),
                    key,
                    value: if i < 100 { "1" } else { "2" },
                    expires_at: None,
                },
            });
        }
        for write in &writes {
            single.apply(write, false).unwrap();
        }
        let now = now_ms();
        let mut ordered: Vec<_> = writes.iter().map(|w| ReplayedWrite::new(w, now)).collect();
        ordered.sort_by_key(|write| bulk.shard_of(write.key()));
        bulk.apply_replayed(Some("n"), ordered, now);
        bulk.assert_consistent(&"after apply_replayed");
        assert_eq!(bulk.stats().total_keys, single.stats().total_keys);
        assert_eq!(bulk.stats().used_bytes, single.stats().used_bytes);
        for key in &keys {
            assert_eq!(
                bulk.get(Some("n"), key).unwrap(),
                single.get(Some("n"), key).unwrap(),
                "{key}"
            );
        }
    }

    #[test]
    fn deletes_alone_create_no_namespace() {
        let store = Store::in_memory();
        let delete = Mutation::Delete {
            namespace: Some("gone"),
            key: "k",
        };
        store.apply_replayed(Some("gone"), [ReplayedWrite::new(&delete, 0)], now_ms());
        assert!(store.named_namespace("gone").is_none());
    }

    #[test]
    fn deletes_first_apply_to_an_existing_namespace() {
        let store = Store::in_memory();
        store.set(Some("n"), "k", "1", None).unwrap();
        let delete = Mutation::Delete {
            namespace: Some("n"),
            key: "k",
        };
        let set = Mutation::Set {
            namespace: Some("n"),
            key: "j",
            value: "2",
            expires_at: None,
        };
        let writes = [delete, set].map(|w| ReplayedWrite::new(&w, now_ms()));
        store.apply_replayed(Some("n"), writes, now_ms());
        assert_eq!(store.get(Some("n"), "k").unwrap(), None);
        assert_eq!(store.get(Some("n"), "j").unwrap().as_deref(), Some("2"));
    }
}
