//! Group commit: request handlers append records to a shared buffer; one
//! writer thread takes everything buffered, writes it with one `write`,
//! syncs it when the policy says so, and wakes every request whose record
//! it carried.
//!
//! Why a dedicated OS thread rather than a tokio task: the writer spends
//! its life in blocking `write` and `fdatasync` calls, which must not sit on
//! the async workers that answer requests.
//!
//! Under `always`, the file is extended ahead of its records with zeros
//! ([`PREALLOC_BYTES`] at a time) and records are written at their offset
//! (`pwrite`), never appended. Why: a write past the end of the file
//! changes its size, so every `fdatasync` of a growing file also commits a
//! journal transaction for the size; into blocks already written, the sync
//! writes the data alone (measured here: about 200 µs per sync down to 120,
//! and 15 to 20% more SETs a second under `always`; docs/BENCHMARKS.md).
//! `fallocate` was measured too and gains little: writing into its
//! unwritten extents needs a journal transaction to convert them. Replay
//! reads the zeros after the last record as free space, and a clean
//! shutdown cuts them off, so a stopped server leaves plain JSON lines.
//!
//! Failure (a full disk): the batch is cut back out of the file, new
//! appends are refused at once (so their handlers answer 503 and memory
//! never changes), the refused batch and everything queued behind it are
//! reverted in memory newest first, and the writer probes the disk until
//! it has room again.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::watch;

use super::record;
use super::sync_stats::{SyncSnapshot, SyncStats};
use crate::store::{Journal, Lsn, Mutation, StoreError, Undo, now_ms};

/// When the log is synced to disk, and what an acknowledged write survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FsyncPolicy {
    /// Synced (fdatasync) before the answer: survives a machine crash.
    Always,
    /// Written to the OS before the answer, synced every second: survives
    /// `kill -9`; a machine crash loses at most about a second.
    Everysec,
    /// Written to the OS before the answer; syncing is left to the OS.
    No,
}

#[derive(Debug, Clone)]
pub struct WalOptions {
    pub fsync: FsyncPolicy,
}

/// How long the writer waits between probes of a disk that was full.
const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// Size of the probe write: big enough to need fresh disk blocks.
const PROBE_BYTES: usize = 64 * 1024;
/// Failed LSN ranges remembered for waiters that wake late.
const FAILURES_KEPT: usize = 1024;
/// How far ahead of its records the log is zero-filled under `always`.
const PREALLOC_BYTES: u64 = 1 << 20;
/// What the zero-filling writes at a time.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

pub struct Wal {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

pub(super) struct Shared {
    pub path: PathBuf,
    policy: FsyncPolicy,
    pending: Mutex<Pending>,
    wake: Condvar,
    pub file: Mutex<LogFile>,
    /// Highest LSN whose fate is settled: written (and synced, under
    /// `always`) or failed.
    settled: watch::Sender<Lsn>,
    failures: Mutex<VecDeque<(Lsn, Lsn, Arc<str>)>>,
    pub log_size: AtomicU64,
    shutdown: AtomicBool,
    syncs: SyncStats,
}

struct Pending {
    buf: Vec<u8>,
    undos: Vec<Undo>,
    next_lsn: Lsn,
    /// Set while the log cannot be written; appends are refused.
    failed: Option<Arc<str>>,
    /// Whether the writer sleeps on the condition variable. Appends wake
    /// it only then: while it writes or syncs, it finds the new records by
    /// itself, and a futex wake per request would be wasted.
    writer_idle: bool,
}

/// The open log file, guarded by one lock shared by the writer thread and
/// the compaction that replaces it.
pub(super) struct LogFile {
    /// Opened without `O_APPEND`: records are written at `len`.
    pub file: Arc<File>,
    /// Where the records end.
    pub len: u64,
    /// Where the file ends: `len`, or past it when zero-filled ahead.
    allocated: u64,
    /// While a compaction runs: every batch written since it began.
    pub capture: Option<Vec<u8>>,
    /// Bytes written since the last sync.
    dirty: bool,
}

impl Wal {
    /// Starts the log on an open file of `len` bytes (already replayed).
    pub fn start(path: &Path, file: File, len: u64, options: &WalOptions) -> Arc<Wal> {
        let shared = Arc::new(Shared {
            path: path.to_owned(),
            policy: options.fsync,
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(64 * 1024),
                undos: Vec::new(),
                next_lsn: 1,
                failed: None,
                writer_idle: false,
            }),
            wake: Condvar::new(),
            file: Mutex::new(LogFile {
                file: Arc::new(file),
                len,
                allocated: len,
                capture: None,
                dirty: false,
            }),
            settled: watch::Sender::new(0),
            failures: Mutex::default(),
            log_size: AtomicU64::new(len),
            shutdown: AtomicBool::new(false),
            syncs: SyncStats::default(),
        });
        let mut threads = vec![spawn("pykv-wal-writer", {
            let shared = shared.clone();
            move || shared.write_loop()
        })];
        if options.fsync == FsyncPolicy::Everysec {
            threads.push(spawn("pykv-wal-fsync", {
                let shared = shared.clone();
                move || shared.sync_every_second()
            }));
        }
        Arc::new(Wal {
            shared,
            threads: Mutex::new(threads),
        })
    }

    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Resolves once the record at `lsn` is as durable as the policy
    /// promises, or has failed.
    pub fn wait(&self, lsn: Lsn) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let shared = self.shared.clone();
        let mut settled = shared.settled.subscribe();
        async move {
            // The sender lives as long as `shared`, which this future holds.
            let _ = settled.wait_for(|&done| done >= lsn).await;
            match shared.failure_of(lsn) {
                Some(reason) => Err(StoreError::LogUnavailable(reason.to_string())),
                None => Ok(()),
            }
        }
    }

    /// How long the log's syncs have taken.
    pub fn sync_stats(&self) -> SyncSnapshot {
        self.shared.syncs.snapshot()
    }

    /// Bytes in the log file.
    pub fn size(&self) -> u64 {
        self.shared.log_size.load(Ordering::Relaxed)
    }

    /// Writes out what is buffered, syncs the file and stops the threads.
    /// Appends after this are refused.
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        let threads = std::mem::take(&mut *lock(&self.threads));
        for thread in threads {
            thread.thread().unpark();
            let _ = thread.join();
        }
        let mut log = lock(&self.shared.file);
        if let Err(e) = log.file.sync_data().and_then(|()| log.trim()) {
            tracing::error!(path = %self.shared.path.display(), error = %e, "final sync of the log failed");
        }
    }
}

impl LogFile {
    /// A new file (a compaction's) of `len` bytes of records, and nothing
    /// after them.
    pub(super) fn replace(&mut self, file: File, len: u64) {
        self.file = Arc::new(file);
        self.len = len;
        self.allocated = len;
    }

    /// Cuts the zeros after the records off, and syncs the new size.
    fn trim(&mut self) -> std::io::Result<()> {
        if self.allocated > self.len {
            self.file.set_len(self.len)?;
            self.allocated = self.len;
            self.file.sync_all()?;
        }
        Ok(())
    }

    /// Zero-fills the file to [`PREALLOC_BYTES`] past the end of a write of
    /// `need` bytes, unless it already reaches that far. Best effort: on
    /// failure (a full disk) the zeros are cut off again, and the records
    /// are written past the end as without it.
    fn preallocate(&mut self, need: usize) {
        let end = self.len + need as u64;
        if end <= self.allocated {
            return;
        }
        let target = end + PREALLOC_BYTES;
        let mut at = self.allocated;
        let filled = loop {
            if at >= target {
                break Ok(());
            }
            let n = ZEROS.len().min((target - at) as usize);
            if let Err(e) = self.file.write_all_at(&ZEROS[..n], at) {
                break Err(e);
            }
            at += n as u64;
        };
        match filled {
            Ok(()) => self.allocated = target,
            Err(_) => {
                let _ = self.file.set_len(self.allocated);
            }
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Journal for Wal {
    fn append(&self, mutation: &Mutation<'_>, undo: Undo) -> Result<Lsn, (StoreError, Undo)> {
        let mut pending = lock(&self.shared.pending);
        if let Some(reason) = &pending.failed {
            return Err((StoreError::LogUnavailable(reason.to_string()), undo));
        }
        if self.shared.shutdown.load(Ordering::Relaxed) {
            let reason = "the server is shutting down".to_string();
            return Err((StoreError::LogUnavailable(reason), undo));
        }
        record::encode(mutation, now_ms(), &mut pending.buf);
        pending.undos.push(undo);
        let lsn = pending.next_lsn;
        pending.next_lsn += 1;
        let writer_idle = pending.writer_idle;
        drop(pending);
        if writer_idle {
            self.shared.wake.notify_one();
        }
        Ok(lsn)
    }
}

impl Shared {
    fn write_loop(&self) {
        let mut spare = Vec::with_capacity(64 * 1024);
        loop {
            let mut pending = lock(&self.pending);
            while pending.buf.is_empty() && !self.shutdown.load(Ordering::SeqCst) {
                if pending.failed.is_some() {
                    drop(pending);
                    std::thread::sleep(PROBE_INTERVAL);
                    self.probe();
                    pending = lock(&self.pending);
                } else {
                    pending.writer_idle = true;
                    pending = self.wake.wait(pending).unwrap_or_else(|p| p.into_inner());
                    pending.writer_idle = false;
                }
            }
            if pending.buf.is_empty() {
                return; // shutting down with nothing left to write
            }
            std::mem::swap(&mut pending.buf, &mut spare);
            let undos = std::mem::take(&mut pending.undos);
            let last = pending.next_lsn - 1;
            drop(pending);

            let result = self.write_batch(&spare);
            spare.clear();
            match result {
                Ok(()) => {
                    self.settled.send_replace(last);
                    undos.into_iter().for_each(Undo::discard);
                }
                Err(e) => self.fail(e, undos),
            }
        }
    }

    /// Writes one batch, syncing it under `always`; on error the file is
    /// cut back to where the batch began.
    fn write_batch(&self, batch: &[u8]) -> std::io::Result<()> {
        let mut log = lock(&self.file);
        if self.policy == FsyncPolicy::Always {
            log.preallocate(batch.len());
        }
        let result = log.file.write_all_at(batch, log.len).and_then(|()| {
            if self.policy == FsyncPolicy::Always {
                self.sync(&log.file)
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => {
                log.len += batch.len() as u64;
                log.allocated = log.allocated.max(log.len);
                log.dirty = true;
                if let Some(capture) = &mut log.capture {
                    capture.extend_from_slice(batch);
                }
                self.log_size.store(log.len, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                let _ = log.file.set_len(log.len);
                log.allocated = log.len;
                // A compaction running now may have copied records that are
                // about to be reverted: make it give up.
                log.capture = None;
                Err(e)
            }
        }
    }

    /// Refuses new appends, reverts the failed batch and everything queued
    /// behind it (newest first), and settles their waiters with an error.
    fn fail(&self, error: std::io::Error, batch_undos: Vec<Undo>) {
        let reason: Arc<str> = format!("{}: {error}", self.path.display()).into();
        tracing::error!(%reason, "cannot write the log; refusing writes until it can");
        let (queued_undos, last) = {
            let mut pending = lock(&self.pending);
            pending.failed = Some(reason.clone());
            pending.buf.clear();
            (std::mem::take(&mut pending.undos), pending.next_lsn - 1)
        };
        queued_undos.into_iter().rev().for_each(Undo::revert);
        batch_undos.into_iter().rev().for_each(Undo::revert);
        let first = *self.settled.borrow() + 1;
        {
            let mut failures = lock(&self.failures);
            if failures.len() == FAILURES_KEPT {
                failures.pop_front();
            }
            failures.push_back((first, last, reason));
        }
        self.settled.send_replace(last);
    }

    /// While failed: tries a write that needs fresh disk space, cuts it
    /// back, and lifts the failure if it went through.
    fn probe(&self) {
        let log = lock(&self.file);
        let probe = [b" ".repeat(PROBE_BYTES - 1), b"\n".to_vec()].concat();
        let ok = log.file.write_all_at(&probe, log.allocated).is_ok();
        let _ = log.file.set_len(log.allocated);
        if ok {
            tracing::info!(path = %self.path.display(), "the log is writable again; accepting writes");
            lock(&self.pending).failed = None;
        }
    }

    fn failure_of(&self, lsn: Lsn) -> Option<Arc<str>> {
        lock(&self.failures)
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&lsn))
            .map(|(_, _, reason)| reason.clone())
    }

    /// Under `everysec`: syncs the log once a second when it has changed.
    /// The sync runs outside the file lock, so the writer never waits for
    /// it.
    fn sync_every_second(&self) {
        while !self.shutdown.load(Ordering::SeqCst) {
            // Woken early by shutdown; an early wake only syncs early.
            std::thread::park_timeout(Duration::from_secs(1));
            let file = {
                let mut log = lock(&self.file);
                if !std::mem::take(&mut log.dirty) {
                    continue;
                }
                log.file.clone()
            };
            if let Err(e) = self.sync(&file) {
                tracing::error!(path = %self.path.display(), error = %e, "periodic sync of the log failed");
            }
        }
    }
}

impl Shared {
    /// `fdatasync`, timed.
    fn sync(&self, file: &File) -> std::io::Result<()> {
        let start = std::time::Instant::now();
        let result = file.sync_data();
        self.syncs.record(start.elapsed());
        result
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("spawning a log thread")
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
