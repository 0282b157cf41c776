//! Keys: `POST /set`, `GET /get/{key}`, `DELETE /delete/{key}`, `GET /keys`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::status;

status!(SetStatus { Success = "success" });
status!(DeleteStatus { Deleted = "deleted" });

/// The body of `POST /set`.
// The client sends this; the server reads it by hand (`http/ops/set.rs`),
// to name the field at fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SetBody<'a> {
    /// Non-empty, at most `--max-key-bytes` bytes of UTF-8.
    #[schema(min_length = 1)]
    pub key: Cow<'a, str>,
    /// Any JSON value; given back unchanged by `GET /get/{key}`.
    #[schema(value_type = Value)]
    pub value: Cow<'a, Value>,
    /// Seconds until the key expires, 1 to 3153600000; absent or null for
    /// a key that never expires.
    #[schema(minimum = 1, maximum = 3_153_600_000_u64)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
    /// Wins over `?ns=`; null or absent: the query's namespace, or the
    /// default one.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Cow<'a, str>>,
}

/// The answer of `POST /set`.
// Borrowed when the server encodes it, owned when the client decodes it
// (the `Cow`s are not `#[serde(borrow)]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SetAnswer<'a> {
    pub key: Cow<'a, str>,
    /// null for the default namespace.
    pub namespace: Option<Cow<'a, str>>,
    pub status: SetStatus,
}

/// The answer of `GET /get/{key}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GetAnswer {
    pub key: String,
    /// The stored JSON value, as it was set.
    pub value: Value,
    /// null for the default namespace.
    pub namespace: Option<String>,
}

impl GetAnswer {
    /// Appends to `out` the bytes that serializing a `GetAnswer` gives,
    /// with the value written by `write_value`, which appends a stored
    /// value's JSON text (and returns false when there is none: then `out`
    /// holds a partial answer, to be dropped). The value is copied once and
    /// never parsed, which serde could not do without parsing it into a
    /// `Value` or a validated `RawValue`.
    pub fn write<E>(
        out: &mut Vec<u8>,
        key: &str,
        namespace: Option<&str>,
        write_value: impl FnOnce(&mut Vec<u8>) -> Result<bool, E>,
    ) -> Result<bool, E> {
        Self::write_head(out, key);
        if !write_value(out)? {
            return Ok(false);
        }
        Self::write_tail(out, namespace);
        Ok(true)
    }

    /// What precedes the value in [`GetAnswer::write`]'s bytes: for a value
    /// that an `async` backend writes between the two halves.
    pub fn write_head(out: &mut Vec<u8>, key: &str) {
        out.extend_from_slice(b"{\"key\":");
        write_json(out, &key);
        out.extend_from_slice(b",\"value\":");
    }

    /// What follows the value in [`GetAnswer::write`]'s bytes.
    pub fn write_tail(out: &mut Vec<u8>, namespace: Option<&str>) {
        out.extend_from_slice(b",\"namespace\":");
        write_json(out, &namespace);
        out.push(b'}');
    }
}

fn write_json(out: &mut Vec<u8>, value: &impl Serialize) {
    serde_json::to_writer(out, value).expect("strings always serialize");
}

/// The answer of `DELETE /delete/{key}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DeleteAnswer {
    pub key: String,
    /// null for the default namespace.
    pub namespace: Option<String>,
    pub status: DeleteStatus,
}

/// A page of `GET /keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeysAnswer {
    /// The namespace listed; null for the default namespace.
    pub namespace: Option<String>,
    /// Keys in order.
    pub keys: Vec<String>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub cursor: Option<String>,
}
