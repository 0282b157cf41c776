//! Test-only fault injection into the log writer, so that the tests can
//! make the real server's writer fail and check that writes are refused
//! with 503, `/health` says unhealthy, and the writer recovers.
//!
//! Enabled by an environment variable, never by a flag, and never meant for
//! production. Five forms:
//!
//! ```text
//! PYKV_FAULT_WAL_WRITER=panic-after:N:PATH
//! PYKV_FAULT_WAL_WRITER=sync-fails-after:N:PATH
//! PYKV_FAULT_WAL_WRITER=batch-stalls-then-fails:MS:PATH
//! PYKV_FAULT_WAL_WRITER=batch-fails-then-stalls:MS:PATH
//! PYKV_FAULT_WAL_WRITER=batch-stalls:MS:PATH
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
//! `batch-stalls-then-fails`: while `PATH` exists, the writer thread holds
//! each batch it has taken for `MS` milliseconds before it writes it, then
//! the batch's write fails with an error (nothing reaches the file). Its
//! records are applied in memory and not yet written, and the thread holds
//! no lock meanwhile, as a writer thread descheduled between taking a
//! batch and writing it would: the window, a few microseconds wide in
//! production, in which a compaction can copy a write from memory and swap
//! its file in before that write has failed (see the settle wait in
//! [`super::compaction`]). Why not a stalled sync: under `always` the
//! writer syncs under the file lock, which a compaction takes to begin and
//! to swap, so a compaction asked for meanwhile waits for the failure and
//! begins only after it: the window of the next form. Every record under
//! `always` goes through the writer thread; under `everysec` and `no`,
//! those not written inline do. The probe of a failed log is not held, so
//! writes resume after each failure, and only records refused by their
//! own failed write are lost: no failed sync, so no rewrite of the log.
//!
//! `batch-fails-then-stalls`: while `PATH` exists, each batch's write
//! fails at once and is cut back out of the file, and then the writer
//! thread waits `MS` milliseconds, holding no lock, before it reverts the
//! batch's records in memory and answers their requests: the other
//! window, as narrow in production, in which a compaction beginning after
//! the failed write could still copy those records (see `fail` in
//! [`super::writer`]). The same as the form above otherwise.
//!
//! `batch-stalls`: the first batch the writer thread takes while `PATH`
//! exists, it holds for `MS` milliseconds, holding no lock, then writes it
//! as usual: a disk so slow that a compaction's wait for the writes it
//! copied runs out (see the settle wait in [`super::compaction`]). It
//! removes `PATH` as the stall begins, so that a test knows which batch
//! is held (the one in flight when `PATH` disappears) and no other is.
//!
//! Why a hook rather than a real thread limit or a failing disk: a pids
//! cgroup or `RLIMIT_NPROC` cannot be set reliably in CI (root ignores the
//! rlimit, and cgroup file systems differ between hosts and containers),
//! and a failing block device (dm-flakey, dm-error) needs root and device
//! mapper, while the hook fails the real writer of the real binary in the
//! same way, every time. Without the variable the writer holds `None` and
//! pays one branch per batch (and one per failed batch).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The environment variable that enables the fault.
pub const VARIABLE: &str = "PYKV_FAULT_WAL_WRITER";

/// What the fault does when it strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A panic at each write.
    PanicOnWrite,
    /// An error from each sync.
    FailSync,
    /// Each batch held this long, then its write failed.
    StallBatchThenFail(Duration),
    /// Each batch's write failed, then held this long before its records
    /// are reverted.
    FailBatchThenStall(Duration),
    /// Each batch held this long, then written.
    StallBatch(Duration),
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
                        "{VARIABLE} (a test-only hook) must be panic-after:N:PATH, \
                         sync-fails-after:N:PATH, batch-stalls-then-fails:MS:PATH, \
                         batch-fails-then-stalls:MS:PATH or batch-stalls:MS:PATH"
                    ),
                )
            }),
            Err(_) => Ok(None),
        }
    }

    /// `FORM:NUMBER:PATH`; the path is the rest, colons and all.
    fn parse(spec: &str) -> Option<Fault> {
        let (form, rest) = spec.split_once(':')?;
        let (number, path) = rest.split_once(':')?;
        let number: u64 = number.parse().ok()?;
        let (kind, after) = match form {
            "panic-after" => (Kind::PanicOnWrite, number),
            "sync-fails-after" => (Kind::FailSync, number),
            "batch-stalls-then-fails" => {
                (Kind::StallBatchThenFail(Duration::from_millis(number)), 0)
            }
            "batch-fails-then-stalls" => {
                (Kind::FailBatchThenStall(Duration::from_millis(number)), 0)
            }
            "batch-stalls" => (Kind::StallBatch(Duration::from_millis(number)), 0),
            _ => return None,
        };
        Some(Fault {
            kind,
            after,
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

    /// Called by the writer thread before it locks the file to write a
    /// batch: when a `batch-stalls-then-fails` fault is due, sleeps, then
    /// an error, for the caller to take as the batch's write's; when a
    /// `batch-fails-then-stalls` one is, the error at once; when a
    /// `batch-stalls` one is, sleeps.
    pub fn stall_batch(&self) -> std::io::Result<()> {
        let failure = match self.kind {
            Kind::StallBatch(stall) if self.due() && self.consume_trigger() => {
                std::thread::sleep(stall);
                return Ok(());
            }
            Kind::StallBatchThenFail(stall) if self.due() => {
                std::thread::sleep(stall);
                format!(
                    "the batch stalled {} ms, then its write failed",
                    stall.as_millis()
                )
            }
            Kind::FailBatchThenStall(stall) if self.due() => format!(
                "the batch's write failed (its records are reverted {} ms later)",
                stall.as_millis()
            ),
            _ => return Ok(()),
        };
        Err(std::io::Error::other(format!(
            "injected fault ({VARIABLE}): {failure}"
        )))
    }

    /// Called by the writer thread after a batch's write failed, before
    /// it reverts the batch's records: sleeps while a
    /// `batch-fails-then-stalls` fault is on.
    pub fn stall_failure(&self) {
        if let Kind::FailBatchThenStall(stall) = self.kind
            && self.while_exists.exists()
        {
            std::thread::sleep(stall);
        }
    }

    /// Removes `PATH`: whether this call did (a one-shot fault strikes once).
    fn consume_trigger(&self) -> bool {
        std::fs::remove_file(&self.while_exists).is_ok()
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
        let fault = Fault::parse("batch-stalls-then-fails:1500:/tmp/z").unwrap();
        let stall = Kind::StallBatchThenFail(Duration::from_millis(1500));
        assert_eq!(
            (fault.kind, fault.after, fault.while_exists),
            (stall, 0, "/tmp/z".into())
        );
        assert!(Fault::parse("batch-stalls-then-fails:1500").is_none());
        assert!(Fault::parse("batch-stalls-then-fails:1.5:/tmp/z").is_none());
        let fault = Fault::parse("batch-stalls:1500:/tmp/z").unwrap();
        assert_eq!(fault.kind, Kind::StallBatch(Duration::from_millis(1500)));
        assert!(Fault::parse("batch-stall:1500:/tmp/z").is_none());
        let fault = Fault::parse("batch-fails-then-stalls:700:/tmp/w").unwrap();
        let stall = Kind::FailBatchThenStall(Duration::from_millis(700));
        assert_eq!(
            (fault.kind, fault.after, fault.while_exists),
            (stall, 0, "/tmp/w".into())
        );
        assert!(Fault::parse("batch-fails-then-stalls::/tmp/w").is_none());
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
    fn a_panic_fault_never_fails_a_sync_nor_stalls_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fault");
        std::fs::write(&path, "").unwrap();
        let fault = Fault::parse(&format!("panic-after:0:{}", path.display())).unwrap();
        assert!(fault.strike_sync().is_ok());
        assert!(fault.stall_batch().is_ok());
        let start = std::time::Instant::now();
        fault.stall_failure();
        assert!(start.elapsed() < Duration::from_millis(100), "stalled");
    }

    #[test]
    fn a_stall_fault_holds_then_fails_each_batch_while_the_file_exists_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fault");
        let spec = format!("batch-stalls-then-fails:30:{}", path.display());
        let fault = Fault::parse(&spec).unwrap();
        let held = |fault: &Fault| {
            let start = std::time::Instant::now();
            (fault.stall_batch(), start.elapsed())
        };
        // Absent file: no stall, no failure.
        let (result, took) = held(&fault);
        assert!(
            result.is_ok() && took < Duration::from_millis(30),
            "{took:?}"
        );
        std::fs::write(&path, "").unwrap();
        for _ in 0..2 {
            let (result, took) = held(&fault);
            let error = result.unwrap_err();
            assert!(error.to_string().contains("stalled 30 ms"), "{error}");
            assert!(took >= Duration::from_millis(30), "held only {took:?}");
        }
        fault.strike(); // never a panic
        assert!(fault.strike_sync().is_ok(), "nor a failed sync");
        let start = std::time::Instant::now();
        fault.stall_failure();
        assert!(
            start.elapsed() < Duration::from_millis(30),
            "nor a held failure"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(fault.stall_batch().is_ok(), "lifted");
    }

    #[test]
    fn a_failing_batch_fault_fails_at_once_then_holds_the_failure_while_the_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fault");
        let spec = format!("batch-fails-then-stalls:30:{}", path.display());
        let fault = Fault::parse(&spec).unwrap();
        assert!(fault.stall_batch().is_ok(), "absent file: no failure");
        std::fs::write(&path, "").unwrap();
        let start = std::time::Instant::now();
        let error = fault.stall_batch().unwrap_err();
        assert!(
            start.elapsed() < Duration::from_millis(30),
            "the write stalled"
        );
        assert!(error.to_string().contains("write failed"), "{error}");
        fault.stall_failure();
        assert!(
            start.elapsed() >= Duration::from_millis(30),
            "the failure was not held"
        );
        std::fs::remove_file(&path).unwrap();
        assert!(fault.stall_batch().is_ok(), "lifted");
        let start = std::time::Instant::now();
        fault.stall_failure();
        assert!(
            start.elapsed() < Duration::from_millis(30),
            "held once lifted"
        );
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
