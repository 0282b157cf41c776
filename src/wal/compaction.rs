//! Compaction: rewriting the log down to the live data, as Redis's AOF
//! rewrite does, while writes keep flowing.
//!
//! 1. The writer starts copying every batch it writes into a capture
//!    buffer, besides writing it to the old log as usual.
//! 2. The live data is written to `wal.log.rewrite` as SET records, one
//!    shard locked at a time, and synced.
//! 3. Under the file lock (the writer waits only for this step), the
//!    captured batches are appended, the file is synced, renamed over
//!    `wal.log`, the directory is synced, and the writer switches to it.
//!
//! Replaying the captured records on top of the snapshot is correct even
//! though the snapshot is not taken at one instant: every mutation is
//! "last one wins" (SET, DEL) or absolute (CLEAR), and the capture holds,
//! in order, every mutation made since before the snapshot began.
//!
//! A crash before the rename leaves the old log whole (the leftover
//! `wal.log.rewrite` is removed at start); after it, the new log is whole
//! and synced.
//!
//! The compaction thread also runs the rewrite that ends a failed sync's
//! outage ("A failed sync" in [`super::writer`]): when the writer asks for
//! it, it compacts at once, and its success lets writes in again.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::Thread;
use std::time::Duration;

use super::writer::{Wal, lock};
use super::{REWRITE_FILE, record};
use crate::store::{Store, Visit, now_ms};

#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    #[error("a compaction is already running")]
    AlreadyRunning,
    #[error("compaction of {path} failed: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("a write to the log failed during compaction; the old log is kept")]
    WriteFailedMeanwhile,
    #[error(
        "writes the compaction copied were not written to the log within {} s; the old log is kept",
        waited.as_secs()
    )]
    UnsettledSnapshot { waited: Duration },
}

/// How long a compaction waits for the writes its snapshot copied to be
/// written to the log before it gives up.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a finished compaction did.
#[derive(Debug, Clone, Copy)]
pub struct CompactionReport {
    pub before: u64,
    pub after: u64,
}

/// Rewrites the log of `wal` from the live data of `store`. Runs on the
/// calling thread; writes go on meanwhile.
pub fn compact(wal: &Wal, store: &Store) -> Result<CompactionReport, CompactionError> {
    let shared = wal.shared();
    let dir = shared.path.parent().unwrap_or(Path::new("."));
    let tmp_path = dir.join(REWRITE_FILE);
    let io = |source| CompactionError::Io {
        path: tmp_path.display().to_string(),
        source,
    };

    {
        let mut log = lock(&shared.file);
        if log.capture.is_some() {
            return Err(CompactionError::AlreadyRunning);
        }
        log.capture = Some(Vec::new());
    }
    let result = (|| {
        let before = wal.size();
        // Not in append mode, as the log it replaces: the writer writes
        // at the records' end, which may be before the file's.
        let _ = std::fs::remove_file(&tmp_path);
        let tmp = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&tmp_path)
            .map_err(io)?;
        write_snapshot(&tmp, store).map_err(io)?;
        tmp.sync_data().map_err(io)?;
        // A mutation is appended to the log under its shard's lock, which
        // the snapshot takes too: every record the snapshot may hold has
        // an LSN up to `in_snapshot`. Each must be settled before the
        // swap. One still queued could fail after it, and be reverted in
        // memory while the new log kept it: a refused write back after a
        // restart. (A failure before the swap gives the compaction up:
        // `capture` is then gone.)
        let in_snapshot = wal.last_appended();
        if !wal.wait_settled_blocking(in_snapshot, SETTLE_TIMEOUT) {
            return Err(CompactionError::UnsettledSnapshot {
                waited: SETTLE_TIMEOUT,
            });
        }

        let mut log = lock(&shared.file);
        let captured = log
            .capture
            .take()
            .ok_or(CompactionError::WriteFailedMeanwhile)?;
        (&tmp).write_all(&captured).map_err(io)?;
        tmp.sync_data().map_err(io)?;
        std::fs::rename(&tmp_path, &shared.path).map_err(io)?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        let after = tmp.metadata().map_err(io)?.len();
        log.replace(tmp, after);
        shared.log_size.store(after, Ordering::Relaxed);
        Ok(CompactionReport { before, after })
    })();
    if result.is_err() {
        lock(&shared.file).capture = None;
        let _ = std::fs::remove_file(&tmp_path);
    }
    result
}

/// Writes a SET for every live entry: each shard is encoded in memory
/// under its lock and written to the file after the lock is released.
fn write_snapshot(file: &File, store: &Store) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let now = now_ms();
    let mut encoded = Vec::with_capacity(1 << 20);
    let mut result = Ok(());
    store.visit_live(|visit| match visit {
        Visit::Entry(mutation) => record::encode(mutation, now, &mut encoded),
        Visit::ShardDone => {
            if result.is_ok() {
                result = out.write_all(&encoded);
            }
            encoded.clear();
        }
    });
    result?;
    out.flush()
}

/// When the log is rewritten by itself: once it has grown past `ratio`
/// times its size after the last rewrite (or start), and past `min_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct AutoCompaction {
    pub min_bytes: u64,
    pub ratio: f64,
}

/// Runs compactions, one at a time, on one long-lived thread, and keeps
/// what `/stats` reports of them.
///
/// Why one thread for the server's life rather than one per compaction: a
/// thread started per `POST /compact` fails when the OS refuses one (a
/// pids cgroup at its limit), and that failure would leave a compaction
/// "running" forever. The same thread checks every second whether the log
/// has grown enough to compact by itself, and whether the writer wants the
/// log rewritten after a failed sync.
pub struct Compactor {
    wal: Arc<Wal>,
    store: Arc<Store>,
    /// Set when a compaction is asked for, cleared when it is over.
    running: AtomicBool,
    /// Seconds since the epoch of the last finished compaction.
    last: Mutex<Option<f64>>,
    /// Log size after the last rewrite, the base of the growth ratio.
    base: AtomicU64,
    /// Compactions finished since the start.
    finished: AtomicU64,
    /// The compaction thread, woken when a compaction is asked for.
    worker: OnceLock<Thread>,
}

impl Compactor {
    /// Starts the compaction thread; it stops by itself once the compactor
    /// is dropped. Fails when the OS refuses the thread.
    pub fn new(
        wal: Arc<Wal>,
        store: Arc<Store>,
        policy: AutoCompaction,
    ) -> std::io::Result<Arc<Self>> {
        let base = wal.size();
        let this = Arc::new(Compactor {
            wal,
            store,
            running: AtomicBool::new(false),
            last: Mutex::new(None),
            base: AtomicU64::new(base),
            finished: AtomicU64::new(0),
            worker: OnceLock::new(),
        });
        let weak = Arc::downgrade(&this);
        let worker = std::thread::Builder::new()
            .name("pykv-compaction".into())
            .spawn(move || work(&weak, policy))?;
        this.wal.set_rewriter(worker.thread().clone());
        let _ = this.worker.set(worker.thread().clone());
        Ok(this)
    }

    /// Asks the compaction thread for a compaction; false when one is
    /// running already.
    pub fn start(&self) -> bool {
        if self.running.swap(true, Ordering::SeqCst) {
            return false;
        }
        if let Some(worker) = self.worker.get() {
            worker.unpark();
        }
        true
    }

    /// Whether the log has grown enough to be compacted by itself.
    fn due(&self, policy: AutoCompaction) -> bool {
        let size = self.wal.size();
        let base = self.base.load(Ordering::Relaxed).max(1);
        size >= policy.min_bytes && size as f64 >= policy.ratio * base as f64
    }

    /// Runs one compaction; whether it succeeded.
    fn run(&self) -> bool {
        tracing::info!(log_size = self.wal.size(), "compaction started");
        match compact(&self.wal, &self.store) {
            Ok(report) => {
                self.base.store(report.after, Ordering::Relaxed);
                *lock(&self.last) = Some(now_ms() as f64 / 1000.0);
                self.finished.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    before = report.before,
                    after = report.after,
                    "compaction finished"
                );
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "compaction failed; the log is unchanged");
                false
            }
        }
    }

    pub fn last_compaction(&self) -> Option<f64> {
        *lock(&self.last)
    }

    pub fn compactions(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }
}

/// The compaction thread: wakes when a compaction is asked for (by
/// `POST /compact`, or by the writer wanting the log rewritten), or every
/// second to check the log's growth; ends once the compactor is dropped.
fn work(compactor: &Weak<Compactor>, policy: AutoCompaction) {
    loop {
        std::thread::park_timeout(Duration::from_secs(1));
        let Some(this) = compactor.upgrade() else {
            return;
        };
        let asked = this.running.load(Ordering::SeqCst);
        // Read before the compaction begins: only a rewrite begun after
        // the failure it answers may lift it.
        let rewrite = this.wal.rewrite_wanted();
        let wanted = rewrite.is_some() || this.due(policy);
        if asked || (wanted && !this.running.swap(true, Ordering::SeqCst)) {
            // A panic (a bug) fails this compaction, not the next ones.
            match catch_unwind(AssertUnwindSafe(|| this.run())) {
                Ok(true) => rewrite
                    .into_iter()
                    .for_each(|failure| this.wal.rewritten(failure)),
                Ok(false) => {}
                Err(_) => {
                    tracing::error!("compaction failed on a panic; the log is unchanged");
                    let _ =
                        std::fs::remove_file(this.wal.shared().path.with_file_name(REWRITE_FILE));
                    lock(&this.wal.shared().file).capture = None;
                }
            }
            this.running.store(false, Ordering::SeqCst);
        }
    }
}
