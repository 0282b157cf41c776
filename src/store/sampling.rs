//! Picking namespaces for global eviction in proportion to the bytes they
//! hold, in O(1) whatever the number of namespaces.
//!
//! Algorithm (size classes with rejection): every namespace sits in a size
//! class, a bucket of namespaces whose bytes are within a factor of eight
//! of each other, with an upper bound `U` per class. To pick one:
//! 1. choose a class with probability proportional to its members times
//!    its `U` (at most [`CLASSES`] classes to weigh);
//! 2. choose a member of that class uniformly;
//! 3. keep it with probability `bytes / U`, else start again.
//!
//! A namespace is then kept with probability proportional to its bytes,
//! exactly, and step 3 keeps at least one in eight tries for any class but
//! the smallest (where empty namespaces wait to be freed).
//!
//! A namespace moves to another class only when its bytes leave its class's
//! range, which is twice as wide as the class on each side: a namespace
//! that grows and shrinks around a boundary does not move at every write.
//! Moving takes this index's lock; staying costs one atomic load.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::namespace::Namespace;

/// Size classes; class `c` >= 1 holds namespaces of about `2^(c+5)` bytes.
pub(crate) const CLASSES: usize = 58;
/// Tries per pick before giving up (each is an RNG draw and a load).
const TRIES: usize = 64;

/// A namespace's place in the index: class in the high 32 bits, slot in
/// the low ones. `NOWHERE` before it is added.
pub(crate) const NOWHERE: u64 = u64::MAX;

#[derive(Default)]
pub(crate) struct EvictionIndex {
    classes: Vec<Vec<Weak<Namespace>>>,
}

/// The class a namespace of `bytes` is placed in: class 0 below 64 bytes,
/// then one class per power of two.
fn class_for(bytes: u64) -> usize {
    if bytes < 64 {
        return 0;
    }
    ((63 - bytes.leading_zeros() as usize) - 5).min(CLASSES - 1)
}

/// The most bytes a member of class `c` may hold before it moves up (also
/// the `U` of the rejection step).
fn upper(class: usize) -> u64 {
    1u64.checked_shl(class as u32 + 7).unwrap_or(u64::MAX)
}

/// The fewest bytes a member of class `c` may hold before it moves down.
fn lower(class: usize) -> u64 {
    if class == 0 { 0 } else { 1u64 << (class + 4) }
}

/// Whether a namespace in `slot` holding `bytes` must move to another
/// class; what a shard's guard checks after each change, without a lock.
pub(crate) fn must_move(slot: u64, bytes: u64) -> bool {
    if slot == NOWHERE {
        return false;
    }
    let class = (slot >> 32) as usize;
    bytes < lower(class) || (bytes > upper(class) && class < CLASSES - 1)
}

impl EvictionIndex {
    /// Adds a new namespace.
    pub fn add(&mut self, space: &Arc<Namespace>) {
        self.place(Arc::downgrade(space), space, space.usage.bytes());
    }

    /// Takes a namespace out (it is being freed).
    pub fn remove(&mut self, space: &Namespace) {
        let slot = space.eviction_slot.swap(NOWHERE, Ordering::Relaxed);
        if slot != NOWHERE {
            self.take(slot);
        }
    }

    /// Moves a namespace to the class its bytes now fall in, if they left
    /// its class's range (checked again under the lock).
    pub fn reclassify(&mut self, space: &Namespace) {
        let slot = space.eviction_slot.load(Ordering::Relaxed);
        let bytes = space.usage.bytes();
        if !must_move(slot, bytes) {
            return;
        }
        let weak = self.take(slot);
        self.place(weak, space, bytes);
    }

    fn place(&mut self, weak: Weak<Namespace>, space: &Namespace, bytes: u64) {
        if self.classes.is_empty() {
            self.classes.resize_with(CLASSES, Vec::new);
        }
        let class = class_for(bytes);
        let members = &mut self.classes[class];
        let slot = ((class as u64) << 32) | members.len() as u64;
        members.push(weak);
        space.eviction_slot.store(slot, Ordering::Relaxed);
    }

    /// Removes the member at `slot`, moving the class's last member into
    /// its place.
    fn take(&mut self, slot: u64) -> Weak<Namespace> {
        let (class, index) = ((slot >> 32) as usize, (slot & 0xffff_ffff) as usize);
        let members = &mut self.classes[class];
        let taken = members.swap_remove(index);
        if let Some(moved) = members.get(index).and_then(Weak::upgrade) {
            moved.eviction_slot.store(slot, Ordering::Relaxed);
        }
        taken
    }

    /// `n` namespaces, each picked with probability proportional to its
    /// bytes; fewer if [`TRIES`] draws for one found none (all empty, or
    /// unlucky).
    pub fn pick(&self, rng: &mut fastrand::Rng, n: usize) -> Vec<Arc<Namespace>> {
        let weights: Vec<f64> = (0..self.classes.len())
            .map(|c| self.classes[c].len() as f64 * upper(c) as f64)
            .collect();
        let total: f64 = weights.iter().sum();
        if total == 0.0 {
            return Vec::new();
        }
        (0..n)
            .filter_map(|_| (0..TRIES).find_map(|_| self.try_pick(rng, &weights, total)))
            .collect()
    }

    /// One draw of steps 1 to 3.
    fn try_pick(
        &self,
        rng: &mut fastrand::Rng,
        weights: &[f64],
        total: f64,
    ) -> Option<Arc<Namespace>> {
        let mut at = rng.f64() * total;
        let class = weights
            .iter()
            .position(|w| {
                at -= w;
                at < 0.0
            })
            .unwrap_or(weights.len() - 1);
        let members = &self.classes[class];
        if members.is_empty() {
            return None;
        }
        let space = members[rng.usize(..members.len())].upgrade()?;
        ((rng.f64() * upper(class) as f64) < space.usage.bytes() as f64).then_some(space)
    }
}

#[cfg(test)]
mod tests {
    use super::super::evict::Limit;
    use super::super::registry::Registry;
    use super::*;

    #[test]
    fn picks_namespaces_in_proportion_to_their_bytes() {
        let registry = Arc::new(Registry::default());
        let mut index = EvictionIndex::default();
        let spaces: Vec<Arc<Namespace>> = [("empty", 0), ("small", 1_000), ("big", 9_000)]
            .iter()
            .map(|&(name, bytes)| {
                let space = Arc::new(Namespace::new(
                    Some(name),
                    Limit::default(),
                    registry.clone(),
                ));
                space.usage.add(bytes, 1);
                index.add(&space);
                space
            })
            .collect();
        let mut rng = fastrand::Rng::with_seed(1);
        let picked = index.pick(&mut rng, 20_000);
        assert_eq!(picked.len(), 20_000, "every pick found one");
        let count = |name: &str| {
            picked
                .iter()
                .filter(|s| s.name.as_deref() == Some(name))
                .count()
        };
        assert_eq!(count("empty"), 0);
        let small = count("small") as f64 / 20_000.0;
        assert!(
            (0.08..0.12).contains(&small),
            "small picked {small} of the time, not 0.1"
        );
        // Moving and removing keep every slot right.
        spaces[2].usage.add(-8_990, 0);
        index.reclassify(&spaces[2]);
        index.remove(&spaces[0]);
        let picked = index.pick(&mut rng, 1_000);
        assert!(
            count_in(&picked, "small") > 900,
            "small now holds almost all bytes"
        );
    }

    fn count_in(picked: &[Arc<Namespace>], name: &str) -> usize {
        picked
            .iter()
            .filter(|s| s.name.as_deref() == Some(name))
            .count()
    }

    #[test]
    fn classes_hold_their_nominal_sizes_with_room_either_side() {
        for bytes in [0, 1, 63, 64, 100, 4096, 1 << 30, u64::MAX / 2] {
            let class = class_for(bytes);
            assert!(lower(class) <= bytes && bytes <= upper(class), "{bytes}");
            let slot = (class as u64) << 32;
            assert!(!must_move(slot, bytes), "{bytes}");
            if class > 0 && class < CLASSES - 1 {
                assert_eq!(upper(class) / lower(class), 8);
            }
        }
        assert!(must_move(1 << 32, 1_000));
        assert!(must_move(5 << 32, 10));
    }
}
