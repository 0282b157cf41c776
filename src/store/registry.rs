//! What the store knows about its namespaces as a whole, so that background
//! work and eviction find the namespaces that need them without walking
//! every namespace:
//!
//! - the store's usage (bytes and entries), namespaces' own overhead
//!   included;
//! - the expiry schedule: each namespace holding keys with a TTL, at the
//!   time its earliest deadline falls due;
//! - the namespaces that may have become empty, to be freed;
//! - the eviction index ([`super::sampling`]), to pick namespaces for
//!   global eviction in proportion to their bytes.
//!
//! Lock order: a shard, then any of these (a shard's guard updates them as
//! it is released); the namespace map, then any of these. Nothing here is
//! held while a shard or the map is locked.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::namespace::{Namespace, Usage};
use super::sampling::EvictionIndex;

/// A namespace's wake-up time when none is scheduled.
pub(crate) const UNSCHEDULED: u64 = u64::MAX;

/// Who a schedule entry is for: `None` is the default namespace.
pub(crate) type NamespaceName = Option<Box<str>>;

#[derive(Default)]
pub(crate) struct Registry {
    pub usage: Usage,
    /// `(wake-up time, namespace)`, one entry per namespace whose
    /// `wakeup` is not [`UNSCHEDULED`], and the same time as its `wakeup`.
    schedule: Mutex<BTreeSet<(u64, NamespaceName)>>,
    /// Named namespaces whose last entry went (or that were created), to
    /// be freed if they are still empty and unused.
    emptied: Mutex<Vec<Box<str>>>,
    pub eviction: Mutex<EvictionIndex>,
    /// Counters of the namespaces freed so far, so that the store's totals
    /// never go back.
    pub retired: RetiredCounters,
}

/// Counters that outlive the namespaces that counted them.
#[derive(Default)]
pub(crate) struct RetiredCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub evictions: AtomicU64,
    pub expirations: AtomicU64,
}

impl RetiredCounters {
    pub fn retire(&self, space: &Namespace) {
        let add = |to: &AtomicU64, from: &AtomicU64| {
            to.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
        };
        let lookups = space.lookups();
        self.hits.fetch_add(lookups.hits, Ordering::Relaxed);
        self.misses.fetch_add(lookups.misses, Ordering::Relaxed);
        add(&self.evictions, &space.evictions);
        add(&self.expirations, &space.expirations);
    }
}

impl Registry {
    /// Schedules `space` to be visited by the expiry cycle at `at`, unless
    /// it is scheduled earlier already.
    ///
    /// Callers check `at < space.wakeup` first, without the lock, and call
    /// this only then: the common write (a deadline later than the
    /// earliest) costs one atomic load.
    pub fn schedule(&self, space: &Namespace, at: u64) {
        let mut schedule = lock(&self.schedule);
        let current = space.wakeup.load(Ordering::SeqCst);
        if at >= current {
            return;
        }
        if current != UNSCHEDULED {
            schedule.remove(&(current, space.name.clone()));
        }
        schedule.insert((at, space.name.clone()));
        space.wakeup.store(at, Ordering::SeqCst);
    }

    /// Takes up to `max` namespaces due at `now` off the schedule. Each
    /// stays "in flight" (its `wakeup` unchanged, no entry) until the cycle
    /// calls [`Registry::begin_visit`] on it.
    pub fn take_due(&self, now: u64, max: usize) -> Vec<(u64, NamespaceName)> {
        let mut schedule = lock(&self.schedule);
        let mut due = Vec::new();
        while due.len() < max && schedule.first().is_some_and(|(at, _)| *at <= now) {
            due.push(schedule.pop_first().expect("first() was Some"));
        }
        due
    }

    /// Marks a namespace taken off the schedule at `at` as unscheduled,
    /// before the cycle visits its shards; the cycle schedules it again
    /// for its next deadline afterwards. If a writer scheduled it earlier
    /// meanwhile, that entry stays.
    ///
    /// Why a writer cannot be missed: a writer that adds a deadline reads
    /// `wakeup` after adding it to a shard, with the shard still locked.
    /// If it read the time taken off here, it held the shard until after
    /// this, so the visit that follows, which locks every shard, sees its
    /// deadline; if it read `UNSCHEDULED`, it schedules the namespace.
    pub fn begin_visit(&self, space: &Namespace, at: u64) {
        let _schedule = lock(&self.schedule);
        if space.wakeup.load(Ordering::SeqCst) == at {
            space.wakeup.store(UNSCHEDULED, Ordering::SeqCst);
        }
    }

    /// Drops a freed namespace's place in the schedule.
    pub fn unschedule(&self, space: &Namespace) {
        let mut schedule = lock(&self.schedule);
        let current = space.wakeup.swap(UNSCHEDULED, Ordering::SeqCst);
        if current != UNSCHEDULED {
            schedule.remove(&(current, space.name.clone()));
        }
    }

    /// Notes that a named namespace may be empty.
    pub fn note_emptied(&self, name: &str) {
        lock(&self.emptied).push(name.into());
    }

    /// How many namespaces are on the schedule.
    #[cfg(test)]
    pub fn scheduled(&self) -> usize {
        lock(&self.schedule).len()
    }

    /// The namespaces noted as possibly empty since the last call.
    pub fn take_emptied(&self) -> Vec<Box<str>> {
        std::mem::take(&mut *lock(&self.emptied))
    }
}

/// Locks, recovering from poisoning: every structure here is valid
/// between any two of its operations.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
