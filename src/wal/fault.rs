//! Test-only fault injection into the log writer, so that the tests can
//! make the real server's writer fail and check that writes are refused
//! with 503, `/health` says unhealthy, and the writer recovers.
//!
//! Enabled by an environment variable, never by a flag, and never meant for
//! production. Two forms:
//!
//! ```text
//! PYKV_FAULT_WAL_WRITER=panic-after:N:PATH
//! PYKV_FAULT_WAL_WRITER=sync-fails-after:N:PATH
//! ```
//!
//! `panic-after`: after `N` writes, the log panics at every attempt to
//! write (a batch of the writer thread's, a record written inline by a
//! request's worker under `everysec` or `no`, or the probe of a failed
//! log) for as long as the file `PATH` exists, just after the bytes
//! reached the file and before they are acknowledged: the worst moment.
//! Removing `PATH` lifts the fault, as raising a pids cgroup's limit lifted
//! the original one (issue 12, item 6).
//!
//! `sync-fails-after`: after `N` syncs, every `fdatasync` of the log's
//! writer (the periodic one under `everysec`, a batch's under `always`,
//! and the probe's of a failed log) returns an error instead of syncing,
//! for as long as `PATH` exists: a disk that stops taking writes back
//! (EIO), the "fsyncgate" case of a failed periodic sync (see "A failed
//! sync" in [`super::writer`]). Writes themselves still reach the page
//! cache, as they would.
//!
//! Why a hook rather than a real thread limit or a failing disk: a pids
//! cgroup or `RLIMIT_NPROC` cannot be set reliably in CI (root ignores the
//! rlimit, and cgroup file systems differ between hosts and containers),
//! and a failing block device (dm-flakey, dm-error) needs root and device
//! mapper, while the hook fails the real writer of the real binary in the
//! same way, every time. Without the variable the writer holds `None` and
//! pays one branch per batch.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that enables the fault.
pub const VARIABLE: &str = "PYKV_FAULT_WAL_WRITER";

/// What the fault does when it strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A panic at each write.
    PanicOnWrite,
    /// An error from each sync.
    FailSync,
}

#[derive(Debug)]
pub(super) struct Fault {
    kind: Kind,
    /// Attempts (writes or syncs, by `kind`) spared before the fault can
    /// strike.
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
                    format!(
                        "{VARIABLE} (a test-only hook) must be panic-after:N:PATH or \
                         sync-fails-after:N:PATH"
                    ),
                )
            }),
            Err(_) => Ok(None),
        }
    }

    fn parse(spec: &str) -> Option<Fault> {
        let (kind, rest) = if let Some(rest) = spec.strip_prefix("panic-after:") {
            (Kind::PanicOnWrite, rest)
        } else {
            (Kind::FailSync, spec.strip_prefix("sync-fails-after:")?)
        };
        let (after, path) = rest.split_once(':')?;
        Some(Fault {
            kind,
            after: after.parse().ok()?,
            while_exists: path.into(),
            attempts: AtomicU64::new(0),
        })
    }

    /// Called at each attempt to write; panics when a `panic-after` fault
    /// is due.
    pub fn strike(&self) {
        if self.kind == Kind::PanicOnWrite && self.due() {
            panic!("injected fault ({VARIABLE}): the log writer panics");
        }
    }

    /// Called before each sync; an error when a `sync-fails-after` fault
    /// is due, for the caller to return instead of syncing.
    pub fn strike_sync(&self) -> std::io::Result<()> {
        if self.kind == Kind::FailSync && self.due() {
            return Err(std::io::Error::other(format!(
                "injected fault ({VARIABLE}): fdatasync fails"
            )));
        }
        Ok(())
    }

    /// Counts an attempt; whether the fault strikes at it.
    fn due(&self) -> bool {
        let attempt = self.attempts.fetch_add(1, Ordering::Relaxed) + 1;
        attempt > self.after && self.while_exists.exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_the_documented_forms() {
        let fault = Fault::parse("panic-after:3:/tmp/x").unwrap();
        assert_eq!(
            (fault.kind, fault.after, fault.while_exists),
            (Kind::PanicOnWrite, 3, "/tmp/x".into())
        );
        let fault = Fault::parse("sync-fails-after:0:/tmp/y").unwrap();
        assert_eq!(
            (fault.kind, fault.after, fault.while_exists),
            (Kind::FailSync, 0, "/tmp/y".into())
        );
        assert!(Fault::parse("panic-after:3").is_none());
        assert!(Fault::parse("panic-after:x:/tmp/x").is_none());
        assert!(Fault::parse("abort-after:3:/tmp/x").is_none());
        assert!(Fault::parse("sync-fails-after:2").is_none());
        assert!(Fault::parse("sync-fails-after:-1:/tmp/y").is_none());
        assert!(Fault::parse("sync-fails:2:/tmp/y").is_none());
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

    #[test]
    fn a_panic_fault_never_fails_a_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fault");
        std::fs::write(&path, "").unwrap();
        let fault = Fault::parse(&format!("panic-after:0:{}", path.display())).unwrap();
        assert!(fault.strike_sync().is_ok());
    }

    #[test]
    fn a_sync_fault_fails_syncs_after_n_while_the_file_exists_and_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fault");
        let fault = Fault::parse(&format!("sync-fails-after:2:{}", path.display())).unwrap();
        // Absent file: no failure, though the attempts are counted.
        assert!(fault.strike_sync().is_ok());
        std::fs::write(&path, "").unwrap();
        assert!(fault.strike_sync().is_ok(), "the second sync is spared");
        let error = fault.strike_sync().unwrap_err();
        assert!(error.to_string().contains("fdatasync fails"), "{error}");
        assert!(fault.strike_sync().is_err(), "and every sync after it");
        fault.strike(); // writes go on: this form never panics
        std::fs::remove_file(&path).unwrap();
        assert!(fault.strike_sync().is_ok(), "lifted");
    }
}
