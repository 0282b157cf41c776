//! How long a namespace clear holds up readers of another namespace.
//!
//! Fills namespace `big` with 1,000,000 keys, then clears it while a
//! second thread reads a key of namespace `small` in a loop, and prints the
//! reader's slowest reads during the clear. Through the engine's Rust API:
//! no HTTP, so the figure is the engine's own.
//!
//!     cargo run --release --example clear_stall

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pykv::store::Store;

fn main() {
    let store = Arc::new(Store::in_memory());
    for i in 0..1_000_000u32 {
        store
            .set(Some("big"), &format!("key:{i:08}"), "\"v\"", None)
            .unwrap();
    }
    store.set(Some("small"), "k", "1", None).unwrap();

    let clearing = Arc::new(AtomicBool::new(true));
    let reader = {
        let (store, clearing) = (store.clone(), clearing.clone());
        std::thread::spawn(move || {
            let mut times = Vec::new();
            while clearing.load(Ordering::Relaxed) {
                let start = Instant::now();
                assert!(store.get(Some("small"), "k").unwrap().is_some());
                times.push(start.elapsed());
            }
            times
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    let start = Instant::now();
    let (deleted, _) = store.clear_namespace("big").unwrap();
    let took = start.elapsed();
    std::thread::sleep(Duration::from_millis(20));
    clearing.store(false, Ordering::Relaxed);
    let mut times = reader.join().unwrap();
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!("cleared {deleted} keys in {took:?}");
    println!(
        "reads of another namespace meanwhile: {} reads, p50 {:?}, p99.9 {:?}, max {:?}",
        times.len(),
        at(0.5),
        at(0.999),
        times.last().unwrap()
    );
}
