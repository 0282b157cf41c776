//! `POST /expire?ns=`: sets or removes a key's TTL without sending its
//! value again.

use hyper::Method;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Documented, MAX_TTL_SECS, Needs, Operation, documented};
use crate::api::{self, ExpireBody, TtlAnswer};
use crate::auth::{Access, Grants};
use crate::backend::KvBackend;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;

/// The body with `ttl` as raw JSON, to tell a missing field from `null`.
#[derive(Deserialize)]
struct RawExpire<'a> {
    key: String,
    #[serde(borrow, default, deserialize_with = "crate::json::present")]
    ttl: Option<&'a RawValue>,
}

pub struct Expire {
    namespace: Option<String>,
    body: ExpireBody,
}

impl Operation for Expire {
    const METHOD: Method = Method::POST;
    const PATHS: &'static [&'static str] = &["/expire"];
    const BODY: bool = true;

    fn parse(request: &Request<'_>, body: &[u8]) -> Result<Self, ApiError> {
        const EXPECTED: &str = "body must be a JSON object such as {\"key\": \"session:1\", \"ttl\": 3600} \
             (`ttl`: seconds, or null for a key that never expires)";
        let raw: RawExpire = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                ApiError::invalid_with_diagnostic(format!("{EXPECTED}: {e}"), EXPECTED)
            } else {
                ApiError::MalformedJson(e.to_string())
            }
        })?;
        // `ttl` must be there: a body that forgot it must not make the key
        // persistent by accident.
        let ttl = match raw.ttl.map(RawValue::get) {
            None => {
                return Err(ApiError::invalid(
                    "field `ttl`: missing; send seconds, or null for a key that never expires",
                ));
            }
            Some("null") => None,
            Some(text) => Some(crate::json::whole_number(text).ok_or_else(|| {
                ApiError::invalid_json_input(text, |got| {
                    format!("field `ttl`: must be a whole number of seconds from 1 to {MAX_TTL_SECS}, or null; got {got}")
                })
            })?),
        };
        let body = ExpireBody { key: raw.key, ttl };
        if body.key.is_empty() {
            return Err(ApiError::invalid("field `key`: must not be empty"));
        }
        if let Some(ttl) = body.ttl.filter(|ttl| !(1..=MAX_TTL_SECS).contains(ttl)) {
            return Err(ApiError::invalid_json_input(&ttl.to_string(), |got| {
                format!(
                    "field `ttl`: must be a whole number of seconds from 1 to {MAX_TTL_SECS}, or null; got {got}"
                )
            }));
        }
        Ok(Expire {
            namespace: request.namespace()?,
            body,
        })
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Namespace(self.namespace.as_deref(), Access::Write)
    }

    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let ExpireBody { key, ttl } = self.body;
        (ctx.backend)
            .expire(self.namespace.as_deref(), &key, ttl)
            .await?
            .ok_or(ApiError::KeyNotFound)?
            .durable()
            .await?;
        Ok(reply::json(&TtlAnswer {
            key,
            namespace: self.namespace,
            ttl,
        }))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

#[utoipa::path(
    post, path = "/expire", tag = "keys", impl_for = Expire,
    params(("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace (1 to 64 of A-Z a-z 0-9 _ . -); absent: the default namespace")),
    request_body = api::ExpireBody,
    responses(
        (status = 200, description = "The key's new TTL (null: it never expires)", body = api::TtlAnswer),
        (status = 400, description = "The body is not JSON", body = api::ErrorBody),
        (status = 404, description = "`Key not found`", body = api::ErrorBody),
        (status = 422, description = "A field is missing, of the wrong type or out of range", body = api::ErrorBody),
        (status = 503, description = "The write-ahead log cannot be written; nothing was applied", body = api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}
