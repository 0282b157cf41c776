//! `POST /compact`: starts a rewrite of the log, as PyKV does.

use hyper::Method;

use super::{Documented, Needs, Operation, documented};
use crate::api;
use crate::auth::Grants;
use crate::backend::KvBackend;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;

pub struct Compact;

impl Operation for Compact {
    const METHOD: Method = Method::POST;
    const PATHS: &'static [&'static str] = &["/compact"];

    fn parse(_request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(Compact)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Admin("/compact")
    }

    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let status = if ctx.backend.compact().await? {
            api::CompactStatus::CompactionStarted
        } else {
            api::CompactStatus::CompactionAlreadyRunning
        };
        Ok(reply::json(&api::CompactAnswer { status }))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

#[utoipa::path(
    post, path = "/compact", tag = "server", impl_for = Compact,
    responses(
        (status = 200, description = "A rewrite of the log started, or one is running", body = api::CompactAnswer),
        (status = 501, description = "The storage backend keeps no log (`--backend memory`)", body = api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}
