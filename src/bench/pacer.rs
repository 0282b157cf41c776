//! Open-loop pacing (`--rate R`) finer than tokio's timer.
//!
//! Ticket `k` falls due at `start + k / R`. tokio's timer wheel fires on
//! whole milliseconds, so tasks sleeping until their due time were
//! released in bursts of `R / 1000` requests at once (50 at 50,000 a
//! second), which queued at the server and put the generator's own
//! burstiness into the latencies it measured: the do-nothing ceiling showed
//! a p99 of 1.3 to 3.3 ms at half of its peak.
//!
//! Why a thread of its own: a plain OS thread can sleep for 50 µs
//! (`nanosleep` on a high-resolution timer, with the thread's timer slack
//! lowered from the default 50 µs), where a tokio task cannot sleep less
//! than a millisecond; and spinning tasks starve the generator's I/O
//! (tried). Every tick the thread counts the tickets that have fallen due
//! and hands out that many permits of a semaphore; each connection's task
//! takes a permit before it takes a ticket. Requests therefore leave at
//! most one tick (plus the wake-up's delay) after they are due, in groups
//! of `R × 50 µs` at most (about 3 at 50,000 a second).
//!
//! The latency of a paced request is timed from its due time, as wrk2
//! does: waiting for a free connection, or for the pacer, counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::load::Stop;

/// The pacer's shortest sleep.
const TICK: Duration = Duration::from_micros(50);
/// The timer slack asked for the pacer's thread: how late the kernel may
/// wake it to batch wake-ups (the default is 50 µs).
const TIMER_SLACK_NS: libc::c_ulong = 1_000;

/// Hands out one permit per ticket as it falls due.
pub struct Pacer {
    permits: Arc<Semaphore>,
    stopped: Arc<AtomicBool>,
}

impl Pacer {
    /// Starts the pacing thread. `waiters` is the number of tasks taking
    /// permits: once the last ticket is out, each gets one more, to find
    /// that no ticket is left.
    pub fn start(start: Instant, rate: f64, stop: Stop, waiters: usize) -> std::io::Result<Self> {
        let permits = Arc::new(Semaphore::new(0));
        let stopped = Arc::new(AtomicBool::new(false));
        let schedule = Schedule { start, rate, stop };
        let (handed, flag) = (permits.clone(), stopped.clone());
        thread::Builder::new()
            .name("pykv-bench-pacer".into())
            .spawn(move || schedule.run(&handed, &flag, waiters))?;
        Ok(Pacer { permits, stopped })
    }

    /// Waits until the next ticket is due.
    pub async fn wait(&self) {
        // The semaphore is never closed.
        if let Ok(permit) = self.permits.acquire().await {
            permit.forget();
        }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// When tickets fall due.
struct Schedule {
    start: Instant,
    rate: f64,
    stop: Stop,
}

impl Schedule {
    /// How many tickets the phase has: all of a count, or those due
    /// before the time limit.
    fn tickets(&self) -> u64 {
        match self.stop {
            Stop::Count(n) => n,
            Stop::Time(limit) => (limit.as_secs_f64() * self.rate).ceil() as u64,
        }
    }

    /// How many tickets are due `elapsed` after the start (ticket 0 is due
    /// at once).
    fn due_by(&self, elapsed: Duration) -> u64 {
        (elapsed.as_secs_f64() * self.rate).floor() as u64 + 1
    }

    /// When ticket `k` falls due.
    fn due_at(&self, k: u64) -> Instant {
        self.start + Duration::from_secs_f64(k as f64 / self.rate)
    }

    fn run(&self, permits: &Semaphore, stopped: &AtomicBool, waiters: usize) {
        lower_timer_slack();
        let last = self.tickets();
        let mut released = 0;
        while released < last && !stopped.load(Ordering::Relaxed) {
            let now = Instant::now();
            let due = self.due_by(now - self.start).min(last);
            if due > released {
                permits.add_permits((due - released) as usize);
                released = due;
            }
            // At low rates, sleep until the next ticket rather than a tick.
            let next = self
                .due_at(released)
                .saturating_duration_since(Instant::now());
            thread::sleep(next.max(TICK));
        }
        permits.add_permits(waiters);
    }
}

/// Why `libc`: the timer slack is a per-thread setting that only `prctl`
/// changes, and no crate of the standard library's rank wraps it. Failure
/// only makes the pacing coarser (50 µs more), so it is ignored.
fn lower_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and touches no
    // memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_fall_due_at_the_rate() {
        let start = Instant::now();
        let s = Schedule {
            start,
            rate: 1000.0,
            stop: Stop::Time(Duration::from_secs(2)),
        };
        assert_eq!(s.tickets(), 2000);
        assert_eq!(s.due_by(Duration::ZERO), 1);
        assert_eq!(s.due_by(Duration::from_micros(999)), 1);
        assert_eq!(s.due_by(Duration::from_millis(1)), 2);
        assert_eq!(s.due_at(1500) - start, Duration::from_millis(1500));
        let counted = Schedule {
            stop: Stop::Count(7),
            ..s
        };
        assert_eq!(counted.tickets(), 7);
    }

    #[tokio::test]
    async fn permits_come_no_sooner_than_due_and_end_with_one_per_waiter() {
        let start = Instant::now();
        let pacer = Pacer::start(start, 2000.0, Stop::Count(20), 3).unwrap();
        for k in 0..20u32 {
            pacer.wait().await;
            let due = start + Duration::from_micros(500) * k;
            assert!(
                Instant::now() >= due,
                "ticket {k} released before it was due"
            );
        }
        // The last ticket was due at 9.5 ms: the 20 took at least that.
        assert!(start.elapsed() >= Duration::from_micros(9500));
        for _ in 0..3 {
            tokio::time::timeout(Duration::from_secs(5), pacer.wait())
                .await
                .expect("a closing permit per waiter");
        }
    }
}
