//! `GET /quota?ns=`: a namespace's quota and usage, for anyone who may
//! read the namespace. Changing it is [`super::set_quota`]'s.

use hyper::Method;

use super::{Documented, Needs, Operation, documented};
use crate::api::QuotaAnswer;
use crate::auth::{Access, Grants};
use crate::backend::KvBackend;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;
use crate::store::QuotaReport;

pub struct Quota {
    namespace: Option<String>,
}

impl Operation for Quota {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/quota"];

    fn parse(request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(Quota {
            namespace: request.namespace()?,
        })
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Namespace(self.namespace.as_deref(), Access::Read)
    }

    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let report = ctx.backend.quota(self.namespace.as_deref()).await?;
        Ok(answer(self.namespace, report))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

/// The answer of both quota routes.
pub fn answer(namespace: Option<String>, report: QuotaReport) -> Response {
    reply::json(&QuotaAnswer {
        namespace,
        max_keys: report.quota.max_keys,
        max_bytes: report.quota.max_bytes,
        used_keys: report.used_keys,
        used_bytes: report.used_bytes,
    })
}

#[utoipa::path(
    get, path = "/quota", tag = "namespaces", impl_for = Quota,
    params(("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace; absent: the default namespace")),
    responses(
        (status = 200, description = "The namespace's quota and usage", body = QuotaAnswer),
        (status = 501, description = "The storage backend has no quotas (`--backend memory`)", body = crate::api::ErrorBody),
        (status = 422, description = "An invalid namespace name", body = crate::api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}
