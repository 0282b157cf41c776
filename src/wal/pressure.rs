//! Whether the kernel may make a buffered write wait now: the condition
//! under which a request's own worker may write its log record (see
//! "Inline writes" in [`super::writer`]).
//!
//! A buffered `write` copies into the page cache and returns; it sleeps
//! only when the kernel throttles writers because too much of memory is
//! dirty (`balance_dirty_pages`). Linux never throttles below its
//! "free-run" point, half way between the background and the foreground
//! dirty thresholds: below it, writers run free and only the flusher
//! threads work. Its inputs are in `/proc/vmstat`, in pages:
//!
//! ```text
//! nr_dirty + nr_writeback  <  (nr_dirty_threshold + nr_dirty_background_threshold) / 2
//! ```
//!
//! Under cgroup v2 with a memory limit, the cgroup has its own dirty
//! domain (`memory.stat`'s `file_dirty` and `file_writeback` against its
//! available memory, the same ratios applied). cgroup v1 has no dirty
//! throttling of its own.
//!
//! The log's sampler reads both every [`SAMPLE_INTERVAL`] and calls the
//! kernel calm while dirty memory is under half of the free-run point, in
//! each domain. The margin covers the sample's age: at 100,000 records a
//! second the log itself dirties about 1 MB per interval, against
//! free-run points of hundreds of megabytes; another process dirtying
//! faster than the margin within one interval is caught by the backstop
//! instead: an inline write that took longer than [`SLOW_WRITE`] takes a
//! sample at once. (A slow write alone proves nothing: on a busy machine
//! the worker may just have been preempted in the middle of it; it is
//! throttling only if the kernel is past the margin.)
//!
//! Why sampled and not asked at each write: reading `/proc` costs tens of
//! microseconds, the write itself one or two.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the kernel's dirty memory is read.
pub(super) const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// An inline write slower than this may have been throttled.
pub(super) const SLOW_WRITE: Duration = Duration::from_millis(1);

/// The sampled verdict: may a worker write the log itself now?
#[derive(Default)]
pub(super) struct DirtyPressure {
    calm: AtomicBool,
}

impl DirtyPressure {
    /// Whether the last sample found the kernel far from throttling.
    pub fn is_calm(&self) -> bool {
        self.calm.load(Ordering::Relaxed)
    }

    /// Reads the kernel's figures and updates the verdict.
    pub fn sample(&self) {
        let calm =
            read_global().is_some_and(|d| d.is_calm()) && read_cgroup().is_none_or(|d| d.is_calm());
        self.calm.store(calm, Ordering::Relaxed);
    }

    /// An inline write took `took`: if that may have been throttled,
    /// samples at once rather than within [`SAMPLE_INTERVAL`].
    pub fn observe_write(&self, took: Duration) {
        if took >= SLOW_WRITE {
            self.sample();
        }
    }
}

/// One dirty domain: dirty bytes (or pages) and its free-run point, in
/// the same unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirtyDomain {
    dirty: u64,
    free_run: u64,
}

impl DirtyDomain {
    fn is_calm(&self) -> bool {
        self.dirty < self.free_run / 2
    }
}

fn read_global() -> Option<DirtyDomain> {
    parse_vmstat(&std::fs::read_to_string("/proc/vmstat").ok()?)
}

/// The system-wide domain, from `/proc/vmstat`.
fn parse_vmstat(text: &str) -> Option<DirtyDomain> {
    let field = |name: &str| field_of(text, name);
    let threshold = field("nr_dirty_threshold")?;
    let background = field("nr_dirty_background_threshold")?;
    Some(DirtyDomain {
        dirty: field("nr_dirty")? + field("nr_writeback").unwrap_or(0),
        free_run: (threshold + background) / 2,
    })
}

/// The cgroup v2 domain of this process, if it has a memory limit.
fn read_cgroup() -> Option<DirtyDomain> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = membership.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let limit = read("memory.max")?.trim().parse::<u64>().ok()?; // "max": unlimited
    let current = read("memory.current")?.trim().parse::<u64>().ok()?;
    let ratio = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/vm/{name}"))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
    };
    parse_cgroup(
        &read("memory.stat")?,
        limit,
        current,
        ratio("dirty_ratio")?,
        ratio("dirty_background_ratio")?,
    )
}

/// The cgroup's domain: its available memory is its file pages plus its
/// headroom under the limit, and the system's ratios apply to it. (When
/// the system's limits are set in bytes, the ratios read 0 and the
/// cgroup is taken to have no domain of its own, as the kernel's
/// byte limits are global.)
fn parse_cgroup(
    stat: &str,
    limit: u64,
    current: u64,
    dirty_ratio: u64,
    background_ratio: u64,
) -> Option<DirtyDomain> {
    if dirty_ratio == 0 {
        return None;
    }
    let field = |name: &str| field_of(stat, name);
    let available = field("file")? + limit.saturating_sub(current);
    let threshold = available / 100 * dirty_ratio;
    let background = available / 100 * background_ratio;
    Some(DirtyDomain {
        dirty: field("file_dirty")? + field("file_writeback").unwrap_or(0),
        free_run: (threshold + background) / 2,
    })
}

/// The number after `name ` on a line of a `name value` file.
fn field_of(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_domain_is_calm_under_half_its_free_run_point() {
        let vmstat = "nr_free_pages 10\nnr_dirty 100\nnr_writeback 20\n\
                      nr_dirty_threshold 1000\nnr_dirty_background_threshold 500\n";
        let domain = parse_vmstat(vmstat).unwrap();
        assert_eq!(
            domain,
            DirtyDomain {
                dirty: 120,
                free_run: 750
            }
        );
        assert!(domain.is_calm());
        let busy = vmstat.replace("nr_dirty 100", "nr_dirty 400");
        assert!(!parse_vmstat(&busy).unwrap().is_calm());
    }

    #[test]
    fn a_vmstat_without_thresholds_is_no_reading() {
        assert_eq!(parse_vmstat("nr_dirty 5\n"), None);
    }

    #[test]
    fn a_cgroup_counts_its_file_pages_and_headroom() {
        let stat = "anon 1000\nfile 4000\nfile_dirty 300\nfile_writeback 0\n";
        // 4000 of file + 6000 of headroom: thresholds 2000 and 1000.
        let domain = parse_cgroup(stat, 20_000, 14_000, 20, 10).unwrap();
        assert_eq!(
            domain,
            DirtyDomain {
                dirty: 300,
                free_run: 1500
            }
        );
        assert!(domain.is_calm());
        assert_eq!(parse_cgroup(stat, 20_000, 14_000, 0, 0), None);
    }
}
