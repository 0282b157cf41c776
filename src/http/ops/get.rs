//! `GET /get/{key}?ns=`: a key's value.

use hyper::Method;
use hyper::header::ETAG;

use super::{Documented, Needs, Operation, documented};
use crate::api::{self, GetAnswer};
use crate::auth::{Access, Grants};
use crate::backend::KvBackend;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::error::etag_header;
use crate::http::reply::{self, Response};
use crate::http::request::Request;
use crate::store::etag_of;

pub struct Get {
    key: String,
    namespace: Option<String>,
}

impl Operation for Get {
    const METHOD: Method = Method::GET;
    // A wildcard, so that an unencoded `/` inside a key works too.
    const PATHS: &'static [&'static str] = &["/get/{*key}"];

    fn parse(request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(Get {
            key: request.param("key")?.into_owned(),
            namespace: request.namespace()?,
        })
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Namespace(self.namespace.as_deref(), Access::Read)
    }

    /// Writes the answer around the value's JSON text, which the backend
    /// appends in place: the value is never parsed nor copied twice.
    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let namespace = self.namespace.as_deref();
        let mut body = Vec::with_capacity(64 + 2 * self.key.len());
        GetAnswer::write_head(&mut body, &self.key);
        let value_at = body.len();
        let backend = &ctx.backend;
        if !backend.get_into(namespace, &self.key, &mut body).await? {
            return Err(ApiError::KeyNotFound);
        }
        let etag = etag_header(etag_of(&body[value_at..]));
        GetAnswer::write_tail(&mut body, namespace);
        let mut answer = reply::json_bytes(body);
        answer.headers_mut().insert(ETAG, etag);
        Ok(answer)
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

#[utoipa::path(
    get, path = "/get/{key}", tag = "keys", impl_for = Get,
    params(
        ("key" = String, Path, description = "The key, percent-encoded; an unencoded `/` inside it works too"),
        ("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace (1 to 64 of A-Z a-z 0-9 _ . -); absent: the default namespace"),
    ),
    responses(
        (status = 200, description = "The value; the `ETag` header tags it, for `If-Match` on a later write", body = api::GetAnswer),
        (status = 404, description = "`Key not found`", body = api::ErrorBody),
        (status = 422, description = "An invalid key or namespace", body = api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}
