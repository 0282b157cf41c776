//! One server per data directory: an exclusive lock taken before anything
//! in the directory is read or written.
//!
//! Why: two processes replaying and appending to one `wal.log` destroy it.
//! A second server's replay cuts the zero-filled tail the first one still
//! writes into (`--fsync always`), and two writers overwrite each other's
//! records. Whatever a second process would do, it must stop before it
//! touches the log.
//!
//! How: `flock(LOCK_EX | LOCK_NB)` on `DATA_DIR/pykv.lock`, held for as
//! long as the process lives. The kernel releases a `flock` when the
//! process ends, however it ends (SIGKILL, a crash, the OOM killer), so a
//! lock file left behind never blocks a restart: only a live holder does.
//! The file's text, the holder's PID, is there for the error message alone
//! and plays no part in acquiring the lock. The file is never removed:
//! removing it would let a process that opened the old file and a process
//! that creates a new one both "hold" the lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = "pykv.lock";

/// The data directory's lock; released when dropped or when the process
/// ends.
#[derive(Debug)]
pub struct DirLock {
    /// Kept open: closing the last descriptor of the file releases the lock.
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the data directory {dir} is in use by another PyKV process{holder}, which holds {lock}. \
         Stop that process first, or choose another directory with --data-dir"
    )]
    Held {
        dir: PathBuf,
        lock: PathBuf,
        /// ` (PID n)` when the holder wrote its PID, else empty.
        holder: String,
    },
    #[error(
        "cannot lock the data directory {dir} with {lock}: {cause}. Choose another with --data-dir"
    )]
    Io {
        dir: PathBuf,
        lock: PathBuf,
        cause: std::io::Error,
    },
}

impl DirLock {
    /// Takes the lock of `dir` (which must exist) without waiting, and
    /// writes this process's PID into the lock file.
    pub fn acquire(dir: &Path) -> Result<DirLock, LockError> {
        let lock = dir.join(LOCK_FILE);
        let io_error = |cause| LockError::Io {
            dir: dir.to_owned(),
            lock: lock.clone(),
            cause,
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(&lock)
            .map_err(io_error)?;
        if let Err(cause) = try_lock_exclusive(&file) {
            if cause.kind() != std::io::ErrorKind::WouldBlock {
                return Err(io_error(cause));
            }
            return Err(LockError::Held {
                dir: dir.to_owned(),
                holder: holder_pid(&mut file)
                    .map(|pid| format!(" (PID {pid})"))
                    .unwrap_or_default(),
                lock,
            });
        }
        // The PID only helps the next person who finds the directory
        // taken: failing to write it (a full disk) does not stop a start.
        if let Err(e) = write_pid(&mut file) {
            tracing::warn!(lock = %lock.display(), error = %e, "cannot write the PID into the lock file");
        }
        Ok(DirLock { _file: file })
    }
}

/// `flock(LOCK_EX | LOCK_NB)`, retried when a signal interrupts it.
fn try_lock_exclusive(file: &File) -> std::io::Result<()> {
    loop {
        // SAFETY: flock takes a descriptor this function borrows for the
        // call; it touches no memory.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// The PID the holder wrote, if it has written one yet.
fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

fn write_pid(file: &mut File) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    writeln!(file, "{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let pid = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(pid, format!("{}\n", std::process::id()));
        // flock is per open file: a second open in the same process is
        // refused as a second process would be.
        let error = DirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(error.contains(&dir.path().display().to_string()), "{error}");
        assert!(
            error.contains(&format!("(PID {})", std::process::id())),
            "{error}"
        );
        drop(first);
        DirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn a_stale_lock_file_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        // Whatever text a dead holder left, even a live PID, is not a lock.
        std::fs::write(dir.path().join(LOCK_FILE), "1\nand more text").unwrap();
        let _lock = DirLock::acquire(dir.path()).unwrap();
        let pid = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(pid, format!("{}\n", std::process::id()));
    }
}
