//! Batches and transactions: `POST /batch`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// The body of `POST /batch`.
// The client sends this; the server reads it by hand (`http/ops/batch.rs`),
// to name the op and the field at fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchBody<'a> {
    /// At most 1000 ops, run in order.
    #[schema(max_items = 1000)]
    pub ops: Vec<BatchOpBody<'a>>,
    /// true: a transaction, every op applied or none (with `if_match` and
    /// `if_absent` checked first); false or absent: each op on its own.
    #[serde(default)]
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_match: Option<Cow<'a, str>>,
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_match: Option<Cow<'a, str>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_absent: Option<bool>,
    },
    Delete {
        #[schema(min_length = 1)]
        key: Cow<'a, str>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_match: Option<Cow<'a, str>>,
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_match: Option<Cow<'a, str>>,
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

impl BatchResult {
    /// The value as JSON, for a client that wants to look into it.
    pub fn json_value(&self) -> Option<Value> {
        let raw = self.value.as_ref()?;
        serde_json::from_str(raw.get()).ok()
    }
}
