//! `GET /ttl/{key}?ns=`: the seconds left before a key expires.

use hyper::Method;

use super::{Documented, Needs, Operation, documented};
use crate::api::{self, TtlAnswer};
use crate::auth::{Access, Grants};
use crate::backend::KvBackend;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;

pub struct Ttl {
    key: String,
    namespace: Option<String>,
}

impl Operation for Ttl {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/ttl/{*key}"];

    fn parse(request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(Ttl {
            key: request.param("key")?.into_owned(),
            namespace: request.namespace()?,
        })
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Namespace(self.namespace.as_deref(), Access::Read)
    }

    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let left = (ctx.backend)
            .ttl_ms(self.namespace.as_deref(), &self.key)
            .await?
            .ok_or(ApiError::KeyNotFound)?;
        Ok(reply::json(&TtlAnswer {
            key: self.key,
            namespace: self.namespace,
            ttl: left.map(|ms| ms.div_ceil(1000).max(1)),
        }))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

#[utoipa::path(
    get, path = "/ttl/{key}", tag = "keys", impl_for = Ttl,
    params(
        ("key" = String, Path, description = "The key, percent-encoded; an unencoded `/` inside it works too"),
        ("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace (1 to 64 of A-Z a-z 0-9 _ . -); absent: the default namespace"),
    ),
    responses(
        (status = 200, description = "Seconds left, or null for a key that never expires", body = api::TtlAnswer),
        (status = 404, description = "`Key not found`", body = api::ErrorBody),
        (status = 422, description = "An invalid key or namespace", body = api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}
