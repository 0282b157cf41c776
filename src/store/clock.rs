//! Wall-clock time in milliseconds since the Unix epoch.
//!
//! Deadlines are absolute wall-clock times rather than `Instant`s because
//! they are written to the log and must mean the same after a restart.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The clock of last accesses, for LRU: milliseconds since the process
/// started, wrapping after 49 days (idle times are wrapping differences,
/// so only entries idle for 49 days or more are misjudged).
pub fn access_clock() -> u32 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u32
}
