//! Wall-clock time in milliseconds since the Unix epoch.
//!
//! Deadlines are absolute wall-clock times rather than `Instant`s because
//! they are written to the log and must mean the same after a restart.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
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
