//! `GET /openapi.json`: the OpenAPI document ([`crate::http::openapi`]).

use hyper::Method;

use super::{Documented, Needs, Operation, documented};
use crate::auth::Grants;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::openapi::document;
use crate::http::reply::{self, Response};
use crate::http::request::Request;

pub struct OpenApiDocument;

impl Operation for OpenApiDocument {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/openapi.json"];
    const PUBLIC: bool = true;

    fn parse(_request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(OpenApiDocument)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Nothing
    }

    async fn apply(self, _ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        Ok(reply::json(&document()))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

#[utoipa::path(
    get, path = "/openapi.json", tag = "operability", impl_for = OpenApiDocument,
    responses((status = 200, description = "This document", body = Object, content_type = "application/json"))
)]
#[allow(dead_code)]
fn describe() {}
