//! `GET /quota?ns=` and `PUT /quota?ns=`: a namespace's quota, read by
//! anyone who may read the namespace, changed by admin tokens only.
//!
//! A quota set here lasts until the next start, where the quota file
//! (`--quotas`) rules again: put permanent quotas in the file.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::AppState;
use super::error::ApiError;
use super::guard::Caller;
use super::handlers::{NsQuery, read_body};
use crate::api::{QuotaAnswer, QuotaBody};
use crate::auth::Access;
use crate::backend::KvBackend;
use crate::store::{Limit, MAX_LIMIT, QuotaReport};

fn answer(namespace: Option<String>, report: QuotaReport) -> Response {
    axum::Json(QuotaAnswer {
        namespace,
        max_keys: report.quota.max_keys,
        max_bytes: report.quota.max_bytes,
        used_keys: report.used_keys,
        used_bytes: report.used_bytes,
    })
    .into_response()
}

#[utoipa::path(
    get, path = "/quota", tag = "namespaces",
    params(("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace; absent: the default namespace")),
    responses(
        (status = 200, description = "The namespace's quota and usage", body = QuotaAnswer),
        (status = 501, description = "The storage backend has no quotas (`--backend memory`)", body = crate::api::ErrorBody),
        (status = 422, description = "An invalid namespace name", body = crate::api::ErrorBody),
    )
)]
pub async fn get_quota(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: Result<Query<NsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(NsQuery { ns }) = query?;
    state.admit(&caller, ns.as_deref(), Access::Read)?;
    let report = state.backend.quota(ns.as_deref()).await?;
    Ok(answer(ns, report))
}

#[utoipa::path(
    put, path = "/quota", tag = "namespaces",
    params(("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace; absent: the default namespace")),
    request_body = QuotaBody,
    responses(
        (status = 200, description = "The new quota (until the next start) and the usage after any eviction", body = QuotaAnswer),
        (status = 501, description = "The storage backend has no quotas (`--backend memory`)", body = crate::api::ErrorBody),
        (status = 400, description = "The body is not JSON", body = crate::api::ErrorBody),
        (status = 413, description = "The body is over `--max-body-bytes`", body = crate::api::ErrorBody),
        (status = 422, description = "An invalid namespace name or quota", body = crate::api::ErrorBody),
    )
)]
pub async fn put_quota(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: Result<Query<NsQuery>, QueryRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(NsQuery { ns }) = query?;
    caller.require_admin("PUT /quota").map_err(ApiError::Auth)?;
    let body = read_body(body, state.max_body_bytes, state.request_timeout).await?;
    let quota = parse_quota(&body)?;
    let report = state.backend.set_quota(ns.as_deref(), quota).await?;
    Ok(answer(ns, report))
}

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
