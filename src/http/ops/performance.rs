//! `GET /performance`: request counts, error rate and latencies since the
//! start, as in the Python PyKV; admin tokens only.

use hyper::Method;

use super::{Documented, Needs, Operation, documented};
use crate::auth::Grants;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::performance::performance;
use crate::http::reply::{self, Response};
use crate::http::request::Request;

pub struct Performance;

impl Operation for Performance {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/performance"];

    fn parse(_request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(Performance)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Admin("/performance")
    }

    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        Ok(reply::json(&performance(&ctx.observer)))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

#[utoipa::path(
    get, path = "/performance", tag = "operability", impl_for = Performance,
    responses((status = 200, description = "Request counts, error rate and latencies since the start", body = crate::api::Performance))
)]
#[allow(dead_code)]
fn document() {}
