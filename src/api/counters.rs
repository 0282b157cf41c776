//! Counters: `POST /incr`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of `POST /incr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrBody {
    /// Non-empty, at most `--max-key-bytes` bytes of UTF-8.
    #[schema(min_length = 1)]
    pub key: String,
    /// What to add: a 64-bit signed integer, negative to subtract; 1 when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<i64>,
    /// Seconds until the counter expires, 1 to 3153600000; absent: the key
    /// keeps its TTL (a new key has none).
    #[schema(minimum = 1, maximum = 3_153_600_000_u64)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
}

/// The answer of `POST /incr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IncrAnswer {
    pub key: String,
    /// The counter after the increment.
    pub value: i64,
    /// null for the default namespace.
    pub namespace: Option<String>,
}
