//! `POST /batch?ns=`: several ops in one request, in one namespace: each
//! on its own (the fast path of bulk loads and multi-gets), or as one
//! transaction (`"atomic": true`), every op applied or none.
//!
//! The whole body is checked before anything is applied: an op of the
//! wrong shape is a 422 naming it (`ops[3]`), and nothing is done. Each
//! op then answers with the status it would have had alone; in a
//! transaction, an op that cannot be applied fails the whole request with
//! that status (412 for a condition), naming the op, and nothing is
//! applied.

use std::borrow::Cow;

use hyper::Method;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::set::{is_null, parse_key, parse_namespace, parse_ttl, parse_value};
use super::{Documented, Needs, Operation, documented};
use crate::api::{self, BatchAnswer, BatchResult, ResultParts};
use crate::auth::{Access, Grants};
use crate::backend::{BackendError, KvBackend};
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;
use crate::store::{
    BatchOp, Condition, MAX_BATCH_OPS, OpKind, Outcome, etag_of, validate_namespace,
};

pub struct Batch {
    ops: Vec<BatchOp>,
    atomic: bool,
    /// The body's namespace wins over the query's, as on `POST /set`.
    namespace: Option<String>,
}

/// The body with each field as raw JSON, to name the field at fault.
#[derive(Deserialize)]
struct RawBatch<'a> {
    #[serde(borrow, default)]
    ops: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default, deserialize_with = "crate::json::present")]
    atomic: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "crate::json::present")]
    namespace: Option<&'a RawValue>,
}

/// One op with each field as raw JSON; any other field is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOp<'a> {
    #[serde(borrow, default, deserialize_with = "crate::json::present")]
    op: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "crate::json::present")]
    key: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "crate::json::present")]
    value: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "crate::json::present")]
    ttl: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "crate::json::present")]
    by: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "crate::json::present")]
    if_match: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "crate::json::present")]
    if_absent: Option<&'a RawValue>,
}

const EXPECTED: &str = "body must be a JSON object such as {\"ops\": [{\"op\": \"get\", \"key\": \"a\"}, \
     {\"op\": \"set\", \"key\": \"b\", \"value\": 1}], \"atomic\": false}";
const OP_EXPECTED: &str = "must be an object such as {\"op\": \"set\", \"key\": \"k\", \"value\": 1}: \
     op is get, set, delete or incr; fields key, value and ttl (set), by (incr), if_match, if_absent";

impl Operation for Batch {
    const METHOD: Method = Method::POST;
    const PATHS: &'static [&'static str] = &["/batch"];
    const BODY: bool = true;

    fn parse(request: &Request<'_>, body: &[u8]) -> Result<Self, ApiError> {
        let query_ns = request.namespace()?;
        if let Some(ns) = &query_ns {
            validate_namespace(ns)?;
        }
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(
                match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                    Ok(_) => ApiError::invalid(EXPECTED),
                    Err(e) => ApiError::MalformedJson(e.to_string()),
                },
            );
        }
        let raw: RawBatch = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                // serde's message may quote the body: the diagnostic leaves it out.
                ApiError::invalid_with_diagnostic(format!("{EXPECTED}: {e}"), EXPECTED)
            } else {
                ApiError::MalformedJson(e.to_string())
            }
        })?;
        let raw_ops = raw.ops.ok_or_else(|| {
            ApiError::invalid("field `ops`: missing; send an array of ops such as [{\"op\": \"get\", \"key\": \"a\"}]")
        })?;
        if raw_ops.len() > MAX_BATCH_OPS {
            return Err(ApiError::invalid(format!(
                "field `ops`: a batch holds at most {MAX_BATCH_OPS} ops, got {}; send them as several batches",
                raw_ops.len()
            )));
        }
        let ops = (raw_ops.iter().enumerate())
            .map(|(index, raw)| parse_op(raw).map_err(|e| e.within(&format!("ops[{index}]: "))))
            .collect::<Result<Vec<_>, _>>()?;
        let atomic = match raw.atomic.filter(|raw| !is_null(raw)).map(RawValue::get) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::invalid_json_input(other, |got| {
                    format!("field `atomic`: must be true or false, got {got}")
                }));
            }
        };
        let namespace = parse_namespace(raw.namespace)?.map(Cow::into_owned);
        Ok(Batch {
            ops,
            atomic,
            namespace: namespace.or(query_ns),
        })
    }

    /// Write access when any op writes, read access otherwise.
    fn needs(&self) -> Needs<'_> {
        let access = match self.ops.iter().any(|op| op.kind.writes()) {
            true => Access::Write,
            false => Access::Read,
        };
        Needs::Namespace(self.namespace.as_deref(), access)
    }

    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let namespace = self.namespace.as_deref();
        let outcomes: Vec<Result<Outcome, BackendError>> = if self.atomic {
            let outcomes = ctx.backend.transact(namespace, &self.ops).await?;
            outcomes.into_iter().map(Ok).collect()
        } else {
            ctx.backend.batch(namespace, &self.ops).await?
        };
        // Written by hand: stored values go into the body as they are.
        let mut body = Vec::with_capacity(64 + 96 * self.ops.len());
        BatchAnswer::write_head(&mut body, namespace);
        for (i, (op, outcome)) in self.ops.iter().zip(outcomes).enumerate() {
            write_result(&mut body, i == 0, op, outcome);
        }
        BatchAnswer::write_tail(&mut body);
        Ok(reply::json_bytes(body))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

/// One op, checked: its shape, its fields, and that each field belongs to
/// its kind.
fn parse_op(raw: &RawValue) -> Result<BatchOp, ApiError> {
    let text = raw.get();
    if !text.starts_with('{') {
        return Err(ApiError::invalid_json_input(text, |got| {
            format!("{OP_EXPECTED}; got {got}")
        }));
    }
    let op: RawOp = serde_json::from_str(text).map_err(|e| {
        // serde names the unknown field, which the client chose: only the
        // answer quotes it.
        ApiError::invalid_with_diagnostic(format!("{OP_EXPECTED}: {e}"), OP_EXPECTED)
    })?;
    let name = op.op.map(RawValue::get);
    let kind = match name {
        Some("\"get\"") => OpKind::Get,
        Some("\"set\"") => OpKind::Set {
            value: parse_value(op.value)?.into_owned(),
            ttl_secs: parse_ttl(op.ttl)?,
        },
        Some("\"delete\"") => OpKind::Delete,
        Some("\"incr\"") => OpKind::Incr {
            by: parse_by(op.by)?,
        },
        None => {
            return Err(ApiError::invalid(
                "field `op`: missing; send get, set, delete or incr",
            ));
        }
        Some(other) => {
            return Err(ApiError::invalid_json_input(other, |got| {
                format!("field `op`: must be \"get\", \"set\", \"delete\" or \"incr\", got {got}")
            }));
        }
    };
    let foreign = [
        ("value", op.value, matches!(kind, OpKind::Set { .. })),
        ("ttl", op.ttl, matches!(kind, OpKind::Set { .. })),
        ("by", op.by, matches!(kind, OpKind::Incr { .. })),
    ]
    .into_iter()
    .find(|(_, present, allowed)| present.is_some() && !allowed);
    if let Some((field, _, _)) = foreign {
        return Err(ApiError::invalid(format!(
            "field `{field}`: a {} op does not take it",
            kind.name()
        )));
    }
    Ok(BatchOp {
        key: parse_key(op.key)?.into_owned(),
        condition: parse_condition(op.if_match, op.if_absent)?,
        kind,
    })
}

fn parse_by(raw: Option<&RawValue>) -> Result<i64, ApiError> {
    let Some(text) = raw.filter(|raw| !is_null(raw)).map(RawValue::get) else {
        return Ok(1);
    };
    crate::json::whole_signed(text).ok_or_else(|| {
        ApiError::invalid_json_input(text, |got| {
            format!("field `by`: must be a whole number within a 64-bit signed integer, got {got}")
        })
    })
}

/// `if_match`: an ETag as `GET /get/{key}` answers it (`"<16 hex>"`, the
/// quotes optional) or `*` (the key exists); `if_absent: true`: the key
/// does not exist. Both at once never hold.
fn parse_condition(
    if_match: Option<&RawValue>,
    if_absent: Option<&RawValue>,
) -> Result<Option<Condition>, ApiError> {
    let if_match = if_match.filter(|raw| !is_null(raw));
    let absent = match if_absent.filter(|raw| !is_null(raw)).map(RawValue::get) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::invalid_json_input(other, |got| {
                format!("field `if_absent`: must be true or false, got {got}")
            }));
        }
    };
    match (if_match, absent) {
        (None, false) => Ok(None),
        (None, true) => Ok(Some(Condition::Absent)),
        // Both must hold, and no key is both absent and tagged: as an
        // `If-Match` that no key can meet, it never holds (412).
        (Some(_), true) => Ok(Some(Condition::Never)),
        (Some(raw), false) => {
            let tag: Option<String> = serde_json::from_str(raw.get()).ok();
            match tag.as_deref().and_then(condition_of_tag) {
                Some(condition) => Ok(Some(condition)),
                None => Err(ApiError::invalid_json_input(raw.get(), |got| {
                    format!(
                        "field `if_match`: must be an ETag as GET /get answers it, such as \
                         \"\\\"0123456789abcdef\\\"\", or \"*\"; got {got}"
                    )
                })),
            }
        }
    }
}

fn condition_of_tag(tag: &str) -> Option<Condition> {
    if tag == "*" {
        return Some(Condition::Present);
    }
    let hex = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag);
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(Condition::Matches)
}

/// Appends the wire form of one op's outcome ([`BatchResult::write`]).
fn write_result(
    out: &mut Vec<u8>,
    first: bool,
    op: &BatchOp,
    outcome: Result<Outcome, BackendError>,
) {
    let mut parts = ResultParts {
        op: op.kind.name(),
        key: &op.key,
        status: 200,
        value: None,
        etag: None,
        detail: None,
    };
    let (sum, detail);
    match &outcome {
        Ok(Outcome::Value(text)) => {
            parts.value = Some(text);
            parts.etag = Some(etag_of(text));
        }
        Ok(Outcome::Counted(counted)) => {
            sum = counted.to_string();
            parts.value = Some(&sum);
            parts.etag = Some(etag_of(&sum));
        }
        Ok(Outcome::Stored) => {
            if let OpKind::Set { value, .. } = &op.kind {
                parts.etag = Some(etag_of(value));
            }
        }
        Ok(Outcome::Deleted) => {}
        Ok(Outcome::Missing) => {
            parts.status = 404;
            detail = ApiError::KeyNotFound.detail();
            parts.detail = Some(&detail);
        }
        Err(error) => {
            let error = ApiError::from(error.clone());
            parts.status = error.status().as_u16();
            detail = error.detail();
            parts.detail = Some(&detail);
        }
    }
    BatchResult::write(out, first, &parts);
}

#[utoipa::path(
    post, path = "/batch", tag = "keys", impl_for = Batch,
    params(("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace (1 to 64 of A-Z a-z 0-9 _ . -); absent: the default namespace")),
    request_body(content = api::BatchBody, description = "At most 1000 ops in one namespace. The body's `namespace` wins over `?ns=`. Needs write access if any op writes, read access otherwise."),
    responses(
        (status = 200, description = "One result per op, in order, each with the status it would have had alone (a transaction: every op was applied, and its writes are as durable as `--fsync` promises)", body = api::BatchAnswer),
        (status = 400, description = "The body is not JSON", body = api::ErrorBody),
        (status = 409, description = "A transaction's incr found no integer, or would overflow; the detail names the op; nothing was applied", body = api::ErrorBody),
        (status = 412, description = "A transaction's op failed its `if_match` or `if_absent`; the detail names the op and its key, the `ETag` header holds the key's current tag; nothing was applied", body = api::ErrorBody),
        (status = 413, description = "The body is over `--max-body-bytes`", body = api::ErrorBody),
        (status = 422, description = "The body or an op is of the wrong shape (the detail names the op, `ops[N]`), more than 1000 ops, or a transaction's key is invalid; nothing was applied", body = api::ErrorBody),
        (status = 503, description = "The storage backend or its log cannot be written; a transaction was not applied", body = api::ErrorBody),
        (status = 507, description = "A transaction would pass a memory or key limit (noeviction); nothing was applied", body = api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}
