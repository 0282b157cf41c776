//! `GET /metrics`: the Prometheus exposition ([`crate::http::metrics`]);
//! admin tokens only.

use hyper::Method;
use hyper::header::CONTENT_TYPE;

use super::{Documented, Needs, Operation, documented};
use crate::auth::Grants;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::metrics::{self, render};
use crate::http::reply::{self, Response};
use crate::http::request::Request;
use crate::http::views::off_worker;

pub struct Metrics;

impl Operation for Metrics {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/metrics"];

    fn parse(_request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(Metrics)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Admin("/metrics")
    }

    /// Rendered on the views thread: O(namespaces) up to the series cap.
    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let stats = ctx.views.stats().await?;
        let observer = ctx.observer.clone();
        let limit = ctx.metrics_namespace_limit;
        let text = off_worker("rendering /metrics", move || {
            render(&observer, &stats, limit)
        })
        .await?;
        Ok(reply::bytes(text, &[(CONTENT_TYPE, metrics::CONTENT_TYPE)]))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

#[utoipa::path(
    get, path = "/metrics", tag = "operability", impl_for = Metrics,
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain; version=0.0.4"))
)]
#[allow(dead_code)]
fn document() {}
