//! How close the sampled LRU comes to exact LRU on a skewed workload.
//!
//! A Zipf-distributed stream of reads over 5,000 keys goes through a store
//! bounded to 500 keys (a read that misses writes the key, as a cache
//! would), and through an exact LRU of the same size. The hit rates are
//! printed and the sampled one must be within 5 points of the exact one.
//! The access clock has millisecond resolution, so the stream is paced at
//! a few accesses per millisecond, as a busy server's would be.

use std::collections::{BTreeMap, HashMap};

use pykv::store::{Limit, Limits, Store, StoreConfig};

const KEYS: usize = 5_000;
const CAPACITY: u64 = 500;
const ACCESSES: usize = 20_000;
const PER_MILLISECOND: usize = 8;

/// Zipf(1.0) over `n` ranks, by inverse CDF.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n)
            .map(|rank| {
                total += 1.0 / rank as f64;
                total
            })
            .collect();
        Zipf { cumulative }
    }

    fn sample(&self, rng: &mut fastrand::Rng) -> usize {
        let at = rng.f64() * self.cumulative.last().unwrap();
        self.cumulative.partition_point(|&c| c < at)
    }
}

/// Exact LRU: a map of key to last tick, and the ticks in order.
struct ExactLru {
    last: HashMap<usize, u64>,
    order: BTreeMap<u64, usize>,
    tick: u64,
}

impl ExactLru {
    fn access(&mut self, key: usize) -> bool {
        self.tick += 1;
        let hit = match self.last.insert(key, self.tick) {
            Some(old) => {
                self.order.remove(&old);
                true
            }
            None => false,
        };
        self.order.insert(self.tick, key);
        if self.last.len() as u64 > CAPACITY {
            let (_, victim) = self.order.pop_first().unwrap();
            self.last.remove(&victim);
        }
        hit
    }
}

#[test]
fn sampled_lru_hit_rate_is_close_to_exact_lru() {
    let store = Store::new(StoreConfig {
        limits: Limits {
            global: Limit {
                max_keys: Some(CAPACITY),
                max_bytes: None,
            },
            ..Limits::default()
        },
        ..StoreConfig::default()
    });
    let mut exact = ExactLru {
        last: HashMap::new(),
        order: BTreeMap::new(),
        tick: 0,
    };
    let zipf = Zipf::new(KEYS);
    let mut rng = fastrand::Rng::with_seed(42);
    let (mut sampled_hits, mut exact_hits) = (0, 0);
    for i in 0..ACCESSES {
        if i % PER_MILLISECOND == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let key = zipf.sample(&mut rng);
        let name = key.to_string();
        if store.get(None, &name).unwrap().is_some() {
            sampled_hits += 1;
        } else {
            store.set(None, &name, "1", None).unwrap();
        }
        exact_hits += usize::from(exact.access(key));
    }
    let sampled = sampled_hits as f64 / ACCESSES as f64;
    let exact = exact_hits as f64 / ACCESSES as f64;
    println!("hit rate: sampled LRU {sampled:.3}, exact LRU {exact:.3}");
    assert!(store.len() as u64 <= CAPACITY);
    assert!(
        sampled >= exact - 0.05,
        "sampled LRU {sampled:.3} is far below exact LRU {exact:.3}"
    );
}
