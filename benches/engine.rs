//! Micro-benchmarks of the engine through its plain Rust API
//! ([`pykv::store::Store`]), with no HTTP and no log: what a request costs
//! the store itself, to set against what `pykv bench` measures end to end.
//!
//! ```sh
//! cargo bench --bench engine              # all of them
//! cargo bench --bench engine -- get       # only those whose name has "get"
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use pykv::store::{Store, now_ms};

/// Keys in the store for the lookups: enough to spill the CPU caches a
/// little, as a real working set would.
const KEYS: u64 = 100_000;
/// Keys per namespace in the batched benchmarks (expiry, clear).
const BATCH: u64 = 1_000;
/// A 32-byte string value, as JSON text (what the HTTP layer hands over).
const VALUE: &str = "\"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\"";
const NS: Option<&str> = Some("bench0");

fn key(i: u64) -> String {
    format!("key:{i:08}")
}

/// A store holding `KEYS` keys in namespace `bench0`.
fn filled() -> Store {
    let store = Store::in_memory();
    for i in 0..KEYS {
        store.set(NS, &key(i), VALUE, None).expect("set");
    }
    store
}

fn set(c: &mut Criterion) {
    let store = filled();
    let mut i = 0u64;
    c.bench_function("set/overwrite", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            store.set(NS, &key(i), VALUE, None).expect("set")
        })
    });
    let deadline = now_ms() + 3_600_000;
    c.bench_function("set/overwrite_with_ttl", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            store.set(NS, &key(i), VALUE, Some(deadline)).expect("set")
        })
    });
}

fn get(c: &mut Criterion) {
    let store = filled();
    let mut i = 0u64;
    c.bench_function("get/hit", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(store.get(NS, &key(i)).expect("get"))
        })
    });
    let mut out = Vec::with_capacity(64);
    c.bench_function("get_into/hit", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            out.clear();
            black_box(store.get_into(NS, &key(i), &mut out).expect("get"))
        })
    });
    // Every core reading the same namespace at once, as the server's
    // workers do: the time of one lookup on one core. Against `get_into/hit`
    // it shows what the cores cost each other (cache lines they all write).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    c.bench_function("get_into/hit_on_every_core", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|scope| {
                for core in 0..cores as u64 {
                    let store = &store;
                    scope.spawn(move || {
                        let mut out = Vec::with_capacity(64);
                        for n in 0..iters {
                            out.clear();
                            let i = (n * 7919 + core * KEYS / 2) % KEYS;
                            black_box(store.get_into(NS, &key(i), &mut out).expect("get"));
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    c.bench_function("get/miss", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(store.get(NS, &key(KEYS + i)).expect("get"))
        })
    });
}

/// A delete, then the set that puts the key back, so every delete finds
/// its key.
fn delete(c: &mut Criterion) {
    let store = filled();
    let mut i = 0u64;
    c.bench_function("delete+set", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            let k = key(i);
            black_box(store.delete(NS, &k).expect("delete"));
            store.set(NS, &k, VALUE, None).expect("set")
        })
    });
}

/// One active expiry cycle over `BATCH` keys that are all due.
fn expiry(c: &mut Criterion) {
    c.bench_function("expire_cycle/1000_due", |b| {
        b.iter_batched(
            || {
                let store = Store::in_memory();
                let past = now_ms() - 1;
                for i in 0..BATCH {
                    store.set(NS, &key(i), VALUE, Some(past)).expect("set");
                }
                store
            },
            |store| {
                let freed = store.expire_cycle(usize::MAX);
                (freed, store)
            },
            BatchSize::LargeInput,
        )
    });
}

/// Clearing a namespace of `BATCH` keys.
fn clear(c: &mut Criterion) {
    c.bench_function("clear_namespace/1000", |b| {
        b.iter_batched(
            || {
                let store = Store::in_memory();
                for i in 0..BATCH {
                    store.set(NS, &key(i), VALUE, None).expect("set");
                }
                store
            },
            |store| {
                let cleared = store.clear_namespace("bench0").expect("clear");
                (cleared, store)
            },
            BatchSize::LargeInput,
        )
    });
}

criterion_group! {
    name = engine;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = set, get, delete, expiry, clear
}
criterion_main!(engine);
