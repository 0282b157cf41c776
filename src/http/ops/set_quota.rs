//! `PUT /quota?ns=`: changes a namespace's quota; admin tokens only.
//!
//! With the embedded engine a quota set here lasts until the next start,
//! where the quota file (`--quotas`) rules again: put permanent quotas in
//! the file. A Redis backend keeps it in Redis, for every node and across
//! restarts.

use hyper::Method;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::quota::answer;
use super::{Documented, Needs, Operation, documented};
use crate::api::{QuotaAnswer, QuotaBody};
use crate::auth::Grants;
use crate::backend::KvBackend;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::Response;
use crate::http::request::Request;
use crate::store::{Limit, MAX_LIMIT};

pub struct SetQuota {
    namespace: Option<String>,
    quota: Limit,
}

impl Operation for SetQuota {
    const METHOD: Method = Method::PUT;
    const PATHS: &'static [&'static str] = &["/quota"];
    const BODY: bool = true;

    fn parse(request: &Request<'_>, body: &[u8]) -> Result<Self, ApiError> {
        Ok(SetQuota {
            namespace: request.namespace()?,
            quota: parse_quota(body)?,
        })
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Admin("PUT /quota")
    }

    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let namespace = self.namespace.as_deref();
        let report = ctx.backend.set_quota(namespace, self.quota).await?;
        Ok(answer(self.namespace, report))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

#[utoipa::path(
    put, path = "/quota", tag = "namespaces", impl_for = SetQuota,
    params(("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace; absent: the default namespace")),
    request_body = QuotaBody,
    responses(
        (status = 200, description = "The new quota (embedded: until the next start; Redis: kept in Redis) and the usage after any eviction", body = QuotaAnswer),
        (status = 501, description = "The storage backend has no quotas (`--backend memory`)", body = crate::api::ErrorBody),
        (status = 400, description = "The body is not JSON", body = crate::api::ErrorBody),
        (status = 413, description = "The body is over `--max-body-bytes`", body = crate::api::ErrorBody),
        (status = 422, description = "An invalid namespace name or quota", body = crate::api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}

/// The body as raw fields: `Some` even for an explicit `null`.
#[derive(Deserialize)]
struct RawQuota<'a> {
    #[serde(borrow, default, deserialize_with = "crate::json::present")]
    max_keys: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "crate::json::present")]
    max_bytes: Option<&'a RawValue>,
}

fn parse_quota(body: &[u8]) -> Result<Limit, ApiError> {
    let not_an_object = || {
        ApiError::invalid(
            "body must be a JSON object such as {\"max_keys\": 1000, \"max_bytes\": 1048576} \
             (null or absent for no limit)",
        )
    };
    // Syntax errors (400) apart from wrong shapes (422); serde would also
    // read the struct from an array, hence the look at the first byte.
    serde_json::from_slice::<&RawValue>(body)
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(not_an_object());
    }
    let raw: RawQuota = serde_json::from_slice(body).map_err(|_| not_an_object())?;
    Ok(Limit {
        max_keys: bound("max_keys", raw.max_keys)?,
        max_bytes: bound("max_bytes", raw.max_bytes)?,
    })
}

/// One bound: absent or `null` for none, else a whole number up to
/// [`MAX_LIMIT`], the bound the flags and the quota file share.
fn bound(field: &str, raw: Option<&RawValue>) -> Result<Option<u64>, ApiError> {
    let Some(raw) = raw.filter(|r| r.get() != "null") else {
        return Ok(None);
    };
    match crate::json::whole_number(raw.get()) {
        Some(n) if n <= MAX_LIMIT => Ok(Some(n)),
        _ => Err(ApiError::invalid_json_input(raw.get(), |got| {
            format!(
                "field `{field}`: must be a whole number from 0 to {MAX_LIMIT}, or null for no limit; got {got}"
            )
        })),
    }
}
