//! The write-ahead log: every mutation, one JSON line each, in
//! `DATA_DIR/wal.log`.
//!
//! - [`record`]: the line format (the seed's, readable from PyKV's logs);
//! - [`writer`]: group commit and the fsync policies;
//! - [`recovery`]: replay at start, torn tails, corruption and repair;
//! - [`compaction`]: rewriting the log down to the live data while writes
//!   go on;
//! - `pressure`: whether the kernel may throttle a write now, for inline
//!   writes;
//! - `settlement`: which records are settled, and waking each waiting
//!   request when its own record is;
//! - [`sync_stats`]: the histogram of sync (`fdatasync`) timings;
//! - `fault`: a test-only hook that makes the writer fail.

pub mod compaction;
mod fault;
mod pressure;
pub mod record;
pub mod recovery;
mod settlement;
mod sync_stats;
mod writer;

pub use compaction::{AutoCompaction, CompactionError, Compactor};
pub use fault::VARIABLE as FAULT_VARIABLE;
pub use recovery::{RecoveryError, RecoveryReport};
pub use sync_stats::{SYNC_BOUNDS, SyncSnapshot};
pub use writer::{EXIT_WRITER_LOST, FsyncPolicy, Wal, WalOptions};

/// Name of the log inside the data directory.
pub const LOG_FILE: &str = "wal.log";
/// Name of the log being rewritten by a compaction, until it is renamed.
pub const REWRITE_FILE: &str = "wal.log.rewrite";
