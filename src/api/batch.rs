//! Batches and transactions: `POST /batch`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use utoipa::ToSchema;

fn write_json(out: &mut Vec<u8>, value: &impl Serialize) {
    serde_json::to_writer(out, value).expect("strings always serialize");
}

/// The body of `POST /batch`.
// The client sends this; the server reads it by hand (`http/ops/batch.rs`),
// to name the op and the field at fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchBody<'a> {
    /// At most 1000 ops, run in order.
    #[schema(max_items = 1000)]
    pub ops: Vec<BatchOpBody<'a>>,
    /// true: a transaction, every op applied or none (with `if_match` and
    /// `if_absent` checked first); false, null or absent: each op on its
    /// own.
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub atomic: bool,
    /// Wins over `?ns=`, as on `POST /set`; null or absent: the query's
    /// namespace, or the default one.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Cow<'a, str>>,
}

/// One op of a batch; `if_match` and `if_absent` may go on any op (on a
/// get, they check the key without changing it). Other fields are
/// refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum BatchOpBody<'a> {
    Get {
        #[schema(min_length = 1)]
        key: Cow<'a, str>,
        /// Apply only if the key's ETag is this one (quoted or not); `*`:
        /// only if the key exists.
        #[schema(pattern = r#"^(\*|[0-9A-Fa-f]{16}|"[0-9A-Fa-f]{16}")$"#)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_match: Option<Cow<'a, str>>,
        /// true: apply only if the key does not exist.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_absent: Option<bool>,
    },
    Set {
        #[schema(min_length = 1)]
        key: Cow<'a, str>,
        /// Any JSON value.
        #[schema(value_type = Value)]
        value: Cow<'a, Value>,
        /// Seconds, 1 to 3153600000; absent or null: never expires.
        #[schema(minimum = 1, maximum = 3_153_600_000_u64)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl: Option<u64>,
        /// Apply only if the key's ETag is this one (quoted or not); `*`:
        /// only if the key exists.
        #[schema(pattern = r#"^(\*|[0-9A-Fa-f]{16}|"[0-9A-Fa-f]{16}")$"#)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_match: Option<Cow<'a, str>>,
        /// true: apply only if the key does not exist.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_absent: Option<bool>,
    },
    Delete {
        #[schema(min_length = 1)]
        key: Cow<'a, str>,
        /// Apply only if the key's ETag is this one (quoted or not); `*`:
        /// only if the key exists.
        #[schema(pattern = r#"^(\*|[0-9A-Fa-f]{16}|"[0-9A-Fa-f]{16}")$"#)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_match: Option<Cow<'a, str>>,
        /// true: apply only if the key does not exist.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_absent: Option<bool>,
    },
    /// Keeps the key's TTL; a missing key counts from 0.
    Incr {
        #[schema(min_length = 1)]
        key: Cow<'a, str>,
        /// A 64-bit signed integer; 1 when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<i64>,
        /// Apply only if the key's ETag is this one (quoted or not); `*`:
        /// only if the key exists.
        #[schema(pattern = r#"^(\*|[0-9A-Fa-f]{16}|"[0-9A-Fa-f]{16}")$"#)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_match: Option<Cow<'a, str>>,
        /// true: apply only if the key does not exist.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_absent: Option<bool>,
    },
}

/// The answer of `POST /batch`: one result per op, in order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchAnswer {
    /// null for the default namespace.
    pub namespace: Option<String>,
    pub results: Vec<BatchResult>,
}

/// What one op of a batch gave.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResult {
    /// `get`, `set`, `delete` or `incr`.
    pub op: String,
    pub key: String,
    /// The HTTP status the op alone would have had: 200, 404 for a get or
    /// delete of a missing key, or its error's (409, 412, 422, 503, 507);
    /// in a transaction that was applied, only 200 and 404.
    pub status: u16,
    /// A get's value (any JSON), an incr's counter after it.
    #[schema(value_type = Option<Value>)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Box<RawValue>>,
    /// The key's ETag after the op (`"` + 16 hex digits + `"`, as
    /// `GET /get/{key}` answers it), for `if_match` later: on a get that
    /// found it, a set and an incr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// What went wrong (`Key not found` for a missing key), on a status
    /// other than 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl BatchAnswer {
    /// What precedes the results in the bytes serializing a `BatchAnswer`
    /// gives. The server writes its answer by hand, [`BatchResult::write`]
    /// after this and [`BatchAnswer::write_tail`] last, so that each
    /// stored value is copied into the body as the JSON text it is, never
    /// parsed again (serde could not without parsing it into a `Value` or
    /// a validated `RawValue`); the bytes are serde's, tested below.
    pub fn write_head(out: &mut Vec<u8>, namespace: Option<&str>) {
        out.extend_from_slice(b"{\"namespace\":");
        write_json(out, &namespace);
        out.extend_from_slice(b",\"results\":[");
    }

    pub fn write_tail(out: &mut Vec<u8>) {
        out.extend_from_slice(b"]}");
    }
}

/// One result as [`BatchResult::write`] takes it, borrowed.
pub struct ResultParts<'a> {
    pub op: &'a str,
    pub key: &'a str,
    pub status: u16,
    /// JSON text.
    pub value: Option<&'a str>,
    /// The tag, written as `GET /get/{key}`'s `ETag` is.
    pub etag: Option<u64>,
    pub detail: Option<&'a str>,
}

impl BatchResult {
    /// Appends the bytes of the result `parts` stands for (after a comma
    /// unless it is the `first`).
    pub fn write(out: &mut Vec<u8>, first: bool, parts: &ResultParts<'_>) {
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"op\":");
        write_json(out, &parts.op);
        out.extend_from_slice(b",\"key\":");
        write_json(out, &parts.key);
        out.extend_from_slice(b",\"status\":");
        out.extend_from_slice(itoa::Buffer::new().format(parts.status).as_bytes());
        if let Some(value) = parts.value {
            out.extend_from_slice(b",\"value\":");
            out.extend_from_slice(value.as_bytes());
        }
        if let Some(tag) = parts.etag {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b",\"etag\":\"\\\"");
            for shift in (0..16).rev() {
                out.push(HEX[((tag >> (shift * 4)) & 0xf) as usize]);
            }
            out.extend_from_slice(b"\\\"\"");
        }
        if let Some(detail) = parts.detail {
            out.extend_from_slice(b",\"detail\":");
            write_json(out, &detail);
        }
        out.push(b'}');
    }

    /// The value as JSON, for a client that wants to look into it.
    pub fn json_value(&self) -> Option<Value> {
        let raw = self.value.as_ref()?;
        serde_json::from_str(raw.get()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written bytes are serde's.
    #[test]
    fn written_answers_are_serdes_bytes() {
        let results = [
            ResultParts {
                op: "get",
                key: "k \"q\"\n\u{e9}",
                status: 200,
                value: Some(r#"{"a":[1,"x"]}"#),
                etag: Some(0x0123_4567_89ab_cdef),
                detail: None,
            },
            ResultParts {
                op: "delete",
                key: "gone",
                status: 404,
                value: None,
                etag: None,
                detail: Some("Key not found"),
            },
            ResultParts {
                op: "set",
                key: "s",
                status: 200,
                value: None,
                etag: Some(7),
                detail: None,
            },
        ];
        for namespace in [None, Some("app1")] {
            let mut written = Vec::new();
            BatchAnswer::write_head(&mut written, namespace);
            for (i, parts) in results.iter().enumerate() {
                BatchResult::write(&mut written, i == 0, parts);
            }
            BatchAnswer::write_tail(&mut written);
            let answer = BatchAnswer {
                namespace: namespace.map(str::to_owned),
                results: (results.iter())
                    .map(|p| BatchResult {
                        op: p.op.into(),
                        key: p.key.into(),
                        status: p.status,
                        value: p.value.map(|v| RawValue::from_string(v.into()).unwrap()),
                        etag: p.etag.map(|tag| format!("\"{tag:016x}\"")),
                        detail: p.detail.map(Into::into),
                    })
                    .collect(),
            };
            let serde = serde_json::to_vec(&answer).unwrap();
            assert_eq!(
                String::from_utf8(written).unwrap(),
                String::from_utf8(serde).unwrap()
            );
        }
    }
}
