//! `GET /health?ns=`: liveness, and a store's size.
//!
//! Liveness needs no token; a namespace's size does. A server that refuses
//! writes (its log cannot be written) answers 503 before anything else, so
//! that a load balancer takes it out whatever it asks.

use hyper::StatusCode;
use hyper::header::{HeaderValue, RETRY_AFTER};

use hyper::Method;

use super::{Documented, Needs, Operation, documented};
use crate::api;
use crate::auth::{Access, Grants};
use crate::backend::Health as BackendHealth;
use crate::backend::KvBackend;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::error::LOG_RETRY_AFTER_SECS;
use crate::http::reply::{self, Response};
use crate::http::request::Request;
use crate::http::views::visible_stats;

pub struct Health {
    namespace: Option<String>,
}

impl Operation for Health {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/health"];
    const PUBLIC: bool = true;

    fn parse(request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(Health {
            namespace: request.namespace()?,
        })
    }

    fn needs(&self) -> Needs<'_> {
        match &self.namespace {
            Some(ns) => Needs::Namespace(Some(ns), Access::Read),
            None => Needs::Nothing,
        }
    }

    /// Without `?ns=`, the size is what the caller may see: 0 without a
    /// valid token.
    async fn apply(self, ctx: &HandlerContext, caller: &Grants) -> Result<Response, ApiError> {
        if let BackendHealth::WritesRefused { detail } = ctx.backend.health().await {
            return Ok(unhealthy(detail));
        }
        let store_size = match &self.namespace {
            Some(ns) => ctx.backend.namespace_stats(Some(ns)).await?.total_keys,
            None => visible_stats(ctx, caller).await?.store.total_keys,
        };
        Ok(reply::json(&api::HealthAnswer {
            namespace: self.namespace,
            status: api::HealthStatus::Healthy,
            store_size,
        }))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

/// The answer while writes are refused: 503, with when to ask again.
fn unhealthy(detail: String) -> Response {
    let mut response = reply::json(&api::UnhealthyAnswer {
        detail,
        status: api::UnhealthyStatus::Unhealthy,
    });
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    (response.headers_mut()).insert(RETRY_AFTER, HeaderValue::from(LOG_RETRY_AFTER_SECS));
    response
}

#[utoipa::path(
    get, path = "/health", tag = "server", impl_for = Health,
    params(("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace (1 to 64 of A-Z a-z 0-9 _ . -); absent: the default namespace")),
    responses(
        (status = 200, description = "The server answers", body = api::HealthAnswer),
        (status = 422, description = "An invalid namespace name", body = api::ErrorBody),
        (status = 503, description = "The write-ahead log cannot be written, so writes are refused; see the Retry-After header", body = api::UnhealthyAnswer),
    )
)]
#[allow(dead_code)]
fn document() {}
