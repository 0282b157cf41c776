//! Transactions (`POST /batch` with `"atomic": true`) in the engine: every
//! op of a batch applied, or none, with no other request seeing a part of
//! it, and journaled as one record so that a crash never leaves half of
//! one in the log.
//!
//! How:
//! 1. Lock every shard the ops' keys fall in, in index order (the only
//!    order in which several shards are held, so it cannot deadlock), and
//!    under `noeviction` with limits the admission lock first, as every
//!    write does.
//! 2. Work out the outcome of every op and the final state of every key
//!    written ([`super::batch::plan`]), reading only the locked shards; the
//!    first op that cannot be applied aborts with nothing written.
//! 3. Check the limits against the whole change, then write the final
//!    states, keeping each key's old entry for the undo.
//! 4. Hand the writes to the journal as one [`Mutation::Transaction`]: one
//!    line of the log, so a replay applies all of it or, torn, none. If
//!    the journal refuses it, the old entries go back before any lock is
//!    released; if it later fails to make it durable, the undo puts them
//!    all back (src/wal/writer.rs).

use std::sync::atomic::Ordering;

use super::batch::{BatchOp, FinalState, Outcome, lookups, nonzero, plan};
use super::namespace::{Namespace, ShardGuard};
use super::shard::Entry;
use super::undo::{Undo, UndoAction, restore_keys};
use super::{Journal, Lsn, Mutation, NoJournal, Store, StoreError, access_of, now_ms};

impl Store {
    /// Runs `ops` in `namespace` as one transaction: the outcome of every
    /// op, and the journal position of its writes (`None` when it wrote
    /// nothing). Nothing is applied when it fails; the error is
    /// [`StoreError::Aborted`] naming the op, or a refusal of the whole
    /// (a bad namespace, a limit, a log that cannot be written).
    pub fn transact(
        &self,
        namespace: Option<&str>,
        ops: &[BatchOp],
    ) -> Result<(Vec<Outcome>, Option<Lsn>), StoreError> {
        self.check_namespace(namespace)?;
        let writes_any = ops.iter().any(|op| op.kind.writes());
        let space = if writes_any {
            self.namespace_or_create(namespace)
        } else {
            match self.existing_namespace(namespace) {
                Some(space) => space,
                // Nothing to read and nothing to write.
                None => return Ok((plan(ops, |k| self.check_key(k), |_| None)?.outcomes, None)),
            }
        };
        let mut indexes: Vec<usize> = (ops.iter())
            .map(|op| Namespace::shard_index(&self.hasher, &op.key))
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        let _admission = if writes_any { self.admission() } else { None };
        let mut shards: Vec<(usize, ShardGuard<'_>)> =
            indexes.into_iter().map(|i| (i, space.shard(i))).collect();
        let now = now_ms();
        let access = access_of(now);
        let plan = plan(
            ops,
            |key| self.check_key(key),
            |key| {
                let shard = shard_of(&mut shards, Namespace::shard_index(&self.hasher, key));
                (shard.get(key, now, access))
                    .map(|e| (e.value().to_owned(), e.expires_at().map(|at| at.get())))
            },
        )?;
        let (hits, misses) = lookups(ops, &plan.outcomes);
        space.hits.fetch_add(hits, Ordering::Relaxed);
        space.misses.fetch_add(misses, Ordering::Relaxed);
        if plan.writes.is_empty() {
            return Ok((plan.outcomes, None));
        }
        let entries: Vec<(usize, Option<Entry>)> = (plan.writes.iter())
            .map(|(key, state)| {
                let index = Namespace::shard_index(&self.hasher, key);
                let entry = match state {
                    FinalState::Present { value, expires_at } => {
                        Some(Entry::new(key, value, nonzero(*expires_at), access))
                    }
                    FinalState::Absent => None,
                };
                (index, entry)
            })
            .collect();
        if self.limited() {
            self.check_transaction_limits(&space, &mut shards, &plan.writes, &entries)?;
        }
        let mut restores = Vec::with_capacity(entries.len());
        for ((key, _), (index, entry)) in plan.writes.iter().zip(entries) {
            let shard = shard_of(&mut shards, index);
            let old = match entry {
                Some(entry) => shard.insert(entry, now),
                None => shard.remove(key, now),
            };
            restores.push((index, key.as_str().into(), old));
        }
        let mutations: Vec<Mutation<'_>> = (plan.writes.iter())
            .map(|(key, state)| match state {
                FinalState::Present { value, expires_at } => Mutation::Set {
                    namespace,
                    key,
                    value,
                    expires_at: *expires_at,
                },
                FinalState::Absent => Mutation::Delete { namespace, key },
            })
            .collect();
        let mutation = Mutation::Transaction {
            namespace,
            writes: &mutations,
        };
        let undo = Undo::new(space.clone(), UndoAction::RestoreKeys(restores));
        let appended = match self.journal.get() {
            Some(journal) => journal.append(&mutation, undo),
            None => NoJournal.append(&mutation, undo),
        };
        let lsn = match appended {
            Ok(lsn) => lsn,
            Err((error, undo)) => {
                if let UndoAction::RestoreKeys(restores) = undo.into_action() {
                    restore_keys(restores, &mut shards);
                }
                return Err(error);
            }
        };
        drop(shards);
        if self.limited() {
            self.make_room(&space);
        }
        Ok((plan.outcomes, Some(lsn)))
    }

    /// Refuses a transaction whose entries could never fit, or whose whole
    /// change would pass a limit under `noeviction`.
    fn check_transaction_limits(
        &self,
        space: &Namespace,
        shards: &mut [(usize, ShardGuard<'_>)],
        writes: &[(String, FinalState)],
        entries: &[(usize, Option<Entry>)],
    ) -> Result<(), StoreError> {
        let (mut bytes, mut keys) = (0i64, 0i64);
        for ((key, _), (index, entry)) in writes.iter().zip(entries) {
            let old = shard_of(shards, *index).peek(key).map(Entry::size);
            if let Some(entry) = entry {
                self.check_fits(space, entry.size())?;
            }
            let new = entry.as_ref().map(Entry::size);
            bytes += new.unwrap_or(0) as i64 - old.unwrap_or(0) as i64;
            keys += i64::from(new.is_some()) - i64::from(old.is_some());
        }
        self.check_room(space, bytes, keys)
    }
}

/// The locked shard at `index` among `shards`.
fn shard_of<'s, 'g>(
    shards: &'s mut [(usize, ShardGuard<'g>)],
    index: usize,
) -> &'s mut ShardGuard<'g> {
    let at = (shards.binary_search_by_key(&index, |(i, _)| *i))
        .expect("every shard of the transaction's keys is locked");
    &mut shards[at].1
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::batch::OpKind;
    use super::super::{Condition, etag_of};
    use super::*;

    fn op(key: &str, kind: OpKind, condition: Option<Condition>) -> BatchOp {
        BatchOp {
            key: key.into(),
            kind,
            condition,
        }
    }

    fn set(key: &str, value: &str) -> OpKind {
        let _ = key;
        OpKind::Set {
            value: value.into(),
            ttl_secs: None,
        }
    }

    #[test]
    fn a_failed_condition_applies_nothing() {
        let store = Store::in_memory();
        store.set(Some("n"), "b", "1", None).unwrap();
        let ops = [
            op("a", set("a", "1"), None),
            op("b", set("b", "2"), Some(Condition::Matches(etag_of("0")))),
        ];
        let error = store.transact(Some("n"), &ops).unwrap_err();
        assert!(matches!(error, StoreError::Aborted { index: 1, .. }));
        assert_eq!(store.get(Some("n"), "a").unwrap(), None);
        assert_eq!(store.get(Some("n"), "b").unwrap().as_deref(), Some("1"));
        let ops = [
            op("a", set("a", "1"), Some(Condition::Absent)),
            op("b", set("b", "2"), Some(Condition::Matches(etag_of("1")))),
        ];
        let (outcomes, _) = store.transact(Some("n"), &ops).unwrap();
        assert_eq!(outcomes, [Outcome::Stored, Outcome::Stored]);
        assert_eq!(store.get(Some("n"), "b").unwrap().as_deref(), Some("2"));
        store.assert_consistent(&"after a transaction");
    }

    /// A transaction moving one unit between two counters, under threads
    /// doing the same: the sum never changes, whenever it is read.
    #[test]
    fn concurrent_transfers_keep_the_sum() {
        let store = Arc::new(Store::in_memory());
        store.set(None, "x", "100", None).unwrap();
        store.set(None, "y", "100", None).unwrap();
        let movers: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let by = if (i + t) % 2 == 0 { 1 } else { -1 };
                        let ops = [
                            op("x", OpKind::Incr { by }, None),
                            op("y", OpKind::Incr { by: -by }, None),
                        ];
                        store.transact(None, &ops).unwrap();
                    }
                })
            })
            .collect();
        for _ in 0..500 {
            let ops = [op("x", OpKind::Get, None), op("y", OpKind::Get, None)];
            let (outcomes, _) = store.transact(None, &ops).unwrap();
            let sum: i64 = (outcomes.iter())
                .map(|o| match o {
                    Outcome::Value(v) => v.parse::<i64>().unwrap(),
                    other => panic!("{other:?}"),
                })
                .sum();
            assert_eq!(sum, 200);
        }
        movers.into_iter().for_each(|m| m.join().unwrap());
    }
}
