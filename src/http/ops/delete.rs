//! `DELETE /delete/{key}?ns=`: removes a key.

use hyper::Method;

use super::{Documented, Needs, Operation, documented};
use crate::api;
use crate::auth::{Access, Grants};
use crate::backend::KvBackend;
use crate::http::HandlerContext;
use crate::http::conditions::precondition;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;
use crate::store::Condition;

pub struct Delete {
    key: String,
    namespace: Option<String>,
    /// `If-Match`: delete only an unchanged key.
    condition: Option<Condition>,
}

impl Operation for Delete {
    const METHOD: Method = Method::DELETE;
    const PATHS: &'static [&'static str] = &["/delete/{*key}"];

    fn parse(request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(Delete {
            condition: precondition(request.headers())?,
            key: request.param("key")?.into_owned(),
            namespace: request.namespace()?,
        })
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Namespace(self.namespace.as_deref(), Access::Write)
    }

    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let (namespace, key) = (self.namespace.as_deref(), &self.key);
        let deleted = match self.condition {
            None => ctx.backend.delete(namespace, key).await?,
            Some(condition) => ctx.backend.delete_if(namespace, key, condition).await?,
        };
        let commit = deleted.ok_or(ApiError::KeyNotFound)?;
        commit.durable().await?;
        Ok(reply::json(&api::DeleteAnswer {
            key: self.key,
            namespace: self.namespace,
            status: api::DeleteStatus::Deleted,
        }))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

#[utoipa::path(
    delete, path = "/delete/{key}", tag = "keys", impl_for = Delete,
    params(
        ("key" = String, Path, description = "The key, percent-encoded; an unencoded `/` inside it works too"),
        ("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace (1 to 64 of A-Z a-z 0-9 _ . -); absent: the default namespace"),
    ),
    responses(
        (status = 200, description = "Deleted", body = api::DeleteAnswer),
        (status = 412, description = "`If-Match` does not match the key's current ETag; nothing was deleted; the current ETag is in the header", body = api::ErrorBody),
        (status = 404, description = "`Key not found`", body = api::ErrorBody),
        (status = 422, description = "An invalid key or namespace", body = api::ErrorBody),
        (status = 503, description = "The write-ahead log cannot be written; nothing was applied", body = api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}
