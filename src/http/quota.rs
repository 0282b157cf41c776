//! `GET /quota?ns=` and `PUT /quota?ns=`: a namespace's quota, read by
//! anyone who may read the namespace, changed by admin tokens only.
//!
//! A quota set here lasts until the next start, where the quota file
//! (`--quotas`) rules again: put permanent quotas in the file.

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::guard::Caller;
use super::handlers::{NsQuery, read_body};
use crate::auth::Access;
use crate::store::{Limit, QuotaReport};

/// The body of `PUT /quota`: `null` (or absent) for no limit.
#[derive(Debug, Deserialize, ToSchema)]
pub struct QuotaBody {
    /// Most keys the namespace may hold; null for no limit.
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    pub max_keys: Option<u64>,
    /// Most bytes the namespace may hold; null for no limit.
    #[schema(minimum = 0, maximum = 9223372036854775807_i64)]
    pub max_bytes: Option<u64>,
}

/// A namespace's quota and what it uses.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaAnswer {
    /// null for the default namespace.
    pub namespace: Option<String>,
    pub max_keys: Option<u64>,
    pub max_bytes: Option<u64>,
    pub used_keys: u64,
    pub used_bytes: u64,
}

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
        (status = 422, description = "An invalid namespace name", body = super::openapi::ErrorBody),
    )
)]
pub async fn get_quota(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: Result<Query<NsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(NsQuery { ns }) = query?;
    state.admit(&caller, ns.as_deref(), Access::Read)?;
    let report = state.backend.quota(ns.as_deref())?;
    Ok(answer(ns, report))
}

#[utoipa::path(
    put, path = "/quota", tag = "namespaces",
    params(("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace; absent: the default namespace")),
    request_body = QuotaBody,
    responses(
        (status = 200, description = "The new quota (until the next start) and the usage after any eviction", body = QuotaAnswer),
        (status = 400, description = "The body is not JSON", body = super::openapi::ErrorBody),
        (status = 413, description = "The body is over `--max-body-bytes`", body = super::openapi::ErrorBody),
        (status = 422, description = "An invalid namespace name or quota", body = super::openapi::ErrorBody),
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
    let report = state.backend.set_quota(ns.as_deref(), quota)?;
    Ok(answer(ns, report))
}

fn parse_quota(body: &[u8]) -> Result<Limit, ApiError> {
    // Syntax errors (400) apart from wrong shapes or numbers (422).
    serde_json::from_slice::<&RawValue>(body)
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let quota: QuotaBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(format!(
            "body must be an object such as {{\"max_keys\": 1000, \"max_bytes\": 1048576}} \
             (null for no limit): {e}"
        ))
    })?;
    // Usage is counted in signed 64 bits: larger bounds mean nothing.
    for (field, value) in [("max_keys", quota.max_keys), ("max_bytes", quota.max_bytes)] {
        if value.is_some_and(|v| v > i64::MAX as u64) {
            return Err(ApiError::invalid(format!(
                "field `{field}`: must be at most {}, or null for no limit",
                i64::MAX
            )));
        }
    }
    Ok(Limit {
        max_keys: quota.max_keys,
        max_bytes: quota.max_bytes,
    })
}
