//! Replaying the log at start.
//!
//! - A torn last record (a crash in the middle of a write) is dropped with
//!   a warning, and the file is cut back to the last whole record.
//! - A bad record before the tail is corruption: the start stops with an
//!   error naming the file, the line and the byte offset, unless repair is
//!   asked for, which keeps a copy of the damaged file and recovers
//!   everything before the damage.
//! - SETs whose deadline has passed are skipped.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

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
    let data = std::fs::read(path).map_err(io)?;
    let now = now_ms();
    let mut report = RecoveryReport::default();
    let mut lines = Lines::new(&data);
    while let Some((line_no, offset, line)) = lines.next() {
        if line.trim_ascii().is_empty() {
            continue;
        }
        let record = match Record::decode(line) {
            Ok(record) => record,
            Err(reason) if lines.rest_is_blank() => {
                tracing::warn!(path = %path.display(), line = line_no, offset, %reason,
                    "dropping a torn last record (a crash in the middle of a write)");
                report.torn_bytes = data.len() as u64 - offset as u64;
                file.set_len(offset as u64).map_err(io)?;
                report.log_size = offset as u64;
                return Ok(report);
            }
            Err(reason) if repair => {
                let copy = keep_damaged_copy(path, &data).map_err(io)?;
                let lost = data.len() as u64 - offset as u64;
                tracing::warn!(path = %path.display(), line = line_no, offset, %reason,
                    copy = %copy.display(), lost_bytes = lost,
                    "repairing the log: kept a copy, recovered every record before the damage");
                file.set_len(offset as u64).map_err(io)?;
                report.repaired = Some((copy, lost));
                report.log_size = offset as u64;
                return Ok(report);
            }
            Err(reason) => {
                return Err(RecoveryError::Corrupt {
                    path: path.to_owned(),
                    line: line_no,
                    offset: offset as u64,
                    reason,
                });
            }
        };
        let mutation = record.mutation();
        if let Mutation::Set {
            expires_at: Some(at),
            ..
        } = mutation
            && at <= now
        {
            // Still applied as a delete: it must erase an older value.
            let Mutation::Set { namespace, key, .. } = mutation else {
                unreachable!()
            };
            store
                .apply(&Mutation::Delete { namespace, key }, false)
                .expect("replay does not journal");
            report.expired += 1;
            continue;
        }
        store
            .apply(&mutation, false)
            .expect("replay does not journal");
        report.applied += 1;
    }
    report.log_size = data.len() as u64;
    // A whole last record without its newline: add it, or the next append
    // would be glued to it.
    if data.last().is_some_and(|&b| b != b'\n') {
        (&*file).write_all(b"\n").map_err(io)?;
        report.log_size += 1;
    }
    Ok(report)
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

    fn rest_is_blank(&self) -> bool {
        self.data
            .get(self.pos..)
            .is_none_or(|rest| rest.trim_ascii().is_empty())
    }
}
