//! Counters and TTLs: `POST /incr`, `GET /ttl/{key}`, `POST /expire`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of `POST /incr`. Other fields are ignored, as on `POST /set`
/// (and in the seed's server).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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

/// The answer of `GET /ttl/{key}` and `POST /expire`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TtlAnswer {
    pub key: String,
    /// null for the default namespace.
    pub namespace: Option<String>,
    /// Whole seconds left, rounded up (a live key never shows 0); null for
    /// a key that never expires.
    pub ttl: Option<u64>,
}

/// The body of `POST /expire`; other fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExpireBody {
    #[schema(min_length = 1)]
    pub key: String,
    /// Seconds from now, 1 to 3153600000; null: the key never expires.
    /// Required: a body without it is refused.
    #[schema(minimum = 1, maximum = 3_153_600_000_u64, required = true)]
    pub ttl: Option<u64>,
}
