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
//! **Gathering a batch under `always`.** Taking whatever is queued the
//! moment a sync ends makes the batches small: with 32 clients, four to six
//! records a sync, ten thousand syncs a second, each one waking the
//! worker, the clients and the writer for a few requests. So after a synced
//! batch of at least [`GATHER_FROM`] records (concurrent writers, whose
//! next records are on their way), the writer waits until as many records
//! are queued again, or [`GATHER_WAIT`] has passed, before it takes the
//! next batch, and goes on so while its batches hold [`GATHER_WHILE`] or
//! more; the append that queues the last of them wakes it (one wake per
//! batch, not per record). Batches grew to about twenty records and SETs a
//! second by 30 to 50 % with 32 clients (docs/BENCHMARKS.md). A few
//! writers, whose batches stay small, never wait for each other; the wait
//! only delays the next batch, never the acknowledgement of a synced one.
//!
//! Failure (a full disk): the batch is cut back out of the file, new
//! appends are refused at once (so their handlers answer 503 and memory
//! never changes), the refused batch and everything queued behind it are
//! reverted in memory newest first, and the writer probes the disk until
//! it has room again.
//!
//! **Inline writes.** Under `everysec` and `no`, the answer waits only for
//! the record to reach the OS, not the disk. Handing it to the writer
//! thread then costs more than the write itself: a wake of the writer, a
//! wake of the request's task from another thread, and the workers
//! parking meanwhile (futex calls were about 20 % of the server's samples
//! under SETs; docs/BENCHMARKS.md). So when the writer is idle with
//! nothing queued, the request's own worker writes its record at once
//! (`pwrite`, one or two microseconds into the page cache), under the
//! append lock that orders every record anyway, and answers with no wait.
//! (`when the writer is idle`: nothing queued and no batch of the writer's
//! unsettled, so that the record goes straight after the last one written.)
//! A buffered write can still sleep when the kernel throttles writers of
//! dirty pages, which must never happen on an async worker: inline writes
//! are made only while the kernel is far from throttling
//! ([`super::pressure`]), and never while the log file is busy (a
//! compaction's last step) or failed. Otherwise, and always under
//! `always` (whose sync must not run on a worker), records go through the
//! writer thread as above. An inline write that fails, by an error or a
//! panic (caught on the worker: the request must still be answered, and
//! the file and its lock left as they were), is cut back out of the file
//! and leaves its record queued for the writer, which retries it and,
//! failing too, fails it as described below: the request is answered 503
//! and nothing unwritten is acknowledged.
//!
//! A panic of the writer (a bug, or an injected fault: [`super::fault`]) is
//! the same failure: the writer runs under a supervisor that catches it,
//! cuts the batch in flight out of the file, fails it and everything
//! queued as above, and goes on probing, so no write waits forever and
//! writes resume by themselves. Why recover rather than exit: the failed
//! state is the one a full disk already reaches and leaves, tested, and
//! after it memory and log agree again (nothing unacknowledged survives in
//! either). Only if that recovery panics too does the process exit with
//! [`EXIT_WRITER_LOST`], for a supervisor to restart it; the log then holds
//! every acknowledged write.
//!
//! **A failed sync.** Under `everysec`, a failed periodic `fdatasync`
//! cannot just be logged: Linux may have marked the pages whose writeback
//! failed clean and dropped their error (the "fsyncgate" problem), so a
//! later sync can succeed although those bytes never reached the disk, and
//! the promise that a machine crash loses at most about a second would be
//! broken from then on, silently. So the pacer puts the log in the failed
//! state above (as Redis answers `MISCONF` until its AOF syncs again):
//! appends are refused at once, and the writer fails the records queued
//! but not yet written as a failed write's (reverted, answered 503).
//! Records already acknowledged stay, in memory and in the page cache:
//! they were promised to survive `kill -9`, and they do. A compaction
//! running then is made to give up, as it may have copied records about to
//! be reverted. Recovery: the probe (a write and a sync) must succeed, and
//! then, as the failed bytes may still be missing from the disk, the log
//! is rewritten from memory before writes are accepted again: the probe
//! asks the compaction thread for a compaction ([`Wal::rewrite_wanted`]),
//! which writes a fresh file from the live data, syncs it, swaps it in and
//! syncs the directory, and only its success lifts the failure
//! ([`Wal::rewritten`]). A rewrite that fails leaves the log failed, and
//! the next good probe asks again. Until a rewrite succeeds, a machine
//! crash can lose what was acknowledged since the last good sync, as it
//! could before the failure was seen; a clean shutdown in the failed state
//! syncs the old file and no more (the page cache still holds the bytes,
//! so a restart without a machine crash finds them).

use std::collections::VecDeque;
use std::fs::File;
use std::future::poll_fn;
use std::os::unix::fs::FileExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, TryLockError};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use super::fault::Fault;
use super::pressure::{DirtyPressure, SAMPLE_INTERVAL};
use super::record;
use super::settlement::Settlement;
use super::sync_stats::{SyncSnapshot, SyncStats};
use crate::store::{Journal, Lsn, Mutation, StoreError, Undo, now_ms};

/// When the log is synced to disk, and what an acknowledged write survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
/// Under `always`, the smallest synced batch after which the writer begins
/// to gather the next ones: eight records show writers enough to wait for
/// (with four clients, waiting for all four cost 8 % of their SETs).
const GATHER_FROM: usize = 8;
/// Once gathering, the smallest synced batch after which it goes on (a
/// gather that timed out short of its target leaves a smaller batch).
const GATHER_WHILE: usize = 4;
/// Under `always`, the longest the writer waits to gather a batch.
const GATHER_WAIT: Duration = Duration::from_micros(200);
/// How far ahead of its records the log is zero-filled under `always`.
const PREALLOC_BYTES: u64 = 1 << 20;
/// What the zero-filling writes at a time.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
/// The exit status when the writer cannot recover from a panic
/// (`EX_SOFTWARE`): a supervisor restarts the server, which replays the log.
pub const EXIT_WRITER_LOST: i32 = 70;

pub struct Wal {
    shared: Arc<WriterState>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

pub(super) struct WriterState {
    pub path: PathBuf,
    policy: FsyncPolicy,
    pending: Mutex<Pending>,
    wake: Condvar,
    pub file: Mutex<LogFile>,
    /// Which records are written (and synced, under `always`) or failed,
    /// and who waits for them: settled by the writer thread and by a
    /// failure, waking their waiters, and by an inline write, waking no
    /// one (its own request never waits, and the records before it are
    /// settled already).
    settlement: Settlement,
    failures: Mutex<VecDeque<(Lsn, Lsn, Arc<str>)>>,
    /// Whether `failures` ever held anything: until then, a record's fate
    /// is known from [`Self::settlement`] alone, with no lock.
    ever_failed: AtomicBool,
    pub log_size: AtomicU64,
    shutdown: AtomicBool,
    syncs: SyncStats,
    /// Whether workers may write records themselves (see "Inline writes"
    /// above): not under `always`.
    inline: bool,
    pressure: DirtyPressure,
    records: RecordsWritten,
    /// Test-only fault injection; `None` in production.
    fault: Option<Fault>,
    /// The thread that rewrites the log (the compaction thread), woken
    /// when a probe asks for a rewrite; it also looks every second.
    rewriter: OnceLock<Thread>,
}

/// Records written to the log since the start, by who wrote them.
#[derive(Debug, Default)]
struct RecordsWritten {
    /// By the worker that appended them ("Inline writes" above).
    inline: AtomicU64,
    /// By the writer thread.
    by_writer: AtomicU64,
}

/// The batch the writer has taken and not yet settled: what a panic while
/// writing it must cut out of the file and fail. Owned by the supervisor,
/// so that it outlives the panic.
#[derive(Default)]
struct InFlight {
    bytes: Vec<u8>,
    undos: Vec<Undo>,
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
    /// Whether the writer holds a batch it has not settled: records
    /// appended meanwhile must follow that batch in the file.
    batch_in_flight: bool,
    /// Set while the writer gathers the next batch under `always`: the
    /// append that queues this many records wakes it ("Gathering a batch"
    /// above).
    gather_until: Option<usize>,
    /// Periodic syncs that failed since the start: numbers each failure,
    /// so that only a rewrite begun after the last one lifts it.
    sync_failures: u64,
    /// Set (to the failure's number) while a failed sync keeps the log
    /// failed until it is rewritten from memory ("A failed sync" above).
    unsynced: Option<u64>,
    /// Whether a probe found the disk syncing again since: the rewrite
    /// may run.
    rewrite_wanted: bool,
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
    /// Fails when the OS refuses its threads.
    pub fn start(
        path: &Path,
        file: File,
        len: u64,
        options: &WalOptions,
    ) -> std::io::Result<Arc<Wal>> {
        let fault = Fault::from_env()?;
        let shared = Arc::new(WriterState {
            path: path.to_owned(),
            policy: options.fsync,
            pending: Mutex::new(Pending {
                buf: Vec::with_capacity(64 * 1024),
                undos: Vec::new(),
                next_lsn: 1,
                failed: None,
                writer_idle: false,
                batch_in_flight: false,
                gather_until: None,
                sync_failures: 0,
                unsynced: None,
                rewrite_wanted: false,
            }),
            wake: Condvar::new(),
            file: Mutex::new(LogFile {
                file: Arc::new(file),
                len,
                allocated: len,
                capture: None,
                dirty: false,
            }),
            settlement: Settlement::default(),
            failures: Mutex::default(),
            ever_failed: AtomicBool::new(false),
            log_size: AtomicU64::new(len),
            shutdown: AtomicBool::new(false),
            syncs: SyncStats::default(),
            inline: options.fsync != FsyncPolicy::Always,
            pressure: DirtyPressure::default(),
            records: RecordsWritten::default(),
            fault,
            rewriter: OnceLock::new(),
        });
        let wal = Arc::new(Wal {
            shared: shared.clone(),
            threads: Mutex::default(),
        });
        // Pushed one by one: if the second cannot start, dropping `wal`
        // stops the first.
        let writer = spawn("pykv-wal-writer", {
            let shared = shared.clone();
            move || shared.supervise_writer()
        })?;
        lock(&wal.threads).push(writer);
        if shared.inline || options.fsync == FsyncPolicy::Everysec {
            let syncer = spawn("pykv-wal-pacer", move || shared.supervise_pacer())?;
            lock(&wal.threads).push(syncer);
        }
        Ok(wal)
    }

    /// Why the log cannot be written now, if it cannot: writes are refused
    /// with 503 and the server is unhealthy until it can.
    pub fn outage(&self) -> Option<Arc<str>> {
        lock(&self.shared.pending).failed.clone()
    }

    pub(super) fn shared(&self) -> &Arc<WriterState> {
        &self.shared
    }

    /// After a failed sync, once the disk syncs again: the number of the
    /// failure that a rewrite of the log from memory would lift, for the
    /// compaction thread ("A failed sync" above).
    pub fn rewrite_wanted(&self) -> Option<u64> {
        let pending = lock(&self.shared.pending);
        pending.unsynced.filter(|_| pending.rewrite_wanted)
    }

    /// A compaction begun when [`Self::rewrite_wanted`] answered `failure`
    /// has rewritten and synced the log: every acknowledged write is on
    /// disk again, and writes are accepted, unless a sync failed again
    /// since.
    pub fn rewritten(&self, failure: u64) {
        let mut pending = lock(&self.shared.pending);
        if pending.unsynced == Some(failure) {
            pending.unsynced = None;
            pending.rewrite_wanted = false;
            pending.failed = None;
            tracing::info!(
                path = %self.shared.path.display(),
                "the log was rewritten from memory and synced; accepting writes"
            );
        }
    }

    /// Names the thread that rewrites the log when a probe asks for it.
    pub fn set_rewriter(&self, thread: Thread) {
        let _ = self.shared.rewriter.set(thread);
    }

    /// Whether the record at `lsn` is already as durable as the policy
    /// promises (written inline), so that nothing need wait for it.
    pub fn is_durable(&self, lsn: Lsn) -> bool {
        let shared = &self.shared;
        shared.settlement.is_settled(lsn)
            && (!shared.ever_failed.load(Ordering::Acquire) || shared.fate(lsn).is_ok())
    }

    /// Resolves once the record at `lsn` is as durable as the policy
    /// promises, or has failed.
    pub fn wait(&self, lsn: Lsn) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let shared = self.shared.clone();
        async move {
            poll_fn(|cx| shared.settlement.poll_settled(lsn, cx)).await;
            shared.fate(lsn)
        }
    }

    /// Records written so far, inline and by the writer thread.
    pub fn records_written(&self) -> (u64, u64) {
        let records = &self.shared.records;
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        (load(&records.inline), load(&records.by_writer))
    }

    /// Resolves once every record of `lsns` is as durable as the policy
    /// promises, or has failed, with the fate of each: one wait for a
    /// whole batch of writes rather than one per write.
    pub fn wait_all(
        &self,
        lsns: Vec<Lsn>,
    ) -> impl Future<Output = Vec<Result<(), StoreError>>> + Send + 'static {
        let last = lsns.iter().copied().max().unwrap_or(0);
        let shared = self.shared.clone();
        async move {
            poll_fn(|cx| shared.settlement.poll_settled(last, cx)).await;
            let failures = lock(&shared.failures);
            (lsns.into_iter())
                .map(|lsn| fate_in(&failures, lsn))
                .collect()
        }
    }

    /// How long the log's syncs have taken.
    pub fn sync_stats(&self) -> SyncSnapshot {
        self.shared.syncs.snapshot()
    }

    /// The LSN of the last record appended so far.
    pub fn last_appended(&self) -> Lsn {
        lock(&self.shared.pending).next_lsn - 1
    }

    /// Blocks the calling thread (a compaction's, never an async worker)
    /// until the record at `lsn` is settled, written or failed, or until
    /// `timeout` has passed; whether it was settled.
    pub fn wait_settled_blocking(&self, lsn: Lsn, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.shared.settlement.is_settled(lsn) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
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

    /// Counts `batch`, just written at the records' end, as records.
    fn advance(&mut self, batch: &[u8], log_size: &AtomicU64) {
        let end = self.len + batch.len() as u64;
        if let Some(capture) = &mut self.capture {
            capture.extend_from_slice(batch);
        }
        self.allocated = self.allocated.max(end);
        self.dirty = true;
        // Last: until the records' end moves, a panic cuts the batch back
        // out of the file (`recover`).
        self.len = end;
        log_size.store(end, Ordering::Relaxed);
    }

    /// Cuts everything after the records off: a batch that failed, or that
    /// a panic left half written. A compaction running now may have copied
    /// records that are about to be reverted: it is made to give up.
    fn cut_back(&mut self) {
        let _ = self.file.set_len(self.len);
        self.allocated = self.len;
        self.capture = None;
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
        if let Some(cause) = &pending.failed {
            let reason = self.shared.reason(cause).to_string();
            return Err((StoreError::LogUnavailable(reason), undo));
        }
        if self.shared.shutdown.load(Ordering::Relaxed) {
            let reason = "the server is shutting down".to_string();
            return Err((StoreError::LogUnavailable(reason), undo));
        }
        let inline = self.shared.may_write_inline(&pending);
        record::encode(mutation, now_ms(), &mut pending.buf);
        let lsn = pending.next_lsn;
        pending.next_lsn += 1;
        if inline && self.shared.write_inline(&mut pending, lsn) {
            drop(pending);
            undo.discard();
            return Ok(lsn);
        }
        pending.undos.push(undo);
        let wake = pending.writer_idle || pending.gather_until == Some(pending.undos.len());
        drop(pending);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(lsn)
    }
}

impl WriterState {
    /// Whether the next record may be written by the appending worker:
    /// nothing is queued and the writer holds no batch (so the record goes
    /// straight after the last one written), and the kernel is far from
    /// throttling.
    fn may_write_inline(&self, pending: &Pending) -> bool {
        self.inline && !pending.batch_in_flight && pending.buf.is_empty() && self.pressure.is_calm()
    }

    /// Writes the one record in `pending.buf` (number `lsn`) at the
    /// records' end, unless the file is busy; on success it is settled and
    /// the buffer emptied. On failure (an error, or a panic caught here)
    /// whatever reached the file is cut back out and the record stays
    /// queued, for the writer.
    fn write_inline(&self, pending: &mut Pending, lsn: Lsn) -> bool {
        // Never wait for the file: a compaction's last step holds it
        // through a sync. A lock poisoned by a panic of the writer's is
        // taken all the same: `recover` left the file consistent.
        let mut log = match self.file.try_lock() {
            Ok(log) => log,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return false,
        };
        let start = Instant::now();
        // Caught here, while the guard is held, so that a panic neither
        // poisons the locks nor leaves the request unanswered.
        let written = catch_unwind(AssertUnwindSafe(|| {
            log.file.write_all_at(&pending.buf, log.len)?;
            if let Some(fault) = &self.fault {
                fault.strike();
            }
            Ok::<(), std::io::Error>(())
        }));
        self.pressure.observe_write(start.elapsed());
        if !matches!(written, Ok(Ok(()))) {
            // Under `everysec` and `no` nothing is zero-filled ahead: the
            // records' end is the file's.
            let _ = log.file.set_len(log.len);
            return false;
        }
        log.advance(&pending.buf, &self.log_size);
        drop(log);
        pending.buf.clear();
        self.records.inline.fetch_add(1, Ordering::Relaxed);
        // No waiter to wake (see `settlement`).
        self.settlement.settle_unwaited(lsn);
        true
    }

    /// Runs the writer, recovering from its panics (see the module's
    /// documentation): a panic fails the batch in flight and everything
    /// queued, exactly as a failed write does, and the writer goes on.
    fn supervise_writer(&self) {
        let mut in_flight = InFlight::default();
        while let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.write_loop(&mut in_flight))) {
            let cause = format!("the log writer failed: {}", panic_message(&*panic));
            let recovered = catch_unwind(AssertUnwindSafe(|| self.recover(&mut in_flight, cause)));
            if recovered.is_err() {
                tracing::error!(
                    path = %self.path.display(),
                    "the log writer cannot recover from a failure; exiting so that a supervisor \
                     restarts the server (the log holds every acknowledged write)"
                );
                std::process::exit(EXIT_WRITER_LOST);
            }
        }
    }

    /// After a panic: cuts whatever the batch in flight left in the file
    /// back out, and fails it with everything queued behind it.
    fn recover(&self, in_flight: &mut InFlight, cause: String) {
        in_flight.bytes.clear();
        lock(&self.file).cut_back();
        // The panic may have poisoned the file's lock; the file is
        // consistent again.
        self.file.clear_poison();
        self.fail(cause, std::mem::take(&mut in_flight.undos));
        lock(&self.pending).batch_in_flight = false;
    }

    /// Takes what is buffered and writes it, batch after batch, until
    /// shutdown. The batch stays in `in_flight` until it is settled.
    fn write_loop(&self, in_flight: &mut InFlight) {
        let mut gathering = false;
        while let Some(last) = self.take_batch(in_flight) {
            let result = self.write_batch(&in_flight.bytes);
            in_flight.bytes.clear();
            let undos = std::mem::take(&mut in_flight.undos);
            match result {
                Ok(()) => {
                    self.settlement.settle(last);
                    lock(&self.pending).batch_in_flight = false;
                    let records = undos.len();
                    self.records
                        .by_writer
                        .fetch_add(records as u64, Ordering::Relaxed);
                    undos.into_iter().for_each(Undo::discard);
                    if self.policy == FsyncPolicy::Always {
                        gathering = self.gather(records, gathering);
                    }
                }
                Err(e) => {
                    if let Some(fault) = &self.fault {
                        fault.stall_failure();
                    }
                    self.fail(e.to_string(), undos);
                    lock(&self.pending).batch_in_flight = false;
                }
            }
        }
    }

    /// Waits for records (probing the log meanwhile while it is failed) and
    /// moves them into `in_flight`; returns the last LSN taken, or `None`
    /// at shutdown once everything is written.
    fn take_batch(&self, in_flight: &mut InFlight) -> Option<Lsn> {
        let mut pending = self.fail_queued_if_failed(lock(&self.pending));
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
                pending = self.fail_queued_if_failed(pending);
            }
        }
        if pending.buf.is_empty() {
            return None; // shutting down with nothing left to write
        }
        std::mem::swap(&mut pending.buf, &mut in_flight.bytes);
        in_flight.undos = std::mem::take(&mut pending.undos);
        pending.batch_in_flight = true;
        Some(pending.next_lsn - 1)
    }

    /// After a synced batch of `last_batch` records under `always`: when
    /// it was big enough to show concurrent writers ([`GATHER_FROM`], or
    /// [`GATHER_WHILE`] when `gathering` already), waits until as many
    /// records are queued again, or [`GATHER_WAIT`] has passed, before the
    /// next batch is taken ("Gathering a batch" above). Whether it
    /// gathered.
    fn gather(&self, last_batch: usize, gathering: bool) -> bool {
        let enough = if gathering { GATHER_WHILE } else { GATHER_FROM };
        if last_batch < enough {
            return false;
        }
        let deadline = Instant::now() + GATHER_WAIT;
        let mut pending = lock(&self.pending);
        pending.gather_until = Some(last_batch);
        while pending.undos.len() < last_batch
            && pending.failed.is_none()
            && !self.shutdown.load(Ordering::SeqCst)
        {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            pending = match self.wake.wait_timeout(pending, left) {
                Ok((pending, _)) => pending,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        pending.gather_until = None;
        true
    }

    /// Writes one batch, syncing it under `always`; on error the file is
    /// cut back to where the batch began.
    fn write_batch(&self, batch: &[u8]) -> std::io::Result<()> {
        // Test-only: held before the file is locked, then failed as its
        // write, or failed at once (`batch-...` in [`super::fault`]).
        let held = self.fault.as_ref().map_or(Ok(()), Fault::stall_batch);
        let mut log = lock(&self.file);
        if self.policy == FsyncPolicy::Always {
            log.preallocate(batch.len());
        }
        let write = held.and_then(|()| log.file.write_all_at(batch, log.len));
        let result = write.and_then(|()| {
            if let Some(fault) = &self.fault {
                fault.strike();
            }
            if self.policy == FsyncPolicy::Always {
                self.sync(&log.file)
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => {
                log.advance(batch, &self.log_size);
                Ok(())
            }
            Err(e) => {
                log.cut_back();
                Err(e)
            }
        }
    }

    /// Refuses new appends, reverts the failed batch and everything queued
    /// behind it (newest first), and settles their waiters with an error.
    fn fail(&self, cause: String, batch_undos: Vec<Undo>) {
        let cause: Arc<str> = cause.into();
        let (queued_undos, last, was) = {
            let mut pending = lock(&self.pending);
            let was = pending.failed.replace(cause.clone());
            pending.buf.clear();
            (
                std::mem::take(&mut pending.undos),
                pending.next_lsn - 1,
                was,
            )
        };
        // Logged once per failure, not at each failed probe.
        if was.as_deref() != Some(&*cause) {
            tracing::error!(path = %self.path.display(), %cause, "cannot write the log; refusing writes until it can");
        }
        queued_undos.into_iter().rev().for_each(Undo::revert);
        batch_undos.into_iter().rev().for_each(Undo::revert);
        // A compaction begun since the failed batch was cut back out of
        // the file (`cut_back` made any one running then give up) may have
        // copied the records just reverted: it gives up too. Before they
        // are settled, so that a compaction waiting for them sees it; one
        // beginning after this copies memory as reverted.
        lock(&self.file).capture = None;
        let first = self.settlement.last() + 1;
        if first <= last {
            let mut failures = lock(&self.failures);
            if failures.len() == FAILURES_KEPT {
                failures.pop_front();
            }
            failures.push_back((first, last, self.reason(&cause)));
            // Before the records are settled: whoever sees them settled
            // then sees the failure too.
            self.ever_failed.store(true, Ordering::Release);
        }
        self.settlement.settle(last);
    }

    /// What a refused write is told: the log and why it cannot be written.
    fn reason(&self, cause: &str) -> Arc<str> {
        format!("{}: {cause}", self.path.display()).into()
    }

    /// While failed: tries a write that needs fresh disk space and a sync
    /// of it, cuts it back, and if both went through lifts the failure, or,
    /// after a failed sync, asks for the rewrite that will ("A failed
    /// sync" above). (Left by a crash, the probe is a blank line, which
    /// replay skips.)
    fn probe(&self) {
        if let Some(fault) = &self.fault {
            fault.strike();
        }
        let log = lock(&self.file);
        let probe = [b" ".repeat(PROBE_BYTES - 1), b"\n".to_vec()].concat();
        let result =
            (log.file.write_all_at(&probe, log.allocated)).and_then(|()| self.sync(&log.file));
        let _ = log.file.set_len(log.allocated);
        let mut pending = lock(&self.pending);
        if result.is_err() {
            pending.rewrite_wanted = false;
        } else if pending.unsynced.is_none() {
            tracing::info!(path = %self.path.display(), "the log is writable again; accepting writes");
            pending.failed = None;
        } else if !std::mem::replace(&mut pending.rewrite_wanted, true) {
            tracing::info!(
                path = %self.path.display(),
                "the log syncs again; rewriting it from memory before accepting writes"
            );
        }
        let wanted = pending.rewrite_wanted;
        drop(pending);
        drop(log);
        if let Some(rewriter) = self.rewriter.get().filter(|_| wanted) {
            rewriter.unpark();
        }
    }

    /// The fate of the settled record at `lsn`: written, or failed and why.
    fn fate(&self, lsn: Lsn) -> Result<(), StoreError> {
        fate_in(&lock(&self.failures), lsn)
    }

    /// Runs the pacer; a panic restarts it rather than silently ending the
    /// syncs.
    fn supervise_pacer(&self) {
        while catch_unwind(AssertUnwindSafe(|| self.pace())).is_err() {
            tracing::error!(path = %self.path.display(), "the periodic sync of the log failed; restarting it");
        }
    }

    /// The log's periodic work: samples the kernel's dirty memory for
    /// inline writes, and under `everysec` syncs the log once a second.
    fn pace(&self) {
        let mut last_sync = Instant::now();
        while !self.shutdown.load(Ordering::SeqCst) {
            // Woken early by shutdown; an early wake only samples early.
            std::thread::park_timeout(SAMPLE_INTERVAL);
            if self.inline {
                self.pressure.sample();
            }
            if self.policy == FsyncPolicy::Everysec && last_sync.elapsed() >= Duration::from_secs(1)
            {
                last_sync = Instant::now();
                self.sync_if_dirty();
            }
        }
    }

    /// Syncs the log if it changed since the last sync. The sync runs
    /// outside the file lock, so the writer never waits for it.
    fn sync_if_dirty(&self) {
        let file = {
            let mut log = lock(&self.file);
            if !std::mem::take(&mut log.dirty) {
                return;
            }
            log.file.clone()
        };
        if let Err(e) = self.sync(&file) {
            self.fail_sync(&e);
        }
    }

    /// A periodic sync failed: refuses appends from now on and leaves the
    /// rest to the writer, woken to fail what is queued and to probe
    /// ("A failed sync" above). Not failed here: the writer may hold a
    /// batch, whose records must be settled in order.
    fn fail_sync(&self, error: &std::io::Error) {
        let cause: Arc<str> = format!(
            "the log could not be synced to disk (fdatasync: {error}); writes are refused until \
             a sync succeeds again and the log is rewritten from memory"
        )
        .into();
        // A compaction running may have copied records about to be
        // reverted: it gives up, as after a failed write.
        lock(&self.file).capture = None;
        let mut pending = lock(&self.pending);
        pending.sync_failures += 1;
        pending.unsynced = Some(pending.sync_failures);
        pending.rewrite_wanted = false;
        let was = pending.failed.replace(cause.clone());
        drop(pending);
        if was.as_deref() != Some(&*cause) {
            tracing::error!(
                path = %self.path.display(),
                %cause,
                "periodic sync of the log failed; refusing writes"
            );
        }
        self.wake.notify_one();
    }

    /// The writer's part of a failure it did not see itself (a failed
    /// sync, [`Self::fail_sync`]): while the log is failed, records still
    /// queued, appended before the failure, are failed as a failed
    /// batch's would be. Takes and gives back the lock of `pending`.
    fn fail_queued_if_failed<'a>(
        &'a self,
        pending: MutexGuard<'a, Pending>,
    ) -> MutexGuard<'a, Pending> {
        let Some(cause) = pending.failed.clone().filter(|_| !pending.buf.is_empty()) else {
            return pending;
        };
        drop(pending);
        self.fail(cause.to_string(), Vec::new());
        lock(&self.pending)
    }
}

impl WriterState {
    /// `fdatasync`, timed.
    fn sync(&self, file: &File) -> std::io::Result<()> {
        if let Some(fault) = &self.fault {
            fault.strike_sync()?;
        }
        let start = Instant::now();
        let result = file.sync_data();
        self.syncs.record(start.elapsed());
        result
    }
}

/// The fate of the settled record at `lsn`, given the failed LSN ranges.
fn fate_in(failures: &VecDeque<(Lsn, Lsn, Arc<str>)>, lsn: Lsn) -> Result<(), StoreError> {
    match (failures.iter()).find(|(first, last, _)| (*first..=*last).contains(&lsn)) {
        Some((_, _, reason)) => Err(StoreError::LogUnavailable(reason.to_string())),
        None => Ok(()),
    }
}

/// Starts one of the log's threads; the error says which could not start.
fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start the thread {name}: {e}")))
}

/// The text of a panic's payload (`panic!` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic")
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
