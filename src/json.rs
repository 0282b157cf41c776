//! Small serde helpers shared by the request parser and the log reader.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// Deserializes a field as raw JSON, giving `Some` even for an explicit
/// `null`, so that a missing field and a `null` one can be told apart
/// (use with `#[serde(default)]`).
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}
