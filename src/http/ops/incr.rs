//! `POST /incr?ns=`: adds to an integer counter, atomically; a missing key
//! counts from 0.

use hyper::Method;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Documented, MAX_TTL_SECS, Needs, Operation, documented};
use crate::api::{self, IncrAnswer, IncrBody};
use crate::auth::{Access, Grants};
use crate::backend::KvBackend;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;

/// The body with `by` and `ttl` as raw JSON, read as JSON Schema reads an
/// integer.
#[derive(Deserialize)]
struct RawIncr<'a> {
    key: String,
    #[serde(borrow, default)]
    by: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ttl: Option<&'a RawValue>,
}

pub struct Incr {
    namespace: Option<String>,
    body: IncrBody,
}

impl Operation for Incr {
    const METHOD: Method = Method::POST;
    const PATHS: &'static [&'static str] = &["/incr"];
    const BODY: bool = true;

    fn parse(request: &Request<'_>, body: &[u8]) -> Result<Self, ApiError> {
        const EXPECTED: &str = "body must be a JSON object such as {\"key\": \"page_views\", \"by\": 1} \
             (`by`: an integer, default 1; `ttl`: seconds, optional)";
        let raw: RawIncr = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                // serde's message may quote the body: the diagnostic leaves it out.
                ApiError::invalid_with_diagnostic(format!("{EXPECTED}: {e}"), EXPECTED)
            } else {
                ApiError::MalformedJson(e.to_string())
            }
        })?;
        if raw.key.is_empty() {
            return Err(ApiError::invalid("field `key`: must not be empty"));
        }
        // Whole numbers in any JSON spelling (`5`, `5.0`), as JSON
        // Schema's `integer` reads them.
        let by = match raw.by.map(RawValue::get) {
            None => None,
            Some(text) => Some(crate::json::whole_signed(text).ok_or_else(|| {
                ApiError::invalid_json_input(text, |got| {
                    format!("field `by`: must be a whole number within a 64-bit signed integer, got {got}")
                })
            })?),
        };
        let ttl = match raw.ttl.map(RawValue::get) {
            None => None,
            Some(text) => Some(
                crate::json::whole_number(text)
                    .filter(|ttl| (1..=MAX_TTL_SECS).contains(ttl))
                    .ok_or_else(|| {
                        ApiError::invalid_json_input(text, |got| {
                            format!("field `ttl`: must be a whole number of seconds from 1 to {MAX_TTL_SECS}, got {got}")
                        })
                    })?,
            ),
        };
        let body = IncrBody {
            key: raw.key,
            by,
            ttl,
        };
        Ok(Incr {
            namespace: request.namespace()?,
            body,
        })
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Namespace(self.namespace.as_deref(), Access::Write)
    }

    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let IncrBody { key, by, ttl } = self.body;
        let (value, commit) = (ctx.backend)
            .incr(self.namespace.as_deref(), &key, by.unwrap_or(1), ttl)
            .await?;
        commit.durable().await?;
        Ok(reply::json(&IncrAnswer {
            key,
            value,
            namespace: self.namespace,
        }))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

#[utoipa::path(
    post, path = "/incr", tag = "keys", impl_for = Incr,
    params(("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace (1 to 64 of A-Z a-z 0-9 _ . -); absent: the default namespace")),
    request_body = api::IncrBody,
    responses(
        (status = 200, description = "The counter after the increment (as durable as `--fsync` promises)", body = api::IncrAnswer),
        (status = 400, description = "The body is not JSON", body = api::ErrorBody),
        (status = 409, description = "The value is not an integer, or the sum would pass a 64-bit signed integer; nothing changed", body = api::ErrorBody),
        (status = 413, description = "The body is over `--max-body-bytes`", body = api::ErrorBody),
        (status = 422, description = "A field is missing, of the wrong type or out of range", body = api::ErrorBody),
        (status = 503, description = "The write-ahead log cannot be written; nothing was applied", body = api::ErrorBody),
        (status = 507, description = "A memory or key limit is reached (noeviction)", body = api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}
