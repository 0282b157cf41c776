//! The embedded backend, the default: the engine and its write-ahead log,
//! opened together from a data directory: replay, then journal every
//! change, wait for durability before acknowledging, and compact the log
//! now and then.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::backend::{
    BackendError, BackendStats, ChangeStream, Commit, Health, Imported, KvBackend, PersistenceStats,
};
use crate::dir_lock::{DirLock, LockError};
use crate::store::batch::alone;
use crate::store::{
    BatchOp, Condition, KeyPage, Limit, Lsn, NamespaceStats, OpKind, Outcome, QuotaReport, Record,
    RecordPage, Store, StoreConfig, StoreError, StoreStats, Undo, deadline_in, now_ms,
    validate_namespace,
};
use crate::wal::{
    AutoCompaction, Compactor, LOG_FILE, REWRITE_FILE, RecoveryError, RecoveryReport, Wal,
    WalOptions, recovery,
};

#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    pub data_dir: PathBuf,
    pub store: StoreConfig,
    pub wal: WalOptions,
    /// Recover what precedes a corruption instead of refusing to start.
    pub repair: bool,
    pub auto_compaction: AutoCompaction,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    // `cause` rather than `source`: the message already says it, and a
    // source would be printed a second time as "Caused by".
    #[error("cannot use the data directory {path}: {cause}. Choose another with --data-dir")]
    DataDir {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
    #[error("cannot start the write-ahead log: {0}")]
    Log(std::io::Error),
}

pub struct EmbeddedBackend {
    store: Arc<Store>,
    wal: Arc<Wal>,
    compactor: Arc<Compactor>,
    started: Instant,
    /// Held while the log is in use: no other process may touch the
    /// directory meanwhile.
    _lock: DirLock,
}

impl EmbeddedBackend {
    /// Locks the data directory, replays its log and starts journaling.
    /// Nothing in the directory is read or changed before the lock is
    /// held (src/dir_lock.rs).
    pub fn open(options: &EmbeddedOptions) -> Result<(EmbeddedBackend, RecoveryReport), OpenError> {
        let dir = &options.data_dir;
        let dir_error = |cause| OpenError::DataDir {
            path: dir.clone(),
            cause,
        };
        std::fs::create_dir_all(dir).map_err(dir_error)?;
        let lock = DirLock::acquire(dir)?;
        remove_leftover_rewrite(dir).map_err(dir_error)?;
        let path = dir.join(LOG_FILE);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            // Not in append mode: the writer writes at the records' end,
            // which may be before the file's (src/wal/writer.rs).
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(dir_error)?;

        let store = Arc::new(Store::new(options.store.clone()));
        let report = recovery::replay(&path, &file, &store, options.repair)?;
        return_freed_memory();
        let wal = Wal::start(&path, file, report.log_size, &options.wal).map_err(OpenError::Log)?;
        // Started now, while the OS gives threads: freeing a cleared
        // namespace later never needs a new one.
        Undo::start_reclaimer();
        store.attach_journal(Box::new(wal.clone()));
        // Limits may be lower than when the log was written.
        store.enforce_limits();
        let compactor = Compactor::new(wal.clone(), store.clone(), options.auto_compaction)
            .map_err(OpenError::Log)?;
        crate::store::spawn_expiry_cycle(&store);
        let db = EmbeddedBackend {
            store,
            wal,
            compactor,
            started: Instant::now(),
            _lock: lock,
        };
        Ok((db, report))
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Writes out and syncs what is buffered; later writes are refused.
    pub fn shutdown(&self) {
        self.wal.shutdown();
    }

    /// One op of a batch that is not atomic, without waiting for the log:
    /// its outcome and the position of its write, if it wrote.
    fn run_one(
        &self,
        namespace: Option<&str>,
        op: &BatchOp,
    ) -> Result<(Outcome, Option<Lsn>), StoreError> {
        let store = &self.store;
        let key = op.key.as_str();
        if op.condition.is_some() {
            let (mut outcomes, lsn) = store.transact(namespace, std::slice::from_ref(op))?;
            return Ok((outcomes.pop().expect("one op, one outcome"), lsn));
        }
        Ok(match &op.kind {
            OpKind::Get => {
                let mut value = Vec::new();
                match store.get_into(namespace, key, &mut value)? {
                    true => (
                        Outcome::Value(String::from_utf8(value).expect("values are UTF-8")),
                        None,
                    ),
                    false => (Outcome::Missing, None),
                }
            }
            OpKind::Set { value, ttl_secs } => {
                let lsn = store.set(namespace, key, value, deadline_in(*ttl_secs))?;
                (Outcome::Stored, Some(lsn))
            }
            OpKind::Delete => match store.delete(namespace, key)? {
                Some(lsn) => (Outcome::Deleted, Some(lsn)),
                None => (Outcome::Missing, None),
            },
            OpKind::Incr { by } => {
                let (sum, lsn) = store.incr(namespace, key, *by, None)?;
                (Outcome::Counted(sum), Some(lsn))
            }
        })
    }

    /// The durability of the write journaled as `lsn`: already there when
    /// its worker wrote it (src/wal/writer.rs, "Inline writes"), with no
    /// future to box and nothing to wake.
    fn commit(&self, lsn: Lsn) -> Commit {
        if self.wal.is_durable(lsn) {
            return Commit::done();
        }
        let durable = self.wal.wait(lsn);
        Commit::pending(async move { Ok(durable.await?) })
    }
}

/// A rewrite left by a crash mid-compaction is incomplete: the log it was
/// to replace is still whole.
fn remove_leftover_rewrite(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(dir.join(REWRITE_FILE)) {
        Ok(()) => {
            tracing::warn!("removed an unfinished compaction left by a crash");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Every operation completes at its first poll: the engine answers in
/// place, and only a write's durability waits (for the log's writer).
impl KvBackend for EmbeddedBackend {
    async fn set(
        &self,
        namespace: Option<&str>,
        key: &str,
        value: &str,
        ttl_secs: Option<u64>,
    ) -> Result<Commit, BackendError> {
        let expires_at = deadline_in(ttl_secs);
        let lsn = self.store.set(namespace, key, value, expires_at)?;
        Ok(self.commit(lsn))
    }

    async fn incr(
        &self,
        namespace: Option<&str>,
        key: &str,
        by: i64,
        ttl_secs: Option<u64>,
    ) -> Result<(i64, Commit), BackendError> {
        let expires_at = deadline_in(ttl_secs);
        let (sum, lsn) = self.store.incr(namespace, key, by, expires_at)?;
        Ok((sum, self.commit(lsn)))
    }

    async fn set_if(
        &self,
        namespace: Option<&str>,
        key: &str,
        value: &str,
        ttl_secs: Option<u64>,
        condition: Condition,
    ) -> Result<Commit, BackendError> {
        let expires_at = deadline_in(ttl_secs);
        let lsn = (self.store).set_if(namespace, key, value, expires_at, condition)?;
        Ok(self.commit(lsn))
    }

    async fn delete_if(
        &self,
        namespace: Option<&str>,
        key: &str,
        condition: Condition,
    ) -> Result<Option<Commit>, BackendError> {
        let lsn = self.store.delete_if(namespace, key, condition)?;
        Ok(lsn.map(|lsn| self.commit(lsn)))
    }

    async fn ttl_ms(
        &self,
        namespace: Option<&str>,
        key: &str,
    ) -> Result<Option<Option<u64>>, BackendError> {
        Ok(self.store.ttl_ms(namespace, key)?)
    }

    async fn expire(
        &self,
        namespace: Option<&str>,
        key: &str,
        ttl_secs: Option<u64>,
    ) -> Result<Option<Commit>, BackendError> {
        let expires_at = deadline_in(ttl_secs);
        let lsn = self.store.expire(namespace, key, expires_at)?;
        Ok(lsn.map(|lsn| self.commit(lsn)))
    }

    async fn get_into(
        &self,
        namespace: Option<&str>,
        key: &str,
        out: &mut Vec<u8>,
    ) -> Result<bool, BackendError> {
        Ok(self.store.get_into(namespace, key, out)?)
    }

    async fn delete(
        &self,
        namespace: Option<&str>,
        key: &str,
    ) -> Result<Option<Commit>, BackendError> {
        Ok(self
            .store
            .delete(namespace, key)?
            .map(|lsn| self.commit(lsn)))
    }

    /// The fast path of bulk loads and multi-gets: each op as its single
    /// operation runs (one with a condition as a transaction of one), and
    /// then one wait for the log for all of the batch's writes.
    async fn batch(
        &self,
        namespace: Option<&str>,
        ops: &[BatchOp],
    ) -> Result<Vec<Result<Outcome, BackendError>>, BackendError> {
        namespace.map_or(Ok(()), validate_namespace)?;
        let mut outcomes = Vec::with_capacity(ops.len());
        let mut written: Vec<(usize, Lsn)> = Vec::new();
        let mut index = 0;
        while index < ops.len() {
            // A run of plain gets is looked up in one go.
            let gets = (ops[index..].iter())
                .take_while(|op| op.kind == OpKind::Get && op.condition.is_none())
                .count();
            if gets > 0 {
                let keys: Vec<&str> = (ops[index..index + gets].iter())
                    .map(|op| op.key.as_str())
                    .collect();
                self.store.get_each(namespace, &keys, |_, value| {
                    outcomes.push(Ok(match value {
                        Some(value) => Outcome::Value(value.to_owned()),
                        None => Outcome::Missing,
                    }));
                })?;
                index += gets;
                continue;
            }
            let op = &ops[index];
            match self.run_one(namespace, op) {
                Ok((outcome, lsn)) => {
                    written.extend(lsn.map(|lsn| (index, lsn)));
                    outcomes.push(Ok(outcome));
                }
                Err(error) => outcomes.push(Err(alone(error).into())),
            }
            index += 1;
        }
        if !written.is_empty() {
            let lsns = written.iter().map(|(_, lsn)| *lsn).collect();
            let fates = self.wal.wait_all(lsns).await;
            for ((index, _), fate) in written.into_iter().zip(fates) {
                if let Err(error) = fate {
                    outcomes[index] = Err(error.into());
                }
            }
        }
        Ok(outcomes)
    }

    async fn transact(
        &self,
        namespace: Option<&str>,
        ops: &[BatchOp],
    ) -> Result<Vec<Outcome>, BackendError> {
        let (outcomes, lsn) = self.store.transact(namespace, ops)?;
        if let Some(lsn) = lsn {
            self.commit(lsn).durable().await?;
        }
        Ok(outcomes)
    }

    async fn clear_namespace(&self, namespace: &str) -> Result<(usize, Commit), BackendError> {
        let (deleted, lsn) = self.store.clear_namespace(namespace)?;
        let commit = lsn.map_or_else(Commit::done, |lsn| self.commit(lsn));
        Ok((deleted, commit))
    }

    async fn namespace_stats(
        &self,
        namespace: Option<&str>,
    ) -> Result<NamespaceStats, BackendError> {
        Ok(self.store.namespace_stats(namespace)?)
    }

    async fn list_keys(
        &self,
        namespace: Option<&str>,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<KeyPage, BackendError> {
        Ok(self.store.list_keys(namespace, prefix, cursor, limit)?)
    }

    async fn export_page(
        &self,
        namespace: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<RecordPage, BackendError> {
        Ok(self.store.export_page(namespace, cursor, limit)?)
    }

    /// The log is written in order, so the last record's durability covers
    /// every record before it: one wait for the whole run.
    async fn import_records(&self, namespace: Option<&str>, records: &[Record]) -> Imported {
        let now = now_ms();
        let (mut stored, mut last) = (0, None);
        let mut refused = None;
        let mut applied = 0;
        for record in records {
            if !record.is_expired(now) {
                let key = &record.key;
                match (self.store).set(namespace, key, &record.value, record.expires_at) {
                    Ok(lsn) => (stored, last) = (stored + 1, Some(lsn)),
                    Err(error) => {
                        refused = Some(error.into());
                        break;
                    }
                }
            }
            applied += 1;
        }
        Imported {
            applied,
            stored,
            commit: last.map_or_else(Commit::done, |lsn| self.commit(lsn)),
            refused,
        }
    }

    async fn stats(&self) -> Result<BackendStats, BackendError> {
        let (records_inline, records_by_writer) = self.wal.records_written();
        Ok(BackendStats {
            store: self.store.stats(),
            max_bytes: self.store.limits().global.max_bytes,
            max_keys: self.store.limits().global.max_keys,
            persistence: Some(PersistenceStats {
                log_size: self.wal.size(),
                last_compaction: self.compactor.last_compaction(),
                compactions: self.compactor.compactions(),
                log_syncs: self.wal.sync_stats(),
                records_inline,
                records_by_writer,
            }),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
        })
    }

    async fn scoped_stats(&self, names: &[String]) -> Result<BackendStats, BackendError> {
        let namespaces = self.store.named_stats(names.iter().map(String::as_str));
        Ok(BackendStats {
            store: StoreStats::over(namespaces),
            // A tenant sees nothing of the log: zeros, as ever.
            persistence: Some(PersistenceStats::default()),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            ..BackendStats::default()
        })
    }

    async fn quota(&self, namespace: Option<&str>) -> Result<QuotaReport, BackendError> {
        Ok(self.store.quota(namespace)?)
    }

    async fn set_quota(
        &self,
        namespace: Option<&str>,
        quota: Limit,
    ) -> Result<QuotaReport, BackendError> {
        Ok(self.store.set_quota(namespace, quota)?)
    }

    async fn compact(&self) -> Result<bool, BackendError> {
        Ok(self.compactor.start())
    }

    async fn watch(
        &self,
        namespace: Option<&str>,
        from: Option<&str>,
    ) -> Result<ChangeStream, BackendError> {
        Ok(ChangeStream::Local(self.store.watch(namespace, from)?))
    }

    async fn health(&self) -> Health {
        match self.wal.outage() {
            None => Health::Healthy,
            Some(cause) => Health::WritesRefused {
                detail: format!(
                    "the write-ahead log cannot be written ({cause}); writes are refused \
                     until it can"
                ),
            },
        }
    }
}

/// Hands back to the OS the memory replay allocated and freed (decoding
/// buffers, tables outgrown as they doubled, entries overwritten): mimalloc
/// keeps freed pages for a while in case they are wanted again, and right
/// after replay that reserve is most of what the process holds beyond its
/// data (measured: 1,000,000 keys, 103 MB resident without this, 91 MB
/// with the reserve returned at once). Once, at start: mimalloc's own
/// delayed purging covers the rest of the server's life. A no-op where
/// mimalloc is not the global allocator (the library's unit tests).
fn return_freed_memory() {
    // SAFETY: mi_collect takes no pointer and may be called at any time
    // from any thread; it only releases pages mimalloc holds free.
    unsafe { libmimalloc_sys::mi_collect(true) };
}
