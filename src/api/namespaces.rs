//! Namespaces: `GET /namespaces`, `GET /namespaces/{ns}/keys`,
//! `DELETE /namespaces/{ns}`, `GET` and `PUT /quota`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::status;

status!(ClearStatus { Cleared = "cleared" });

/// The answer of `GET /namespaces`.
// The names are borrowed when the server encodes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamespacesAnswer<'a> {
    pub count: usize,
    /// Named namespaces holding at least one live key, sorted.
    pub namespaces: Vec<Cow<'a, str>>,
}

/// The answer of `GET /namespaces/{ns}/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamespaceKeysAnswer {
    pub namespace: String,
    pub total_keys: usize,
}

/// The answer of `DELETE /namespaces/{ns}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClearAnswer {
    pub keys_deleted: usize,
    pub namespace: String,
    pub status: ClearStatus,
}

/// The body of `PUT /quota`: `null` (or absent) for no limit.
// The server reads it by hand (`http::quota`), to name the field at fault
// and accept `1000.0` as JSON Schema does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuotaBody {
    /// Most keys the namespace may hold; null for no limit.
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    #[serde(default)]
    pub max_keys: Option<u64>,
    /// Most bytes the namespace may hold; null for no limit.
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

/// A namespace's quota and what it uses: the answer of `GET` and
/// `PUT /quota`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuotaAnswer {
    /// null for the default namespace.
    pub namespace: Option<String>,
    pub max_keys: Option<u64>,
    pub max_bytes: Option<u64>,
    pub used_keys: u64,
    pub used_bytes: u64,
}
