//! `POST /set?ns=`: stores a value under a key, with an optional TTL.
//!
//! The body's fields are first taken as raw JSON text and checked by hand,
//! so that an error names the field at fault and says what it should be,
//! and the value is kept as the exact JSON text the client sent, without
//! building a tree of it.

use std::borrow::Cow;
use std::ops::Range;

use hyper::Method;
use hyper::body::Bytes;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::{Documented, Needs, Operation, documented};
use crate::api::{self, SetAnswer};
use crate::auth::{Access, Grants};
use crate::backend::KvBackend;
use crate::http::HandlerContext;
use crate::http::conditions::precondition;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;
use crate::store::{Condition, validate_namespace};

/// A `POST /set` command.
pub struct Set {
    /// The request's body: the key and the value are read from it in
    /// place, so that a SET copies them only into the entry and the log
    /// record.
    body: Bytes,
    key: Text,
    /// JSON text of the value.
    value: Text,
    ttl: Option<u64>,
    /// The body's namespace, which wins over the query's, as in PyKV; it
    /// is the one the token must allow.
    namespace: Option<String>,
    /// `If-Match` / `If-None-Match: *`: check-and-set.
    condition: Option<Condition>,
}

/// A string of the command: where it lies in the body, or, when it is not
/// there byte for byte (a key with escapes, a value with line breaks), its
/// own copy.
enum Text {
    InBody(Range<usize>),
    Owned(String),
}

impl Text {
    /// Where `text` lies in `body`, if it was borrowed from it.
    fn of(body: &[u8], text: Cow<'_, str>) -> Self {
        let start = (text.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
        match text {
            Cow::Borrowed(s) if start <= body.len() && s.len() <= body.len() - start => {
                Text::InBody(start..start + s.len())
            }
            other => Text::Owned(other.into_owned()),
        }
    }
}

impl Set {
    fn text<'a>(&'a self, text: &'a Text) -> &'a str {
        match text {
            Text::InBody(range) => std::str::from_utf8(&self.body[range.clone()])
                .expect("cut from text the parser read as UTF-8, at its boundaries"),
            Text::Owned(owned) => owned,
        }
    }
}

impl Operation for Set {
    const METHOD: Method = Method::POST;
    const PATHS: &'static [&'static str] = &["/set"];
    const BODY: bool = true;

    fn parse(request: &Request<'_>, body: &[u8]) -> Result<Self, ApiError> {
        Self::parse_body(request, Bytes::copy_from_slice(body))
    }

    fn parse_body(request: &Request<'_>, body: Bytes) -> Result<Self, ApiError> {
        let query_ns = request.namespace()?;
        // A bad `?ns=` is refused even when the body names another namespace.
        if let Some(ns) = &query_ns {
            validate_namespace(ns)?;
        }
        let condition = precondition(request.headers())?;
        let parsed = SetRequest::parse(&body)?;
        let (key, value) = (Text::of(&body, parsed.key), Text::of(&body, parsed.value));
        let namespace = parsed.namespace.map(Cow::into_owned).or(query_ns);
        Ok(Set {
            condition,
            key,
            value,
            ttl: parsed.ttl,
            namespace,
            body,
        })
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Namespace(self.namespace.as_deref(), Access::Write)
    }

    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let namespace = self.namespace.as_deref();
        let (key, value, ttl) = (self.text(&self.key), self.text(&self.value), self.ttl);
        let commit = match self.condition {
            None => ctx.backend.set(namespace, key, value, ttl).await?,
            Some(condition) => {
                (ctx.backend)
                    .set_if(namespace, key, value, ttl, condition)
                    .await?
            }
        };
        commit.durable().await?;
        Ok(reply::json(&SetAnswer {
            key: Cow::Borrowed(key),
            namespace: namespace.map(Cow::Borrowed),
            status: api::SetStatus::Success,
        }))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

#[utoipa::path(
    post, path = "/set", tag = "keys", impl_for = Set,
    params(
        ("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace (1 to 64 of A-Z a-z 0-9 _ . -); absent: the default namespace"),
    ),
    request_body(content = api::SetBody, description = "The body's `namespace` wins over `?ns=`"),
    responses(
        (status = 200, description = "Stored (and as durable as `--fsync` promises)", body = api::SetAnswer),
        (status = 400, description = "The body is not JSON", body = api::ErrorBody),
        (status = 412, description = "`If-Match` does not match the key's current ETag, or `If-None-Match: *` and the key exists; nothing was written; the current ETag is in the header", body = api::ErrorBody),
        (status = 413, description = "The body is over `--max-body-bytes`", body = api::ErrorBody),
        (status = 422, description = "A field is missing, of the wrong type or out of range, or an unsupported precondition", body = api::ErrorBody),
        (status = 503, description = "The write-ahead log cannot be written; nothing was applied", body = api::ErrorBody),
        (status = 507, description = "A memory or key limit is reached (noeviction) or the entry is too large", body = api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}

/// Longest TTL accepted: 100 years, far beyond any real use, and small
/// enough that deadlines in milliseconds cannot overflow.
pub const MAX_TTL_SECS: u64 = 100 * 365 * 24 * 3600;

/// A validated `POST /set` body.
#[derive(Debug)]
pub struct SetRequest<'a> {
    pub key: Cow<'a, str>,
    /// JSON text of the value.
    pub value: Cow<'a, str>,
    pub ttl: Option<u64>,
    /// `None` when absent or `null`: the query's `?ns=` then decides.
    pub namespace: Option<Cow<'a, str>>,
}

/// Each field as raw JSON; `Some` even for an explicit `null`, so that a
/// missing field and a `null` one can be told apart.
#[derive(Deserialize)]
struct RawSetBody<'a> {
    #[serde(borrow, default, deserialize_with = "crate::json::present")]
    key: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "crate::json::present")]
    value: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "crate::json::present")]
    ttl: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "crate::json::present")]
    namespace: Option<&'a RawValue>,
}

impl<'a> SetRequest<'a> {
    pub fn parse(body: &'a [u8]) -> Result<Self, ApiError> {
        const EXPECTED: &str =
            "body must be a JSON object such as {\"key\": \"user:1\", \"value\": \"alice\"}";
        // The parser's message may quote the body: the diagnostic leaves it out.
        let not_an_object = |e: serde_json::Error| {
            ApiError::invalid_with_diagnostic(format!("{EXPECTED}: {e}"), EXPECTED)
        };
        // serde would also read a struct from an array: refuse anything but
        // an object first.
        if body.trim_ascii_start().first() != Some(&b'{') {
            return Err(match serde_json::from_slice::<IgnoredAny>(body) {
                Ok(_) => not_an_object(serde::de::Error::custom("got another JSON type")),
                Err(e) => ApiError::MalformedJson(e.to_string()),
            });
        }
        let raw: RawSetBody<'a> = serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                not_an_object(e)
            } else {
                ApiError::MalformedJson(e.to_string())
            }
        })?;
        Ok(SetRequest {
            key: parse_key(raw.key)?,
            value: parse_value(raw.value)?,
            ttl: parse_ttl(raw.ttl)?,
            namespace: parse_namespace(raw.namespace)?,
        })
    }
}

pub(super) fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

pub(super) fn parse_key(raw: Option<&RawValue>) -> Result<Cow<'_, str>, ApiError> {
    let raw =
        raw.ok_or_else(|| ApiError::invalid("field `key`: missing; send a non-empty string"))?;
    // Borrowed from the body when it has no escapes, the usual case
    // (serde's `Cow` always copies).
    let key = match serde_json::from_str::<&str>(raw.get()) {
        Ok(key) => Cow::Borrowed(key),
        Err(_) => serde_json::from_str::<String>(raw.get())
            .map(Cow::Owned)
            .map_err(|_| {
                ApiError::invalid_json_input(raw.get(), |got| {
                    format!("field `key`: must be a string, got {got}")
                })
            })?,
    };
    if key.is_empty() {
        return Err(ApiError::invalid("field `key`: must not be empty"));
    }
    Ok(key)
}

pub(super) fn parse_value(raw: Option<&RawValue>) -> Result<Cow<'_, str>, ApiError> {
    let raw = raw.ok_or_else(|| {
        ApiError::invalid("field `value`: missing; send a string or any other JSON value")
    })?;
    let text = raw.get();
    // Values are stored and logged on one line each. A raw line break can
    // only be whitespace between tokens (inside a JSON string it must be
    // escaped), so dropping them leaves the same JSON, byte for byte
    // otherwise: no re-encoding that could fail or change a number.
    if text.contains(['\n', '\r']) {
        return Ok(Cow::Owned(text.replace(['\n', '\r'], "")));
    }
    Ok(Cow::Borrowed(text))
}

pub(super) fn parse_ttl(raw: Option<&RawValue>) -> Result<Option<u64>, ApiError> {
    let Some(raw) = raw.filter(|r| !is_null(r)) else {
        return Ok(None);
    };
    match crate::json::whole_number(raw.get()) {
        Some(ttl) if (1..=MAX_TTL_SECS).contains(&ttl) => Ok(Some(ttl)),
        _ => Err(ApiError::invalid_json_input(raw.get(), |got| {
            format!(
                "field `ttl`: must be a whole number of seconds from 1 to {MAX_TTL_SECS}, got {got}; \
                 omit it (or send null) for a key that never expires"
            )
        })),
    }
}

pub(super) fn parse_namespace(raw: Option<&RawValue>) -> Result<Option<Cow<'_, str>>, ApiError> {
    let Some(raw) = raw.filter(|r| !is_null(r)) else {
        return Ok(None);
    };
    serde_json::from_str(raw.get()).map(Some).map_err(|_| {
        ApiError::invalid_json_input(raw.get(), |got| {
            format!("field `namespace`: must be a string or null, got {got}")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(body: &str) -> String {
        match SetRequest::parse(body.as_bytes()) {
            Err(e @ (ApiError::Invalid(_) | ApiError::MalformedJson(_))) => e.detail(),
            other => panic!("expected an error for {body}, got {other:?}"),
        }
    }

    #[test]
    fn parses_the_seed_body() {
        let r = SetRequest::parse(
            br#"{"key":"user:123","value":"alice","namespace":"app1","ttl":3600}"#,
        )
        .unwrap();
        assert_eq!(r.key, "user:123");
        assert_eq!(r.value, "\"alice\"");
        assert_eq!(r.ttl, Some(3600));
        assert_eq!(r.namespace.as_deref(), Some("app1"));
    }

    #[test]
    fn keeps_any_json_value_and_compacts_pretty_ones() {
        let r = SetRequest::parse(br#"{"key":"k","value":{"a":[1,2.5,null]}}"#).unwrap();
        assert_eq!(r.value, r#"{"a":[1,2.5,null]}"#);
        let r = SetRequest::parse(b"{\"key\":\"k\",\"value\":{\n \"a\": 1\n}}").unwrap();
        assert_eq!(r.value, r#"{ "a": 1}"#);
        let r = SetRequest::parse(b"{\"key\":\"k\",\"value\":[\n\"\\ud800\"]}").unwrap();
        assert_eq!(r.value, r#"["\ud800"]"#);
        let r = SetRequest::parse(br#"{"key":"k","value":null}"#).unwrap();
        assert_eq!(r.value, "null");
    }

    /// What lets a SET keep its key and value in its body, uncopied.
    #[test]
    fn key_and_value_are_borrowed_unless_they_differ_from_the_body() {
        let r = SetRequest::parse(br#"{"key":"user:1","value":{"a":1}}"#).unwrap();
        assert!(matches!(r.key, Cow::Borrowed("user:1")));
        assert!(matches!(r.value, Cow::Borrowed(r#"{"a":1}"#)));
        let r = SetRequest::parse(br#"{"key":"a\"b\u00e9","value":1}"#).unwrap();
        assert!(matches!(&r.key, Cow::Owned(key) if key == "a\"bé"));
        let body = br#"{"key":"k","value":[1,"x"]}"#;
        let r = SetRequest::parse(body).unwrap();
        let value = Text::of(body, r.value);
        assert!(matches!(&value, Text::InBody(range) if &body[range.clone()] == br#"[1,"x"]"#));
        assert!(
            matches!(Text::of(body, Cow::Borrowed("elsewhere")), Text::Owned(s) if s == "elsewhere")
        );
    }

    #[test]
    fn null_ttl_and_namespace_mean_none() {
        let r = SetRequest::parse(br#"{"key":"k","value":1,"ttl":null,"namespace":null}"#).unwrap();
        assert_eq!(r.ttl, None);
        assert!(r.namespace.is_none());
    }

    #[test]
    fn errors_name_the_field() {
        assert!(matches!(
            SetRequest::parse(b"not json"),
            Err(ApiError::MalformedJson(_))
        ));
        assert!(detail("[1]").contains("JSON object"));
        assert!(detail(r#"{"value":1}"#).contains("`key`"));
        assert!(detail(r#"{"key":"k"}"#).contains("`value`"));
        assert!(detail(r#"{"key":5,"value":1}"#).contains("`key`"));
        assert!(detail(r#"{"key":"","value":1}"#).contains("`key`"));
        for ttl in [
            "0",
            "-1",
            "1.5",
            "\"10\"",
            "true",
            "1e30",
            "99999999999999999999",
        ] {
            let body = format!(r#"{{"key":"k","value":1,"ttl":{ttl}}}"#);
            assert!(detail(&body).contains("`ttl`"), "{ttl}");
        }
        assert!(detail(r#"{"key":"k","value":1,"namespace":7}"#).contains("`namespace`"));
    }
}
