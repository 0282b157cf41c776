//! How long the log's syncs (`fdatasync`) take: a fixed-bucket histogram of
//! atomics, cheap enough to record on every sync.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds.
pub const SYNC_BOUNDS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

#[derive(Default)]
pub struct SyncStats {
    /// One more than the bounds: the last counts syncs over a second.
    buckets: [AtomicU64; SYNC_BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

/// A copy of the histogram, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncSnapshot {
    /// Per bucket, not cumulative; the last is over the largest bound.
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl SyncStats {
    pub fn record(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = SYNC_BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(SYNC_BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> SyncSnapshot {
        let buckets: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        SyncSnapshot {
            count: buckets.iter().sum(),
            buckets,
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_land_in_their_bucket() {
        let stats = SyncStats::default();
        stats.record(Duration::from_micros(50));
        stats.record(Duration::from_millis(3));
        stats.record(Duration::from_secs(2));
        let s = stats.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], 1);
        assert_eq!(s.buckets[5], 1);
        assert_eq!(s.buckets[SYNC_BOUNDS.len()], 1);
        assert!((s.sum_seconds - 2.00305).abs() < 1e-6);
    }
}
