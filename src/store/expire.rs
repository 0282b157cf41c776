//! Active expiry: a background thread that frees expired entries so their
//! memory comes back even if nobody touches them again, and frees the
//! namespaces left empty.
//!
//! Work follows what falls due, not what is stored: the registry's
//! schedule holds each namespace that has keys with a TTL at its earliest
//! deadline. A tick takes the namespaces that are due off the schedule,
//! frees the due entries of each (popping deadlines from the front of each
//! shard's expiry index), and schedules each again at its next deadline.
//! A tick with nothing due costs one look at the schedule, whatever the
//! number of namespaces or keys. When a tick frees a whole budget (a mass
//! expiry), the next one runs at once instead of waiting, as Redis's
//! active expire cycle does.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use super::namespace::Namespace;
use super::{Store, now_ms};

/// Pause between ticks when there is little to expire.
const TICK: Duration = Duration::from_millis(100);
/// Entries freed per shard and visit, bounding how long one shard is
/// locked.
const BUDGET_PER_SHARD: usize = 2_000;
/// Namespaces taken off the schedule at a time.
const DUE_BATCH: usize = 256;

/// Starts the expiry thread; it stops by itself once the store is dropped.
pub fn spawn_expiry_cycle(store: &Arc<Store>) -> JoinHandle<()> {
    let store: Weak<Store> = Arc::downgrade(store);
    std::thread::Builder::new()
        .name("pykv-expire".into())
        .spawn(move || {
            loop {
                let Some(store) = store.upgrade() else { return };
                let freed = store.expire_cycle(BUDGET_PER_SHARD);
                store.free_empty_namespaces();
                store.retire_idle_feeds(crate::feed::LINGER);
                drop(store);
                if freed < BUDGET_PER_SHARD {
                    std::thread::sleep(TICK);
                }
            }
        })
        .expect("spawning the expiry thread")
}

impl Store {
    /// One pass of active expiry: visits every namespace that is due,
    /// freeing up to `budget_per_shard` expired entries in each of its
    /// shards at a visit. Returns how many entries were freed.
    pub fn expire_cycle(&self, budget_per_shard: usize) -> usize {
        let now = now_ms();
        let mut freed = 0;
        loop {
            let due = self.registry.take_due(now, DUE_BATCH);
            if due.is_empty() {
                return freed;
            }
            for (at, name) in due {
                if let Some(space) = self.existing_namespace(name.as_deref()) {
                    self.registry.begin_visit(&space, at);
                    freed += self.expire_in(&space, now, budget_per_shard);
                }
            }
        }
    }

    /// Frees the due entries of one namespace, then schedules it again at
    /// its earliest deadline (now, if the budget left some due).
    fn expire_in(&self, space: &Namespace, now: u64, budget_per_shard: usize) -> usize {
        let mut freed = 0;
        let mut earliest: Option<u64> = None;
        for (_, mut shard) in space.existing_shards() {
            if shard.has_ttl_keys() {
                freed += shard.purge_expired(now, budget_per_shard);
            }
            earliest = match (earliest, shard.earliest_deadline()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if let Some(at) = earliest {
            self.registry.schedule(space, at);
        }
        freed
    }
}
