//! `GET /keys?ns=&prefix=&cursor=&limit=`: a namespace's keys, page by
//! page, in key order. Keys present for the whole listing appear exactly
//! once (the contract of [`KvBackend::list_keys`]).

use serde::Deserialize;

use hyper::Method;

use super::{Documented, Needs, Operation, documented};
use crate::api;
use crate::auth::{Access, Grants};
use crate::backend::KvBackend;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;
use crate::store::MAX_PAGE;

/// The query of a key listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Keys {
    /// Namespace to list; absent for the default namespace.
    #[param(pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64)]
    ns: Option<String>,
    /// Only keys starting with this.
    prefix: Option<String>,
    /// Where to start: the `cursor` of the previous page.
    cursor: Option<String>,
    /// Keys per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

impl Operation for Keys {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/keys"];

    fn parse(request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        let keys: Keys = request.query()?;
        if let Some(limit) = keys.limit.filter(|n| !(1..=MAX_PAGE).contains(n)) {
            return Err(ApiError::invalid_json_input(&limit.to_string(), |got| {
                format!("query `limit`: must be from 1 to {MAX_PAGE}, got {got}")
            }));
        }
        Ok(keys)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Namespace(self.ns.as_deref(), Access::Read)
    }

    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let page = (ctx.backend)
            .list_keys(
                self.ns.as_deref(),
                self.prefix.as_deref().unwrap_or(""),
                self.cursor.as_deref(),
                self.limit.unwrap_or(100),
            )
            .await?;
        Ok(reply::json(&api::KeysAnswer {
            namespace: self.ns,
            keys: page.keys,
            cursor: page.next_cursor,
        }))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

#[utoipa::path(
    get, path = "/keys", tag = "keys", impl_for = Keys,
    params(Keys),
    responses(
        (status = 200, description = "A page of the namespace's keys, in order", body = api::KeysAnswer),
        (status = 422, description = "An invalid namespace name or limit", body = api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}
