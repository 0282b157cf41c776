//! `GET /namespaces`: the named namespaces holding keys; a tenant sees
//! only its own.

use std::borrow::Cow;

use hyper::Method;

use super::{Documented, Needs, Operation, documented};
use crate::api;
use crate::auth::Grants;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;
use crate::http::views::{render_view, visible_stats};

pub struct Namespaces;

impl Operation for Namespaces {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/namespaces"];

    fn parse(_request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(Namespaces)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Caller
    }

    async fn apply(self, ctx: &HandlerContext, caller: &Grants) -> Result<Response, ApiError> {
        let stats = visible_stats(ctx, caller).await?;
        let shown = stats.clone();
        let render = move || {
            let names = &shown.store.namespaces;
            let answer = api::NamespacesAnswer {
                count: names.len(),
                namespaces: (names.keys())
                    .map(|name| Cow::Borrowed(name.as_str()))
                    .collect(),
            };
            serde_json::to_vec(&answer).expect("answers always serialize")
        };
        let body = render_view(&stats, "listing the namespaces", render).await?;
        Ok(reply::json_bytes(body))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

#[utoipa::path(
    get, path = "/namespaces", tag = "namespaces", impl_for = Namespaces,
    responses((status = 200, description = "Named namespaces holding keys", body = api::NamespacesAnswer))
)]
#[allow(dead_code)]
fn document() {}
