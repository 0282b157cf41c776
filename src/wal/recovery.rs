//! Replaying the log at start.
//!
//! - A torn last record (a crash in the middle of a write) is dropped with
//!   a warning, and the file is cut back to the last whole record.
//! - A bad record before the tail is corruption: the start stops with an
//!   error naming the file, the line and the byte offset, unless repair is
//!   asked for, which keeps a copy of the damaged file and recovers
//!   everything before the damage.
//! - SETs whose deadline has passed are skipped.
//! - A transaction's record (src/wal/record.rs) is one line: applied
//!   whole, or, torn, dropped whole like any torn last record.
//! - Zeros after the last record are space the writer filled ahead of its
//!   records (under `--fsync always`, src/wal/writer.rs), not data: they
//!   are cut off. A JSON line never holds a zero byte.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;

use super::record::Record;
use crate::store::{Mutation, ReplayedWrite, Store, now_ms};

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(
        "the log {path} is corrupt at line {line} (byte offset {offset}): {reason}. \
         Start with --repair-log to keep a copy of the damaged file and recover every \
         record before line {line}"
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        offset: u64,
        reason: String,
    },
    #[error("cannot read or repair the log {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Records applied to the store.
    pub applied: usize,
    /// SETs skipped because their deadline had passed.
    pub expired: usize,
    /// Bytes of a torn last record cut off the end.
    pub torn_bytes: u64,
    /// With repair: where the damaged file was copied, and the bytes lost.
    pub repaired: Option<(PathBuf, u64)>,
    /// Size of the log once recovered.
    pub log_size: u64,
}

/// Replays the log at `path` (opened as `file`) into `store`.
pub fn replay(
    path: &Path,
    file: &File,
    store: &Store,
    repair: bool,
) -> Result<RecoveryReport, RecoveryError> {
    let io = |cause| RecoveryError::Io {
        path: path.to_owned(),
        cause,
    };
    // Mapped rather than read: the log can be far larger than what it
    // holds live, and mapped pages leave the process's memory when it ends.
    let map = map_log(file).map_err(io)?;
    let whole: &[u8] = map.as_deref().unwrap_or_default();
    let data = without_zero_tail(whole);
    let (records_end, zero_tail) = (data.len() as u64, whole.len() > data.len());
    let scan = scan(path, data, store, repair)?;
    drop(map);
    if let Some(offset) = scan.cut_at {
        file.set_len(offset).map_err(io)?;
    } else if zero_tail {
        file.set_len(records_end).map_err(io)?;
    }
    if scan.needs_newline {
        // A whole last record without its newline: add it, or the next
        // record would be glued to it.
        file.write_all_at(b"\n", records_end).map_err(io)?;
    }
    Ok(scan.report)
}

/// The log without the zeros that follow its last record.
fn without_zero_tail(data: &[u8]) -> &[u8] {
    let end = data
        .iter()
        .rposition(|&b| b != 0)
        .map_or(0, |last| last + 1);
    &data[..end]
}

/// What a scan of the log found.
struct Scan {
    report: RecoveryReport,
    /// Where to cut the file back (a torn tail, or a repair).
    cut_at: Option<u64>,
    needs_newline: bool,
}

/// The log's bytes, mapped; `None` for an empty file, which cannot be.
fn map_log(file: &File) -> std::io::Result<Option<memmap2::Mmap>> {
    if file.metadata()?.len() == 0 {
        return Ok(None);
    }
    // SAFETY: the file is the server's own log in its data directory, not
    // written by anyone while it is replayed (the writer starts after).
    unsafe { memmap2::Mmap::map(file) }.map(Some)
}

fn scan(path: &Path, data: &[u8], store: &Store, repair: bool) -> Result<Scan, RecoveryError> {
    let now = now_ms();
    let mut report = RecoveryReport::default();
    // Decoding and applying overlap: a second thread decodes lines into
    // batches, each with its plan, while this one applies them in order.
    let stopped_at = std::thread::scope(|scope| {
        let (batches, decoded) = std::sync::mpsc::sync_channel(2);
        scope.spawn(|| decode_lines(data, store, now, batches));
        for batch in decoded {
            if let Some(bad) = apply_batch(store, batch, now, &mut report) {
                return Some(bad);
            }
        }
        None
    });
    let Some((number, offset, end, reason)) = stopped_at else {
        report.log_size = data.len() as u64;
        let needs_newline = data.last().is_some_and(|&b| b != b'\n');
        report.log_size += u64::from(needs_newline);
        return Ok(Scan {
            report,
            cut_at: None,
            needs_newline,
        });
    };
    let offset = offset as u64;
    let lost = data.len() as u64 - offset;
    if data[end..].trim_ascii().is_empty() {
        tracing::warn!(path = %path.display(), line = number, offset, %reason,
            "dropping a torn last record (a crash in the middle of a write)");
        report.torn_bytes = lost;
    } else if repair {
        let copy = keep_damaged_copy(path, data).map_err(|cause| RecoveryError::Io {
            path: path.to_owned(),
            cause,
        })?;
        tracing::warn!(path = %path.display(), line = number, offset, %reason,
            copy = %copy.display(), lost_bytes = lost,
            "repairing the log: kept a copy, recovered every record before the damage");
        report.repaired = Some((copy, lost));
    } else {
        return Err(RecoveryError::Corrupt {
            path: path.to_owned(),
            line: number,
            offset,
            reason,
        });
    }
    report.log_size = offset;
    Ok(Scan {
        report,
        cut_at: Some(offset),
        needs_newline: false,
    })
}

/// Applies a batch by its plan; stops at its bad line, if it has one,
/// returning its number, offset, end and why it is bad.
fn apply_batch<'a>(
    store: &Store,
    batch: Batch<'a>,
    now: u64,
    report: &mut RecoveryReport,
) -> Option<(usize, usize, usize, String)> {
    // Every write of the batch comes before its bad line, if any.
    report.applied += batch.counted.applied;
    report.expired += batch.counted.expired;
    for step in batch.steps {
        match step {
            Step::Writes(namespace, writes) => {
                let writes = writes.into_iter().map(|(_, write)| write);
                store.apply_replayed(namespace, writes, now);
            }
            Step::Alone(line) => match &line.record {
                Ok(record) => apply(store, record, now, report),
                Err(reason) => {
                    return Some((line.number, line.offset, line.end, reason.clone()));
                }
            },
        }
    }
    None
}

/// Applies one record (a clear, a transaction, or a write planned alone).
/// A transaction's records are applied one after the other: nothing reads
/// the store during replay, and the record was whole, so all of them are.
fn apply(store: &Store, record: &Record<'_>, now: u64, report: &mut RecoveryReport) {
    if let Some(parts) = record.transaction() {
        for part in parts {
            apply(store, part, now, report);
        }
        return;
    }
    let mutation = replayed(record.mutation(), now, report);
    store
        .apply(&mutation, false)
        .expect("replay does not journal");
}

/// The mutation replay applies for a record's, counted in `report`: a SET
/// whose deadline has passed is applied as a delete, since it must still
/// erase an older value.
fn replayed<'m>(mutation: Mutation<'m>, now: u64, report: &mut RecoveryReport) -> Mutation<'m> {
    match mutation {
        Mutation::Set {
            namespace,
            key,
            expires_at: Some(at),
            ..
        } if at <= now => {
            report.expired += 1;
            Mutation::Delete { namespace, key }
        }
        mutation => {
            report.applied += 1;
            mutation
        }
    }
}

/// A decoded line of the log, or why it could not be decoded.
struct ParsedLine<'a> {
    number: usize,
    offset: usize,
    /// Offset just past the line and its newline.
    end: usize,
    record: Result<Record<'a>, String>,
}

/// Lines decoded together, in the order to apply them.
struct Batch<'a> {
    steps: Vec<Step<'a>>,
    /// The batch's writes, counted as replay reports them.
    counted: RecoveryReport,
}

/// One step of a batch's plan.
enum Step<'a> {
    /// Sets and deletes of one namespace, ordered by shard and, within a
    /// shard, by their place in the log (the shard is the number beside).
    Writes(Option<&'a str>, Vec<(u8, ReplayedWrite<'a>)>),
    /// A line applied on its own: a clear, a transaction, a write whose
    /// key or namespace holds an escape, or the bad line that ends the log.
    Alone(ParsedLine<'a>),
}

/// Lines per batch. Why this many: the writes of a batch are applied a
/// shard at a time, so a shard's run is about `BATCH / (namespaces × 16)`
/// writes long; more would hold more entries in flight.
const BATCH: usize = 32_768;

/// Decodes every non-blank line, sending them in batches in the order to
/// apply them; stops at the first bad line (sent last) or when the
/// receiver has gone. A write's entry is built here (`ReplayedWrite`),
/// while its line is in this core's cache.
///
/// The order: writes reorder freely across namespaces and, within a
/// namespace, across shards, since no two of them touch the same key;
/// within a shard they keep the log's order. A clear or a transaction is a
/// barrier: the writes before it are applied before it. So the batch's
/// writes are gathered per namespace, each namespace's sorted by shard,
/// until a barrier or the batch's end; then the barrier follows.
fn decode_lines<'a>(data: &'a [u8], store: &Store, now: u64, batches: SyncSender<Batch<'a>>) {
    let mut lines = Lines::new(data);
    let mut planner = Planner::default();
    let mut batch = Batch::new();
    let mut decoded = 0;
    while let Some((number, offset, line)) = lines.next() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        decoded += 1;
        let record = Record::decode(line);
        let bad = record.is_err();
        match record.as_ref().ok().and_then(Record::plain_write) {
            Some(mutation) => {
                let (Mutation::Set { namespace, .. } | Mutation::Delete { namespace, .. }) =
                    mutation
                else {
                    unreachable!("a plain write is a set or a delete")
                };
                let mutation = replayed(mutation, now, &mut batch.counted);
                let write = ReplayedWrite::new(&mutation, now);
                let shard = store.shard_of(write.key());
                planner.add(namespace, shard, write);
            }
            None => {
                planner.flush(&mut batch);
                batch.steps.push(Step::Alone(ParsedLine {
                    number,
                    offset,
                    end: lines.pos.min(data.len()),
                    record,
                }));
            }
        }
        if bad || decoded == BATCH {
            planner.flush(&mut batch);
            decoded = 0;
            if batches
                .send(std::mem::replace(&mut batch, Batch::new()))
                .is_err()
                || bad
            {
                return;
            }
        }
    }
    planner.flush(&mut batch);
    let _ = batches.send(batch);
}

impl Batch<'_> {
    fn new() -> Self {
        Batch {
            steps: Vec::new(),
            counted: RecoveryReport::default(),
        }
    }
}

/// The writes gathered since the last barrier, per namespace.
#[derive(Default)]
struct Planner<'a> {
    groups: hashbrown::HashMap<Option<&'a str>, Vec<(u8, ReplayedWrite<'a>)>>,
}

impl<'a> Planner<'a> {
    fn add(&mut self, namespace: Option<&'a str>, shard: usize, write: ReplayedWrite<'a>) {
        let shard = u8::try_from(shard).expect("fewer than 256 shards");
        self.groups
            .entry(namespace)
            .or_default()
            .push((shard, write));
    }

    /// Plans the writes gathered: a step per namespace.
    fn flush(&mut self, batch: &mut Batch<'a>) {
        for (namespace, mut writes) in self.groups.drain() {
            // Stable: within a shard, the log's order.
            writes.sort_by_key(|&(shard, _)| shard);
            batch.steps.push(Step::Writes(namespace, writes));
        }
    }
}

fn keep_damaged_copy(path: &Path, data: &[u8]) -> std::io::Result<PathBuf> {
    let copy = path.with_extension(format!("log.damaged-{}", now_ms()));
    std::fs::write(&copy, data)?;
    Ok(copy)
}

/// Lines of the log with their 1-based numbers and byte offsets.
struct Lines<'a> {
    data: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    fn new(data: &'a [u8]) -> Self {
        Lines {
            data,
            pos: 0,
            line: 0,
        }
    }

    fn next(&mut self) -> Option<(usize, usize, &'a [u8])> {
        if self.pos >= self.data.len() {
            return None;
        }
        let start = self.pos;
        let end = memchr::memchr(b'\n', &self.data[start..]).map_or(self.data.len(), |i| start + i);
        self.pos = end + 1;
        self.line += 1;
        Some((self.line, start, &self.data[start..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log mixing planned writes with barriers (a clear, a transaction),
    /// writes applied alone (an escaped key), deletes and an expired SET,
    /// over more lines than a batch: replayed, the store holds what
    /// applying its records one by one, in the log's order, gives.
    #[test]
    fn replays_as_one_record_at_a_time() {
        let mut log = String::new();
        let mut line = |text: String| {
            log.push_str(&text);
            log.push('\n');
        };
        let later = now_ms() + 3_600_000;
        for i in 0..BATCH + 5_000 {
            let (ns, key) = (format!("n{}", i % 3), format!("k{}", i % 2_000));
            line(match i % 1_000 {
                7 => format!(r#"{{"action":"DEL","key":"{key}","namespace":"{ns}"}}"#),
                500 => r#"{"action":"CLEAR","namespace":"n1"}"#.to_owned(),
                600 => format!(
                    r#"{{"action":"TX","namespace":"{ns}","ops":[{{"action":"SET","key":"{key}","value":"tx","namespace":"{ns}"}},{{"action":"DEL","key":"k1","namespace":"{ns}"}}]}}"#
                ),
                700 => {
                    format!(r#"{{"action":"SET","key":"e\"{i}","value":{i},"namespace":"{ns}"}}"#)
                }
                800 => format!(
                    r#"{{"action":"SET","key":"{key}","value":"gone","namespace":"{ns}","expires_at":1}}"#
                ),
                _ => format!(
                    r#"{{"timestamp":1.5,"action":"SET","key":"{key}","value":"{i}","namespace":"{ns}","ttl":null,"expires_at":{later}}}"#
                ),
            });
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.log");
        std::fs::write(&path, &log).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let replayed = Store::in_memory();
        let report = replay(&path, &file, &replayed, false).unwrap();

        let expected = Store::in_memory();
        let mut counted = RecoveryReport::default();
        for text in log.lines() {
            let record = Record::decode(text.as_bytes()).unwrap();
            apply(&expected, &record, now_ms(), &mut counted);
        }
        assert_eq!(
            (report.applied, report.expired),
            (counted.applied, counted.expired)
        );
        assert!(report.expired > 0);
        assert_eq!(replayed.stats().total_keys, expected.stats().total_keys);
        assert_eq!(replayed.stats().used_bytes, expected.stats().used_bytes);
        let mut held: Vec<(Option<String>, String, String, Option<u64>)> = Vec::new();
        expected.visit_live(|visit| {
            if let crate::store::Visit::Entry(Mutation::Set {
                namespace,
                key,
                value,
                expires_at,
            }) = visit
            {
                held.push((
                    namespace.map(str::to_string),
                    key.to_string(),
                    value.to_string(),
                    *expires_at,
                ));
            }
        });
        assert!(held.len() > 1_000);
        for (namespace, key, value, _) in &held {
            let found = replayed.get(namespace.as_deref(), key).unwrap();
            assert_eq!(
                found.as_deref(),
                Some(value.as_str()),
                "{namespace:?} {key}"
            );
        }
    }
}
