//! Moving a tenant: `GET /namespaces/{ns}/export` and
//! `POST /namespaces/{ns}/import`, whose bodies are NDJSON (one JSON
//! object per line, `application/x-ndjson`), each line an [`ExportLine`].

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// One key, as a line of an export and of an import. The namespace is not
/// in the line: it is the one in the route, so an export can be imported
/// under another name.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExportLine<'a> {
    /// Non-empty, at most `--max-key-bytes` bytes of UTF-8.
    #[serde(borrow)]
    #[schema(min_length = 1, value_type = String)]
    pub key: Cow<'a, str>,
    /// The stored JSON value, as it was set.
    #[serde(borrow)]
    #[schema(value_type = serde_json::Value)]
    pub value: &'a RawValue,
    /// When the key expires: an absolute time, seconds since the Unix
    /// epoch (milliseconds in the fraction); null or absent for a key that
    /// never expires. An import skips a line whose time has passed.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 99_999_999_999_u64)]
    pub expires_at: Option<f64>,
}

impl ExportLine<'_> {
    /// Appends one export line, newline included, for a stored value's
    /// JSON text `value` (written as it is, never parsed) and a deadline
    /// in milliseconds since the epoch. The same bytes as serializing an
    /// `ExportLine`, with the deadline's milliseconds exact.
    pub fn write(out: &mut Vec<u8>, key: &str, value: &str, expires_at_ms: Option<u64>) {
        out.extend_from_slice(b"{\"key\":");
        serde_json::to_writer(&mut *out, key).expect("strings always serialize");
        out.extend_from_slice(b",\"value\":");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b",\"expires_at\":");
        match expires_at_ms {
            Some(ms) => out.extend_from_slice(format!("{}.{:03}", ms / 1000, ms % 1000).as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"}\n");
    }

    /// The deadline in milliseconds since the epoch; `Err` names what is
    /// wrong with `expires_at`.
    pub fn expires_at_ms(&self) -> Result<Option<u64>, String> {
        match self.expires_at {
            None => Ok(None),
            Some(secs) if secs.is_finite() && (0.0..=MAX_EXPIRES_AT).contains(&secs) => {
                Ok(Some((secs * 1000.0).round() as u64))
            }
            Some(secs) => Err(format!(
                "field `expires_at`: must be seconds since the Unix epoch, from 0 to \
                 {MAX_EXPIRES_AT}, or null; got {secs}"
            )),
        }
    }
}

/// The latest `expires_at` an import takes: year 5138, far past any TTL a
/// server accepts, and small enough that milliseconds stay exact in a
/// double.
pub const MAX_EXPIRES_AT: f64 = 99_999_999_999.0;

/// The answer of `POST /namespaces/{ns}/import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportAnswer {
    pub namespace: String,
    /// Keys stored; lines whose `expires_at` had passed are not counted.
    pub imported: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_line_reads_back_the_same() {
        let mut out = Vec::new();
        ExportLine::write(&mut out, "k\"1", r#"{"a":[1,2]}"#, Some(1_764_500_000_123));
        ExportLine::write(&mut out, "k2", "\"v\"", None);
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        let first: ExportLine = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(first.key, "k\"1");
        assert_eq!(first.value.get(), r#"{"a":[1,2]}"#);
        assert_eq!(first.expires_at_ms(), Ok(Some(1_764_500_000_123)));
        let second: ExportLine = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(second.expires_at_ms(), Ok(None));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn bad_deadlines_are_named() {
        let line: ExportLine =
            serde_json::from_str(r#"{"key":"k","value":1,"expires_at":-1}"#).unwrap();
        assert!(line.expires_at_ms().unwrap_err().contains("`expires_at`"));
    }
}
