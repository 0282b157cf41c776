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
