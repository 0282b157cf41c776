//! `DELETE /namespaces/{ns}`: deletes every key of a namespace.

use hyper::Method;

use super::{Documented, Needs, Operation, documented};
use crate::api;
use crate::auth::{Access, Grants};
use crate::backend::KvBackend;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;

pub struct Clear {
    namespace: String,
}

impl Operation for Clear {
    const METHOD: Method = Method::DELETE;
    const PATHS: &'static [&'static str] = &["/namespaces/{ns}"];

    fn parse(request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(Clear {
            namespace: request.param("ns")?.into_owned(),
        })
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Namespace(Some(&self.namespace), Access::Write)
    }

    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let (deleted, commit) = ctx.backend.clear_namespace(&self.namespace).await?;
        commit.durable().await?;
        Ok(reply::json(&api::ClearAnswer {
            keys_deleted: deleted,
            namespace: self.namespace,
            status: api::ClearStatus::Cleared,
        }))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

#[utoipa::path(
    delete, path = "/namespaces/{ns}", tag = "namespaces", impl_for = Clear,
    params(("ns" = String, Path, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace name (1 to 64 of A-Z a-z 0-9 _ . -)")),
    responses(
        (status = 200, description = "Every key of the namespace deleted", body = api::ClearAnswer),
        (status = 422, description = "An invalid namespace name", body = api::ErrorBody),
        (status = 503, description = "The write-ahead log cannot be written; nothing was applied", body = api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}
