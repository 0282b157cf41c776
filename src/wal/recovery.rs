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
use crate::store::{Mutation, Store, now_ms};

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
    // Parsing and applying overlap: a second thread decodes lines into
    // batches of records while this one applies them, in log order.
    let stopped_at = std::thread::scope(|scope| {
        let (batches, parsed) = std::sync::mpsc::sync_channel(4);
        scope.spawn(|| parse_lines(data, batches));
        for batch in parsed {
            for line in batch {
                let record = match line.record {
                    Ok(record) => record,
                    Err(reason) => return Some((line.number, line.offset, line.end, reason)),
                };
                apply(store, &record, now, &mut report);
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

/// Applies one record; a SET whose deadline has passed is applied as a
/// delete, since it must still erase an older value. A transaction's
/// records are applied one after the other: nothing reads the store
/// during replay, and the record was whole, so all of them are.
fn apply(store: &Store, record: &Record<'_>, now: u64, report: &mut RecoveryReport) {
    if let Some(parts) = record.transaction() {
        for part in parts {
            apply(store, part, now, report);
        }
        return;
    }
    let mutation = match record.mutation() {
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
    };
    store
        .apply(&mutation, false)
        .expect("replay does not journal");
}

/// A decoded line of the log, or why it could not be decoded.
struct ParsedLine<'a> {
    number: usize,
    offset: usize,
    /// Offset just past the line and its newline.
    end: usize,
    record: Result<Record<'a>, String>,
}

const BATCH: usize = 4096;

/// Decodes every non-blank line, sending them in batches; stops at the
/// first bad line (sent last) or when the receiver has gone.
fn parse_lines<'a>(data: &'a [u8], batches: SyncSender<Vec<ParsedLine<'a>>>) {
    let mut lines = Lines::new(data);
    let mut batch = Vec::with_capacity(BATCH);
    while let Some((number, offset, line)) = lines.next() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        let record = Record::decode(line);
        let bad = record.is_err();
        batch.push(ParsedLine {
            number,
            offset,
            end: lines.pos.min(data.len()),
            record,
        });
        if (bad || batch.len() == BATCH)
            && batches
                .send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                .is_err()
        {
            return;
        }
        if bad {
            return;
        }
    }
    let _ = batches.send(batch);
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
