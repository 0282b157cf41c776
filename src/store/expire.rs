//! Active expiry: a background thread that frees expired entries so their
//! memory comes back even if nobody touches them again.
//!
//! Each tick walks only the shards that hold keys with a TTL, and in each
//! pops due deadlines from the front of its expiry index, so a tick costs
//! O(shards + expired), never O(keys). When a tick uses its whole budget
//! (a mass expiry), the next one runs at once instead of waiting, as
//! Redis's active expire cycle does.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Store;

/// Pause between ticks when there is little to expire.
const TICK: Duration = Duration::from_millis(100);
/// Entries freed per shard and tick, bounding how long one shard is locked.
const BUDGET_PER_SHARD: usize = 2_000;

/// Starts the expiry thread; it stops by itself once the store is dropped.
pub fn spawn_expiry_cycle(store: &Arc<Store>) -> JoinHandle<()> {
    let store: Weak<Store> = Arc::downgrade(store);
    std::thread::Builder::new()
        .name("pykv-expire".into())
        .spawn(move || {
            loop {
                let Some(store) = store.upgrade() else { return };
                let freed = store.expire_cycle(BUDGET_PER_SHARD);
                drop(store);
                if freed < BUDGET_PER_SHARD {
                    std::thread::sleep(TICK);
                }
            }
        })
        .expect("spawning the expiry thread")
}
