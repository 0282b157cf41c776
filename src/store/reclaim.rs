//! Freeing namespaces whose last key went, so that a namespace costs
//! memory (and expiry and eviction work) only while it holds keys.
//!
//! A shard's guard notes a named namespace when its last entry goes; so
//! does its creation (a write that fails must not leave it behind). The
//! expiry thread then frees each one noted, if it is still empty and
//! nobody else holds it.
//!
//! Why "nobody else holds it" is enough to free without losing a write:
//! every user of a namespace, a writer, a reader, an undo kept by the log,
//! gets it from the namespace map and holds a reference to it (or the
//! map's read lock) while it uses it. Under the map's write lock, a
//! namespace whose only reference is the map's can be neither used nor
//! found, so it is removed with nothing in flight; a writer that comes
//! after creates a new one.
//!
//! What goes with a freed namespace: its own counters (hits, misses,
//! evictions, expirations) are added to the store's totals, which never go
//! back, and no longer listed per namespace; a quota set while running is
//! kept apart (`Store::runtime_quotas`) and applies when it comes back.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Store;
use super::namespace::Namespace;
use super::registry::lock;

/// Namespaces freed under one hold of the map's write lock.
const BATCH: usize = 256;

impl Store {
    /// Frees the namespaces noted as possibly empty that are empty and
    /// unused; one still in use is looked at again next time. Returns how
    /// many were freed.
    pub fn free_empty_namespaces(&self) -> usize {
        let noted = self.registry.take_emptied();
        let mut freed = 0;
        for batch in noted.chunks(BATCH) {
            let mut gone = Vec::new();
            let mut named = self.named.write().unwrap_or_else(|p| p.into_inner());
            for name in batch {
                let Some(space) = named.get(name) else {
                    continue;
                };
                if Arc::strong_count(space) > 1 {
                    self.registry.note_emptied(name);
                    continue;
                }
                // Nobody can touch it while the map is write-locked, so
                // this and the check below see the same state.
                space.noted_empty.store(false, Ordering::Relaxed);
                if space.is_empty() {
                    let space = named.remove(name).expect("found above");
                    self.retire(&space);
                    gone.push(space);
                }
            }
            drop(named);
            freed += gone.len();
            // Freed here, off the map's lock.
            drop(gone);
        }
        freed
    }

    /// Takes a namespace being freed out of the store's indexes, and its
    /// counters into the totals. (Its overhead stopped counting in the
    /// store's usage when its last entry went.)
    fn retire(&self, space: &Namespace) {
        self.registry.retired.retire(space);
        lock(&self.registry.eviction).remove(space);
        self.registry.unschedule(space);
    }
}
