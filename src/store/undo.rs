//! Undo records: how to take back a mutation already applied in memory.
//!
//! The engine applies a mutation, then hands it to the journal together
//! with its undo. If the journal cannot make the record durable (a full
//! disk), the undo puts memory back as it was, so a write that was refused
//! leaves no trace. Undos are reverted newest first; the journal refuses
//! new mutations from the moment of a failure, so nothing newer can sit on
//! top of them.

use std::ops::DerefMut;
use std::sync::Arc;

use super::lazy_free;
use super::namespace::Namespace;
use super::shard::{Entry, Shard};

pub struct Undo {
    space: Arc<Namespace>,
    action: UndoAction,
}

pub(crate) enum UndoAction {
    /// Put back what one key held before, in shard `shard`.
    Restore { shard: usize, previous: Previous },
    /// Put back every shard a namespace clear took away.
    RestoreShards(Vec<Shard>),
    /// Put back every key a transaction wrote: its shard, its name, and
    /// the live entry it held (`None`: remove it).
    RestoreKeys(Vec<(usize, Box<str>, Option<Entry>)>),
}

/// What a key held before a write.
pub(crate) enum Previous {
    /// This entry, which carries the key's name.
    Entry(Entry),
    /// Nothing: the key is removed. Only then is its name copied into the
    /// undo: an overwrite, the common case, allocates nothing for it.
    Absent(Box<str>),
}

impl Previous {
    /// The previous entry of `key`, or its absence.
    pub(crate) fn of(key: &str, old: Option<Entry>) -> Self {
        match old {
            Some(entry) => Previous::Entry(entry),
            None => Previous::Absent(key.into()),
        }
    }
}

impl Undo {
    pub(crate) fn new(space: Arc<Namespace>, action: UndoAction) -> Self {
        Undo { space, action }
    }

    /// Takes the mutation back, locking what it needs.
    pub fn revert(self) {
        match self.action {
            UndoAction::Restore { shard, .. } => {
                let mut guard = self.space.shard(shard);
                self.action.revert_in(&mut [&mut *guard]);
            }
            UndoAction::RestoreShards(_) => {
                let mut guards = self.space.lock_all();
                self.action.revert_in(&mut guards);
            }
            UndoAction::RestoreKeys(restores) => {
                // Locked in index order, as the transaction locked them.
                let mut indexes: Vec<usize> = restores.iter().map(|(i, _, _)| *i).collect();
                indexes.sort_unstable();
                indexes.dedup();
                let mut guards: Vec<_> = (indexes.into_iter())
                    .map(|i| (i, self.space.shard(i)))
                    .collect();
                restore_keys(restores, &mut guards);
            }
        }
    }

    /// Drops the undo once its mutation is durable. A cleared namespace's
    /// maps go to the reclaimer thread ([`super::lazy_free`]), so that
    /// freeing a million entries never holds up the caller (the log
    /// writer), and no thread is started per clear.
    pub fn discard(self) {
        if let UndoAction::RestoreShards(taken) = self.action {
            lazy_free::free(taken);
        }
    }

    /// Starts the thread that frees cleared namespaces, once, before the
    /// server takes requests; false when the OS refused it (they are then
    /// freed where they are discarded).
    pub fn start_reclaimer() -> bool {
        lazy_free::start()
    }

    pub(crate) fn into_action(self) -> UndoAction {
        self.action
    }
}

impl UndoAction {
    /// Takes the mutation back on shards the caller has locked: the one
    /// shard of the key, or every shard of the namespace for a clear.
    pub fn revert_in<S: DerefMut<Target = Shard>>(self, shards: &mut [S]) {
        match self {
            UndoAction::Restore { previous, .. } => {
                let shard = &mut *shards[0];
                match previous {
                    Previous::Entry(entry) => {
                        shard.insert(entry, 0);
                    }
                    Previous::Absent(key) => {
                        shard.remove(&key, 0);
                    }
                }
            }
            UndoAction::RestoreShards(taken) => {
                for (guard, old) in shards.iter_mut().zip(taken) {
                    **guard = old;
                }
            }
            UndoAction::RestoreKeys(_) => {
                unreachable!("a transaction's undo is reverted with restore_keys")
            }
        }
    }
}

/// Takes a transaction's writes back on the shards the caller has locked,
/// each with its index, newest write first.
pub(crate) fn restore_keys<S: DerefMut<Target = Shard>>(
    restores: Vec<(usize, Box<str>, Option<Entry>)>,
    locked: &mut [(usize, S)],
) {
    for (index, key, old) in restores.into_iter().rev() {
        let (_, shard) = (locked.iter_mut())
            .find(|(i, _)| *i == index)
            .expect("the transaction's shards are locked");
        match old {
            Some(entry) => {
                shard.insert(entry, 0);
            }
            None => {
                shard.remove(&key, 0);
            }
        }
    }
}
