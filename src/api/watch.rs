//! The change feed's event (`GET /watch`): the JSON of each server-sent
//! event's `data:` line. Its SSE `event:` field is the same as `op`, its
//! `id:` the event's id.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// One event of a namespace's change feed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WatchEvent {
    /// `set` (also increments and TTL changes), `delete`, `expire`,
    /// `evict`, `clear`; and the feed's own: `ready` (the feed is open)
    /// and `reset` (events were missed: re-read the namespace, then
    /// follow the feed).
    pub op: String,
    /// The key changed; absent for `clear`, `ready` and `reset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A `set`'s new value, its JSON text as stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub value: Option<Box<RawValue>>,
    /// A `set`'s deadline, milliseconds since the Unix epoch; `null` when
    /// the key never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Option<u64>>,
    /// The event's id (also its SSE `id:`): `EPOCH-SEQ`, growing within
    /// the namespace. Send the last one seen as `Last-Event-ID` to resume.
    pub id: String,
}
