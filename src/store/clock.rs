//! Wall-clock time in milliseconds since the Unix epoch.
//!
//! Deadlines are absolute wall-clock times rather than `Instant`s because
//! they are written to the log and must mean the same after a restart.
//!
//! Unit tests can stop the clock of their own thread ([`manual`]), to play
//! sequences of writes within one millisecond or across deadlines exactly.
//! The override exists only in test builds: the server reads the system
//! clock and nothing else.

use std::time::{SystemTime, UNIX_EPOCH};

/// The absolute deadline of a TTL given in seconds from now, as every
/// backend stores it (milliseconds since the Unix epoch).
pub fn deadline_in(ttl_secs: Option<u64>) -> Option<u64> {
    ttl_secs.map(|ttl| now_ms() + ttl * 1000)
}

pub fn now_ms() -> u64 {
    #[cfg(test)]
    if let Some(now) = manual::now() {
        return now;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The clock of last accesses, for LRU, taken from the same reading as
/// `now_ms` (one clock read per request): milliseconds, wrapping every 49
/// days (idle times are wrapping differences, so only entries idle for 49
/// days or more are misjudged).
pub fn access_of(now_ms: u64) -> u32 {
    now_ms as u32
}

/// A clock a test sets and moves by hand, for the calling thread only, so
/// that tests running in parallel never see each other's time.
#[cfg(test)]
pub mod manual {
    use std::cell::Cell;

    thread_local! {
        static NOW: Cell<Option<u64>> = const { Cell::new(None) };
    }

    pub(super) fn now() -> Option<u64> {
        NOW.with(Cell::get)
    }

    /// Stops this thread's clock at `ms`.
    pub fn set(ms: u64) {
        NOW.with(|now| now.set(Some(ms)));
    }

    /// Moves this thread's stopped clock forward.
    pub fn advance(ms: u64) {
        NOW.with(|now| now.set(Some(now.get().expect("the clock is stopped") + ms)));
    }

    /// Gives this thread the system clock back.
    pub fn release() {
        NOW.with(|now| now.set(None));
    }
}
