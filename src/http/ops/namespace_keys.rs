//! `GET /namespaces/{ns}/keys`: how many live keys a namespace holds.

use hyper::Method;

use super::{Documented, Needs, Operation, documented};
use crate::api;
use crate::auth::{Access, Grants};
use crate::backend::KvBackend;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;

pub struct NamespaceKeys {
    namespace: String,
}

impl Operation for NamespaceKeys {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/namespaces/{ns}/keys"];

    fn parse(request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(NamespaceKeys {
            namespace: request.param("ns")?.into_owned(),
        })
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Namespace(Some(&self.namespace), Access::Read)
    }

    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let stats = ctx.backend.namespace_stats(Some(&self.namespace)).await?;
        Ok(reply::json(&api::NamespaceKeysAnswer {
            namespace: self.namespace,
            total_keys: stats.total_keys,
        }))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

#[utoipa::path(
    get, path = "/namespaces/{ns}/keys", tag = "namespaces", impl_for = NamespaceKeys,
    params(("ns" = String, Path, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace name (1 to 64 of A-Z a-z 0-9 _ . -)")),
    responses(
        (status = 200, description = "How many live keys the namespace holds", body = api::NamespaceKeysAnswer),
        (status = 422, description = "An invalid namespace name", body = api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}
