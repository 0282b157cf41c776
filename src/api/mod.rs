//! The API's wire shapes: one type per request body and per answer.
//!
//! The server encodes its answers with these types, the OpenAPI document
//! (`/openapi.json`) is generated from them, and the Rust client
//! ([`crate::client`]) and the CLI decode with them, so a shape is written
//! down once. They know nothing of HTTP: serde and utoipa's `ToSchema` only.
//!
//! Field order is the order on the wire, and the seed's clients depend on
//! it: most answers list their fields alphabetically, as the server always
//! sent them; `GET /get/{key}`, `GET /keys` and `/quota` do not.
//!
//! Where the server answers from borrowed data on its busiest routes, a
//! type borrows too (`Cow` fields, owned when decoded), so that encoding
//! allocates nothing beyond the body. `GET /get/{key}` writes the stored
//! JSON text into its body without parsing it: [`GetAnswer::write`].
//!
//! Where the seed's Python server sends fewer fields (`/stats`), the
//! missing ones decode to their defaults, so the client reads both.

mod batch;
mod counters;
mod keys;
mod namespaces;
mod operability;
mod server;
#[cfg(test)]
mod tests;
mod transfer;
mod watch;

pub use batch::{BatchAnswer, BatchBody, BatchOpBody, BatchResult, ResultParts};
pub use counters::{ExpireBody, IncrAnswer, IncrBody, TtlAnswer};
pub use keys::{DeleteAnswer, DeleteStatus, GetAnswer, KeysAnswer, SetAnswer, SetBody, SetStatus};
pub use namespaces::{
    ClearAnswer, ClearStatus, NamespaceKeysAnswer, NamespacesAnswer, QuotaAnswer, QuotaBody,
};
pub use operability::{ErrorRecord, OperationFigures, Performance, RecentErrors};
pub use server::{
    CompactAnswer, CompactStatus, HealthAnswer, HealthStatus, NamespaceStats, StatsAnswer,
    UnhealthyAnswer, UnhealthyStatus,
};
pub use transfer::{ExportLine, ImportAnswer, MAX_EXPIRES_AT};
pub use watch::WatchEvent;

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody<'a> {
    /// What was wrong and, where it helps, what to do; `Key not found` for
    /// a missing key.
    pub detail: Cow<'a, str>,
}

/// A status word of an answer (`"status": "success"`): an enum whose
/// variants are written as their wire names, once, for serde, the schema
/// and [`Display`](std::fmt::Display).
macro_rules! status {
    // `tt`, not `literal`: utoipa does not read a `rename` whose value
    // comes as a `literal` fragment, and would name the variant instead.
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $wire:tt),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq,
            serde::Serialize, serde::Deserialize, utoipa::ToSchema,
        )]
        pub enum $name {
            $(#[serde(rename = $wire)] $variant),+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
use status;
