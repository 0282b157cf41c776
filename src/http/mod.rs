//! The HTTP API: the seed's routes, wire-compatible with PyKV.
//!
//! - [`pipeline`]: the one way through the server; every request takes its
//!   stages (where it comes from, CORS, route, token, body, parse, admit,
//!   execute, observe, encode);
//! - [`ops`]: the operations, one file each (route, parsing, access,
//!   execution, answer, OpenAPI description), listed once;
//! - [`router`]: the table of route templates, built from that list;
//! - [`request`]: what an operation reads of its request (path parameters,
//!   query string); [`upload`]: a body read line by line as it arrives (an
//!   import); [`reply`]: the answers, whole or streamed (an export);
//! - [`error`]: the one place where errors become statuses and JSON;
//! - [`conditions`]: `ETag`, `If-Match` and `If-None-Match` (check-and-set);
//! - [`origin`]: the `Host` and `Origin` checks, first on every request
//!   (cross-site requests, DNS rebinding); [`cors`]: cross-origin
//!   requests, closed unless `--cors-origin` names origins. Tokens are
//!   [`crate::auth`]'s, rate limits [`crate::rate_limit`]'s;
//! - operability: [`observe`] (request counters, latency histograms, recent
//!   errors), [`metrics`] (the Prometheus text of `/metrics`),
//!   [`performance`] (the figures of `/performance`), [`openapi`] (the
//!   document of `/openapi.json`, from the types of [`crate::api`]);
//! - [`views`]: the server-wide figures, gathered off the request workers,
//!   and what of them each caller may see.

mod conditions;
mod cors;
mod error;
pub mod metrics;
pub mod observe;
pub mod openapi;
mod ops;
pub mod origin;
pub mod performance;
mod pipeline;
mod reply;
mod request;
mod router;
mod upload;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

pub use error::ApiError;
pub use observe::Observer;
pub use ops::MAX_TTL_SECS;
pub(crate) use ops::SetRequest;
pub use pipeline::{ConnectionService, ResponseFuture, Service};
pub use reply::{Body, Response};
pub use views::ServerViews;

use crate::auth::Authenticator;
use crate::backend::Backend;
use crate::rate_limit::RateLimits;

/// What every operation shares.
pub struct HandlerContext {
    pub backend: Arc<Backend>,
    pub max_body_bytes: usize,
    pub auth: Arc<Authenticator>,
    pub rate_limits: Arc<RateLimits>,
    /// Origins allowed to call from a browser (`--cors-origin`); none by
    /// default.
    pub cors_origins: Vec<String>,
    /// The `Host` and `Origin` checks run first on every request.
    pub sites: Arc<origin::SiteCheck>,
    /// How long the handling of a request may take, from its head to its
    /// answer, its body and the storage backend included
    /// (`--request-timeout`).
    pub request_timeout: Duration,
    /// The server-wide figures, shared by the requests that need them.
    pub views: Arc<ServerViews>,
    /// Namespaces given their own series in `/metrics`
    /// (`--metrics-namespace-limit`).
    pub metrics_namespace_limit: usize,
    /// The request counters of `/metrics` and `/performance`.
    pub observer: Arc<Observer>,
}

/// The server's service: every request through the one pipeline.
pub fn service(ctx: HandlerContext) -> Service {
    Service::new(ctx)
}

/// `(method, route template)` of every route the server answers, the
/// templates written as in OpenAPI (`{key}`, not the router's `{*key}`).
pub fn routes() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (_, method, paths) in ops::ROUTES {
        for path in *paths {
            out.push((method.to_string(), path.replace("{*", "{")));
        }
    }
    out
}
