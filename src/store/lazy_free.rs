//! Lazy freeing, as Redis's `lazyfree.c`: one long-lived thread that frees
//! what a namespace clear took away, so that freeing a million entries holds
//! up no one.
//!
//! Why a thread at all: a durable clear's maps are freed by the log writer
//! once the clear is on disk, and the writer serves every write of the
//! server. Freeing a 1,000,000-key namespace takes tens of milliseconds
//! (measured by `examples/clear_stall.rs`, figures in docs/BENCHMARKS.md),
//! and every write queued behind it would wait that long.
//!
//! Why one thread fed by a channel rather than a thread per clear: a thread
//! per operation fails when the OS refuses one (a pids cgroup at its
//! limit), and that failure used to panic the log writer. This thread is
//! started once, when the server opens its data directory (or at the first
//! clear); if the OS refuses even that one, or it is gone, garbage is freed
//! where it is, which is slower but always works. Nothing here can fail a
//! write.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, MutexGuard};

use super::shard::Shard;

/// What a clear took away: every shard table of a namespace.
pub(crate) type Garbage = Vec<Shard>;

/// The reclaimer's queue; `None` until it is started, or after it could not
/// be.
static QUEUE: Mutex<Option<Sender<Garbage>>> = Mutex::new(None);

/// Starts the reclaimer unless it runs already; false when the OS refused
/// the thread (garbage is then freed by whoever discards it).
pub fn start() -> bool {
    let mut queue = lock_queue();
    ensure_started(&mut queue);
    queue.is_some()
}

/// Frees `garbage` on the reclaimer, or here when there is none.
pub(crate) fn free(garbage: Garbage) {
    let unsent = {
        let mut queue = lock_queue();
        ensure_started(&mut queue);
        match queue.as_ref() {
            None => Some(garbage),
            Some(sender) => match sender.send(garbage) {
                Ok(()) => None,
                // The reclaimer is gone (it cannot be, short of a panic
                // while freeing): forget it, so the next clear starts
                // another.
                Err(returned) => {
                    *queue = None;
                    Some(returned.0)
                }
            },
        }
    };
    // Outside the lock: freeing may take a while.
    drop(unsent);
}

fn ensure_started(queue: &mut Option<Sender<Garbage>>) {
    if queue.is_some() {
        return;
    }
    let (sender, receiver) = channel::<Garbage>();
    let started = std::thread::Builder::new()
        .name("pykv-reclaim".into())
        .spawn(move || receiver.into_iter().for_each(drop));
    match started {
        Ok(_) => *queue = Some(sender),
        Err(e) => tracing::warn!(
            error = %e,
            "cannot start the thread that frees cleared namespaces; freeing them in place instead"
        ),
    }
}

fn lock_queue() -> MutexGuard<'static, Option<Sender<Garbage>>> {
    QUEUE.lock().unwrap_or_else(|p| p.into_inner())
}
