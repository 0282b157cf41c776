//! Test-only fault injection into the log writer, so that the tests can
//! make the real server's writer fail and check that writes are refused
//! with 503, `/health` says unhealthy, and the writer recovers.
//!
//! Enabled by an environment variable, never by a flag, and never meant for
//! production:
//!
//! ```text
//! PYKV_FAULT_WAL_WRITER=panic-after:N:PATH
//! ```
//!
//! After `N` writes, the log panics at every attempt to write (a batch of
//! the writer thread's, a record written inline by a request's worker
//! under `everysec` or `no`, or the probe of a failed log) for as long as
//! the file `PATH` exists, just after the bytes reached the file and before
//! they are acknowledged: the worst moment. Removing `PATH` lifts the fault, as
//! raising a pids cgroup's limit lifted the original one (issue 12, item 6).
//!
//! Why a hook rather than a real thread limit: a pids cgroup or
//! `RLIMIT_NPROC` cannot be set reliably in CI (root ignores the rlimit,
//! and cgroup file systems differ between hosts and containers), while the
//! hook fails the real writer of the real binary in the same way, every
//! time. Without the variable the writer holds `None` and pays one branch
//! per batch.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that enables the fault.
pub const VARIABLE: &str = "PYKV_FAULT_WAL_WRITER";

#[derive(Debug)]
pub(super) struct Fault {
    /// Batches written before the fault can strike.
    after: u64,
    /// The fault strikes while this file exists.
    while_exists: PathBuf,
    attempts: AtomicU64,
}

impl Fault {
    /// The fault the environment asks for, if any.
    pub fn from_env() -> std::io::Result<Option<Fault>> {
        match std::env::var(VARIABLE) {
            Ok(spec) => Fault::parse(&spec).map(Some).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{VARIABLE} (a test-only hook) must be panic-after:N:PATH"),
                )
            }),
            Err(_) => Ok(None),
        }
    }

    fn parse(spec: &str) -> Option<Fault> {
        let rest = spec.strip_prefix("panic-after:")?;
        let (after, path) = rest.split_once(':')?;
        Some(Fault {
            after: after.parse().ok()?,
            while_exists: path.into(),
            attempts: AtomicU64::new(0),
        })
    }

    /// Called at each attempt to write; panics when the fault is due.
    pub fn strike(&self) {
        let attempt = self.attempts.fetch_add(1, Ordering::Relaxed) + 1;
        if attempt > self.after && self.while_exists.exists() {
            panic!("injected fault ({VARIABLE}): the log writer panics");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_the_documented_form() {
        let fault = Fault::parse("panic-after:3:/tmp/x").unwrap();
        assert_eq!((fault.after, fault.while_exists), (3, "/tmp/x".into()));
        assert!(Fault::parse("panic-after:3").is_none());
        assert!(Fault::parse("panic-after:x:/tmp/x").is_none());
        assert!(Fault::parse("abort-after:3:/tmp/x").is_none());
    }

    #[test]
    fn strikes_after_n_attempts_while_the_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fault");
        let fault = Fault::parse(&format!("panic-after:1:{}", path.display())).unwrap();
        std::fs::write(&path, "").unwrap();
        fault.strike(); // the first attempt is spared
        let struck = std::panic::catch_unwind(|| fault.strike());
        assert!(struck.is_err(), "the second attempt must panic");
        std::fs::remove_file(&path).unwrap();
        fault.strike(); // lifted
    }
}
