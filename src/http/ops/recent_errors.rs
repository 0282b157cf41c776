//! `GET /performance/recent-errors`: the last error answers, without what
//! the clients sent; admin tokens only.

use hyper::Method;

use super::{Documented, Needs, Operation, documented};
use crate::auth::Grants;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::performance::recent_errors;
use crate::http::reply::{self, Response};
use crate::http::request::Request;

pub struct RecentErrors;

impl Operation for RecentErrors {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/performance/recent-errors"];

    fn parse(_request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(RecentErrors)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Admin("/performance/recent-errors")
    }

    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        Ok(reply::json(&recent_errors(&ctx.observer)))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

#[utoipa::path(
    get, path = "/performance/recent-errors", tag = "operability", impl_for = RecentErrors,
    responses((status = 200, description = "The last answers with a status of 400 or more, oldest first (at most 100)", body = crate::api::RecentErrors))
)]
#[allow(dead_code)]
fn document() {}
