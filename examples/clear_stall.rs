//! How long a namespace clear holds up readers of another namespace, and
//! how long freeing what it took away takes.
//!
//! Fills namespace `big` with 1,000,000 keys, then clears it while a
//! second thread reads a key of namespace `small` in a loop, and prints the
//! reader's slowest reads during the clear. Through the engine's Rust API:
//! no HTTP, so the figure is the engine's own.
//!
//! Then fills it again and clears it through a journal that frees the
//! cleared maps in place, and prints how long that took: how long every
//! write would wait if the log writer freed them itself, which is why the
//! reclaimer thread does (src/store/reclaim.rs).
//!
//!     cargo run --release --example clear_stall

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pykv::store::{Journal, Lsn, Mutation, Store, StoreConfig, StoreError, Undo};

/// The server's allocator (src/main.rs), so that freeing costs here what
/// it costs there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KEYS: u32 = 1_000_000;

fn main() {
    clear_while_reading();
    free_in_place();
}

fn fill(store: &Store) {
    for i in 0..KEYS {
        store
            .set(Some("big"), &format!("key:{i:08}"), "\"v\"", None)
            .unwrap();
    }
}

/// A journal that frees each undo where it is, and times it.
struct FreeInPlace(Mutex<Duration>);

impl Journal for FreeInPlace {
    fn append(&self, _: &Mutation<'_>, undo: Undo) -> Result<Lsn, (StoreError, Undo)> {
        let start = Instant::now();
        drop(undo);
        *self.0.lock().unwrap() += start.elapsed();
        Ok(0)
    }
}

fn free_in_place() {
    let journal = Arc::new(FreeInPlace(Mutex::default()));
    let store = Store::with_journal(StoreConfig::default(), Box::new(journal.clone()));
    fill(&store);
    *journal.0.lock().unwrap() = Duration::ZERO;
    let (deleted, _) = store.clear_namespace("big").unwrap();
    println!(
        "freeing the {deleted} cleared keys in place took {:?}",
        *journal.0.lock().unwrap()
    );
}

fn clear_while_reading() {
    let store = Arc::new(Store::in_memory());
    fill(&store);
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
