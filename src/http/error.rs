//! The one place where errors become HTTP answers.
//!
//! Every error is answered as JSON in the seed's shape, `{"detail": "..."}`,
//! with a message that says what was wrong and, where it helps, what to do.
//!
//! Each error also has a second form, its [`diagnostic`](ApiError::diagnostic):
//! the same message with everything the client sent (keys, values,
//! namespace names, tokens, paths, whatever their shape) replaced by a
//! description of it, such as "a JSON string of 9 characters". The answer
//! quotes the client's own input back to it; the diagnostic is what the
//! server keeps (`/performance/recent-errors`), so nothing has to cut
//! secrets out of a message afterwards.

use hyper::StatusCode;
use hyper::header::{self, HeaderValue};

use super::origin::SiteRefusal;
use super::reply::{self, Response};
use crate::api::ErrorBody;
use crate::auth::AuthError;
use crate::backend::BackendError;
use crate::rate_limit::RateLimited;
use crate::store::StoreError;

/// When a request refused because the storage backend is unreachable or
/// slow may be retried (`Retry-After`).
pub const BACKEND_RETRY_AFTER_SECS: u64 = 1;

/// When a write refused because the log cannot be written may be retried
/// (`Retry-After`): the writer probes the log four times a second.
pub const LOG_RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug)]
pub enum ApiError {
    /// The request body is not JSON at all.
    MalformedJson(String),
    /// Well-formed, but a field is missing or has the wrong type or value.
    Invalid(InvalidInput),
    KeyNotFound,
    PayloadTooLarge {
        limit: usize,
    },
    NoRoute {
        method: String,
        path: String,
    },
    MethodNotAllowed {
        method: String,
        path: String,
        /// The methods the route accepts, for the `Allow` header.
        allowed: String,
    },
    Store(StoreError),
    /// The storage backend cannot be reached (503).
    BackendUnavailable {
        detail: String,
    },
    /// The storage backend did not answer in time (503).
    BackendTimedOut {
        after: std::time::Duration,
    },
    /// A write applied but not confirmed by enough replicas (503).
    NotReplicated {
        confirmed: u32,
        wanted: u32,
        after: std::time::Duration,
    },
    /// The storage backend lacks what the request needs (501).
    Unsupported {
        backend: &'static str,
        capability: &'static str,
    },
    /// 401 (no or unknown token) or 403 (not this token's business).
    Auth(AuthError),
    RateLimited {
        namespace: Option<String>,
        retry_after_secs: u64,
    },
    /// The client did not send its request within `--request-timeout`.
    RequestTimeout {
        limit: std::time::Duration,
    },
    /// The server did not complete the request within `--request-timeout`
    /// (503): it may or may not have taken effect.
    Overdue {
        limit: std::time::Duration,
    },
    /// A foreign `Host` or `Origin` ([`super::origin`]).
    Site(SiteRefusal),
    /// A line of a streamed body (an import) over `--max-body-bytes` (413).
    LineTooLong {
        limit: usize,
    },
    /// A streamed body left idle longer than `--request-timeout` (408).
    BodyStalled {
        idle: std::time::Duration,
    },
    /// An import refused at one of its lines: that line's error, with its
    /// number. The lines before it were applied (`imported` keys), nothing
    /// from it on; the rest of the body is not read.
    AtLine {
        line: u64,
        imported: u64,
        error: Box<ApiError>,
    },
    /// A bug: work done for the request panicked (and was logged). Names
    /// what could not be done.
    Internal(&'static str),
}

/// The two forms of a 422's message: for the client, and for the server's
/// diagnostics.
#[derive(Debug)]
pub struct InvalidInput {
    detail: String,
    diagnostic: String,
}

impl ApiError {
    /// A 422 whose message quotes nothing the client sent.
    pub fn invalid(message: impl Into<String>) -> Self {
        let detail = message.into();
        ApiError::Invalid(InvalidInput {
            diagnostic: detail.clone(),
            detail,
        })
    }

    /// A 422 whose message quotes `input`, raw JSON text the client sent:
    /// `message` writes the message around what it is given, the input for
    /// the answer, its [`describe_json`] for the diagnostic.
    pub fn invalid_json_input(input: &str, message: impl Fn(&str) -> String) -> Self {
        ApiError::Invalid(InvalidInput {
            detail: message(input),
            diagnostic: message(&describe_json(input)),
        })
    }

    /// The same error with its 422 message placed: `context` (which holds
    /// nothing the client chose, such as `ops[3].`) before it. Other
    /// errors are returned unchanged.
    pub fn within(self, context: &str) -> Self {
        match self {
            ApiError::Invalid(InvalidInput { detail, diagnostic }) => {
                ApiError::Invalid(InvalidInput {
                    detail: format!("{context}{detail}"),
                    diagnostic: format!("{context}{diagnostic}"),
                })
            }
            other => other,
        }
    }

    /// A 422 with its message for the answer and, apart, for the
    /// diagnostics.
    pub fn invalid_with_diagnostic(detail: String, diagnostic: impl Into<String>) -> Self {
        ApiError::Invalid(InvalidInput {
            detail,
            diagnostic: diagnostic.into(),
        })
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::AtLine { error, .. } => error.status(),
            ApiError::LineTooLong { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyStalled { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::Auth(AuthError::Missing | AuthError::Unknown | AuthError::NoToken) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Auth(AuthError::Forbidden { .. }) | ApiError::Site(_) => {
                StatusCode::FORBIDDEN
            }
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::KeyNotFound | ApiError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::BackendUnavailable { .. }
            | ApiError::BackendTimedOut { .. }
            | ApiError::NotReplicated { .. }
            | ApiError::Overdue { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            ApiError::Store(e) => store_status(e),
        }
    }

    /// The message of the answer.
    pub(crate) fn detail(&self) -> String {
        match self {
            ApiError::AtLine {
                line,
                imported,
                error,
            } => at_line(*line, *imported, &error.detail()),
            ApiError::LineTooLong { limit } => format!(
                "the line is over the limit of {limit} bytes (--max-body-bytes); \
                 a line holds one key"
            ),
            ApiError::BodyStalled { idle } => format!(
                "no more of the request body arrived for {} s; the limit is set by \
                 --request-timeout",
                idle.as_secs()
            ),
            ApiError::MalformedJson(e) => format!("request body is not valid JSON: {e}"),
            ApiError::Invalid(invalid) => invalid.detail.clone(),
            // The seed's exact text: clients may compare it.
            ApiError::KeyNotFound => "Key not found".into(),
            ApiError::PayloadTooLarge { limit } => format!(
                "request body is over the limit of {limit} bytes; send a smaller value \
                 (the limit is set by --max-body-bytes)"
            ),
            ApiError::NoRoute { method, path } => {
                format!("Not Found: no route for {method} {path}")
            }
            ApiError::MethodNotAllowed {
                method,
                path,
                allowed,
            } => {
                format!("Method Not Allowed: {path} does not accept {method}; it accepts {allowed}")
            }
            ApiError::Store(StoreError::EmptyKey) => "field `key`: must not be empty".into(),
            ApiError::Store(e @ StoreError::KeyTooLong { .. }) => format!("field `key`: {e}"),
            ApiError::Store(e @ StoreError::InvalidNamespace { .. }) => {
                format!("field `namespace`: {e}")
            }
            ApiError::Store(e) => e.to_string(),
            ApiError::BackendUnavailable { detail } => format!(
                "the storage backend is unavailable ({detail}); \
                 retry in {BACKEND_RETRY_AFTER_SECS} s"
            ),
            ApiError::NotReplicated {
                confirmed,
                wanted,
                after,
            } => format!(
                "the write was applied on the Redis master, but only {confirmed} of the \
                 {wanted} replicas required (--redis-wait-replicas) confirmed it within {} ms: \
                 it is readable now and may be lost if that master fails before its replicas \
                 catch up. Retry in {BACKEND_RETRY_AFTER_SECS} s (a set or delete may be \
                 repeated safely; an increment would count twice: read the key first)",
                after.as_millis()
            ),
            ApiError::BackendTimedOut { after } => format!(
                "the storage backend did not answer within {} ms, so the request may or may \
                 not have taken effect; retry in {BACKEND_RETRY_AFTER_SECS} s",
                after.as_millis()
            ),
            ApiError::Unsupported {
                backend,
                capability,
            } => format!(
                "this server's storage backend ({backend}) does not support {capability}; \
                 run the server with --backend embedded for it"
            ),
            ApiError::Auth(e) => e.to_string(),
            ApiError::Site(refusal) => refusal.detail(),
            ApiError::Internal(what) => {
                format!("{what} failed on an internal error (logged by the server); retry")
            }
            ApiError::Overdue { limit } => format!(
                "the server could not complete the request within {} s, so it may or may not \
                 have taken effect; retry in {BACKEND_RETRY_AFTER_SECS} s (the limit is set by \
                 --request-timeout)",
                limit.as_secs()
            ),
            ApiError::RequestTimeout { limit } => format!(
                "the request took longer than {} s (sending its body included); \
                 the limit is set by --request-timeout",
                limit.as_secs()
            ),
            ApiError::RateLimited {
                namespace,
                retry_after_secs,
            } => {
                let scope = match namespace {
                    Some(ns) => format!("namespace {ns:?}"),
                    None => "the default namespace".into(),
                };
                rate_limited(&scope, *retry_after_secs)
            }
        }
    }
}

impl ApiError {
    /// The message as the server keeps it: built from the same parts as
    /// [`ApiError::detail`], with every part the client sent described
    /// instead of repeated.
    pub fn diagnostic(&self) -> String {
        match self {
            ApiError::AtLine {
                line,
                imported,
                error,
            } => at_line(*line, *imported, &error.diagnostic()),
            ApiError::MalformedJson(e) => {
                // Only the position, which the parser wrote: its messages
                // may quote the body.
                format!("request body is not valid JSON{}", position_of(e))
            }
            ApiError::Invalid(invalid) => invalid.diagnostic.clone(),
            ApiError::Site(refusal) => refusal.diagnostic(),
            ApiError::NoRoute { method, .. } => format!(
                "Not Found: no route for {} (the path left out)",
                method_label(method)
            ),
            ApiError::MethodNotAllowed { method, .. } => format!(
                "Method Not Allowed: the route does not accept {}",
                method_label(method)
            ),
            ApiError::Store(StoreError::InvalidNamespace { name, reason }) => format!(
                "field `namespace`: namespace ({}) {reason}; use 1 to 64 of A-Z a-z 0-9 _ . -",
                describe_text(name)
            ),
            ApiError::Store(StoreError::LimitReached { scope, limit }) => {
                StoreError::LimitReached {
                    scope: scope_without_name(scope),
                    limit: limit.clone(),
                }
                .to_string()
            }
            ApiError::Store(StoreError::TooLarge { scope, size, max }) => StoreError::TooLarge {
                scope: scope_without_name(scope),
                size: *size,
                max: *max,
            }
            .to_string(),
            ApiError::Auth(AuthError::Forbidden { action, scope }) => AuthError::Forbidden {
                action,
                scope: scope_without_name(scope),
            }
            .to_string(),
            ApiError::RateLimited {
                namespace,
                retry_after_secs,
            } => {
                let scope = match namespace {
                    Some(_) => "a named namespace",
                    None => "the default namespace",
                };
                rate_limited(scope, *retry_after_secs)
            }
            // The rest holds nothing the client sent: sizes, limits, the
            // server's own messages.
            ApiError::KeyNotFound
            | ApiError::LineTooLong { .. }
            | ApiError::BodyStalled { .. }
            | ApiError::PayloadTooLarge { .. }
            | ApiError::RequestTimeout { .. }
            | ApiError::Overdue { .. }
            | ApiError::Internal(_)
            | ApiError::BackendUnavailable { .. }
            | ApiError::BackendTimedOut { .. }
            | ApiError::NotReplicated { .. }
            | ApiError::Unsupported { .. }
            | ApiError::Auth(AuthError::Missing | AuthError::Unknown | AuthError::NoToken)
            | ApiError::Store(
                StoreError::EmptyKey
                | StoreError::KeyTooLong { .. }
                | StoreError::LogUnavailable(_)
                | StoreError::NotAnInteger { .. }
                | StoreError::ConditionFailed { .. },
            ) => self.detail(),
            // The stored value and the increment stay out.
            ApiError::Store(StoreError::Overflow { .. }) => {
                "the counter would pass the range of a 64-bit signed integer".into()
            }
            // The key stays out.
            ApiError::Store(StoreError::Aborted { index, cause, .. }) => format!(
                "op {index} of a transaction failed, so nothing in it was applied: {}",
                ApiError::Store((**cause).clone()).diagnostic()
            ),
        }
    }
}

/// The message of an import refused at `line`.
fn at_line(line: u64, imported: u64, detail: &str) -> String {
    format!(
        "line {line}: {detail}; the lines before it were applied ({imported} keys imported), \
         nothing from it on: fix it and import from line {line}"
    )
}

/// The status of an error of the store.
fn store_status(e: &StoreError) -> StatusCode {
    match e {
        StoreError::InvalidNamespace { .. }
        | StoreError::EmptyKey
        | StoreError::KeyTooLong { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        StoreError::LimitReached { .. } | StoreError::TooLarge { .. } => {
            StatusCode::INSUFFICIENT_STORAGE
        }
        StoreError::LogUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        StoreError::NotAnInteger { .. } | StoreError::Overflow { .. } => StatusCode::CONFLICT,
        StoreError::ConditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
        // A transaction answers as its failed op would have alone.
        StoreError::Aborted { cause, .. } => store_status(cause),
    }
}

/// A value's tag as HTTP writes an entity tag: quoted hex.
pub fn etag_header(tag: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{tag:016x}\"")).expect("hex is a valid header")
}

fn rate_limited(scope: &str, retry_after_secs: u64) -> String {
    format!("too many requests for {scope}: over its rate limit; retry in {retry_after_secs} s")
}

/// A description of raw JSON text a client sent, never the text itself:
/// its type and length (`true`, `false` and `null` are shown as they are).
pub fn describe_json(raw: &str) -> String {
    let raw = raw.trim();
    let chars = raw.chars().count();
    match raw.as_bytes().first() {
        Some(b'"') => format!("a JSON string of {} characters", chars.saturating_sub(2)),
        Some(b'{') => format!("a JSON object of {chars} characters"),
        Some(b'[') => format!("a JSON array of {chars} characters"),
        Some(b'-' | b'0'..=b'9') => format!("a JSON number of {chars} characters"),
        _ if matches!(raw, "true" | "false" | "null") => raw.to_owned(),
        _ => format!("JSON text of {chars} characters"),
    }
}

/// A description of a text a client sent (a namespace name, a query
/// value), never the text itself.
pub fn describe_text(text: &str) -> String {
    format!("a string of {} characters", text.chars().count())
}

/// A scope of an error (`the store`, `the default namespace`, or
/// `namespace "NAME"` as the store and the token checks write it) without
/// the namespace's name, which the client chose.
fn scope_without_name(scope: &str) -> String {
    match scope.strip_prefix("namespace ") {
        Some(_) => "a named namespace".into(),
        None => scope.to_owned(),
    }
}

/// `at line L column C` at the end of a parser's message, or nothing.
fn position_of(message: &str) -> String {
    let Some(at) = message.rfind(" at line ") else {
        return String::new();
    };
    let position = &message[at..];
    let shape_ok = position
        .trim_start_matches(" at line ")
        .split(" column ")
        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if shape_ok {
        position.to_owned()
    } else {
        String::new()
    }
}

/// A method as the diagnostics name it: one of the standard ones, else
/// `OTHER` (an extension method is any token the client chose).
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    KNOWN
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("OTHER")
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Store(e)
    }
}

impl From<BackendError> for ApiError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Store(e) => ApiError::Store(e),
            BackendError::Unavailable { detail } => ApiError::BackendUnavailable { detail },
            BackendError::TimedOut { after } => ApiError::BackendTimedOut { after },
            BackendError::NotReplicated {
                confirmed,
                wanted,
                after,
            } => ApiError::NotReplicated {
                confirmed,
                wanted,
                after,
            },
            BackendError::Unsupported {
                backend,
                capability,
            } => ApiError::Unsupported {
                backend,
                capability,
            },
        }
    }
}

impl From<RateLimited> for ApiError {
    fn from(refusal: RateLimited) -> Self {
        ApiError::RateLimited {
            namespace: refusal.namespace,
            retry_after_secs: refusal.retry_after_secs,
        }
    }
}

impl ApiError {
    /// The answer: the status, `{"detail": ...}`, and the headers that say
    /// what to do (`WWW-Authenticate`, `Retry-After`, `Connection: close`).
    pub fn into_response(self) -> Response {
        if let ApiError::AtLine { .. } = self {
            return self.into_line_response();
        }
        let body = ErrorBody {
            detail: self.detail().into(),
        };
        let mut response = reply::json(&body);
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        match self {
            ApiError::Auth(AuthError::Missing | AuthError::Unknown | AuthError::NoToken) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::RateLimited {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            ApiError::Store(StoreError::LogUnavailable(_)) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(LOG_RETRY_AFTER_SECS));
            }
            ApiError::BackendUnavailable { .. }
            | ApiError::BackendTimedOut { .. }
            | ApiError::NotReplicated { .. }
            | ApiError::Overdue { .. } => {
                let retry_after = HeaderValue::from(BACKEND_RETRY_AFTER_SECS);
                headers.insert(header::RETRY_AFTER, retry_after);
            }
            // The rest of the body was not read: the connection cannot
            // carry another request, and the client must not try.
            ApiError::PayloadTooLarge { .. }
            | ApiError::RequestTimeout { .. }
            | ApiError::LineTooLong { .. }
            | ApiError::BodyStalled { .. } => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            ApiError::Store(StoreError::ConditionFailed { current: Some(tag) }) => {
                headers.insert(header::ETAG, etag_header(tag));
            }
            ApiError::Store(StoreError::Aborted { cause, .. }) => {
                if let StoreError::ConditionFailed { current: Some(tag) } = *cause {
                    headers.insert(header::ETAG, etag_header(tag));
                }
            }
            ApiError::MethodNotAllowed { allowed, .. } => {
                if let Ok(allowed) = HeaderValue::from_str(&allowed) {
                    headers.insert(header::ALLOW, allowed);
                }
            }
            _ => {}
        }
        response
    }
}

impl ApiError {
    /// Whether this is a streamed body that stalled (at a line or not).
    pub fn is_stalled_body(&self) -> bool {
        match self {
            ApiError::BodyStalled { .. } => true,
            ApiError::AtLine { error, .. } => error.is_stalled_body(),
            _ => false,
        }
    }

    /// An import's refusal at a line: its error's answer (status and
    /// headers), with the line's message, on a connection that then closes,
    /// since the rest of the body was not read.
    fn into_line_response(self) -> Response {
        let detail = self.detail();
        let ApiError::AtLine { error, .. } = self else {
            unreachable!("called for AtLine only")
        };
        let mut response = error.into_response();
        let (mut parts, _) = response.into_parts();
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response = Response::from_parts(
            parts,
            reply::json(&ErrorBody {
                detail: detail.into(),
            })
            .into_body(),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend out of reach or too slow is the server's trouble, and a
    /// passing one: 503 and when to retry, never 500.
    #[test]
    fn a_backend_out_of_reach_or_slow_is_503_with_retry_after() {
        let cases = [
            (
                BackendError::Unavailable {
                    detail: "connection refused".into(),
                },
                "the storage backend is unavailable (connection refused); retry in 1 s",
            ),
            (
                BackendError::TimedOut {
                    after: std::time::Duration::from_millis(250),
                },
                "the storage backend did not answer within 250 ms, so the request may or may \
                 not have taken effect; retry in 1 s",
            ),
        ];
        for (refusal, detail) in cases {
            let error = ApiError::from(refusal);
            assert_eq!(error.detail(), detail);
            let response = error.into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        }
        let unsupported = ApiError::from(BackendError::Unsupported {
            backend: "memory",
            capability: "compaction",
        });
        assert_eq!(
            unsupported.detail(),
            "this server's storage backend (memory) does not support compaction; \
             run the server with --backend embedded for it"
        );
        assert_eq!(unsupported.status(), StatusCode::NOT_IMPLEMENTED);
    }

    #[test]
    fn descriptions_say_the_shape_never_the_text() {
        assert_eq!(
            describe_json("\"a;SECRET\""),
            "a JSON string of 8 characters"
        );
        assert_eq!(describe_json("{\"s\":1}"), "a JSON object of 7 characters");
        assert_eq!(describe_json("[1]"), "a JSON array of 3 characters");
        assert_eq!(describe_json("-12"), "a JSON number of 3 characters");
        assert_eq!(describe_json("true"), "true");
        assert_eq!(describe_json("nulls"), "JSON text of 5 characters");
        assert_eq!(describe_text("é;x"), "a string of 3 characters");
        assert_eq!(method_label("GET"), "GET");
        assert_eq!(method_label("SECRET"), "OTHER");
    }

    #[test]
    fn every_diagnostic_leaves_the_input_out() {
        let secret = "SECRET";
        let errors = [
            ApiError::invalid_json_input("\"SECRET\"", |got| format!("got {got}")),
            ApiError::MalformedJson("expected `:` at line 1 column 9".into()),
            ApiError::NoRoute {
                method: "SECRET".into(),
                path: "/SECRET".into(),
            },
            ApiError::MethodNotAllowed {
                method: "GET".into(),
                path: "/get/SECRET".into(),
                allowed: "DELETE".into(),
            },
            ApiError::Store(StoreError::InvalidNamespace {
                name: "SECRET;x".into(),
                reason: "has a character outside the allowed set",
            }),
            ApiError::Store(StoreError::LimitReached {
                scope: "namespace \"SECRET\"".into(),
                limit: "3 keys".into(),
            }),
            ApiError::Auth(AuthError::Forbidden {
                action: "read",
                scope: "namespace \"SECRET\"".into(),
            }),
            ApiError::RateLimited {
                namespace: Some("SECRET".into()),
                retry_after_secs: 2,
            },
        ];
        for error in errors {
            let diagnostic = error.diagnostic();
            assert!(!diagnostic.contains(secret), "{error:?}: {diagnostic}");
        }
        let malformed = ApiError::MalformedJson("expected `:` at line 1 column 9".into());
        assert_eq!(
            malformed.diagnostic(),
            "request body is not valid JSON at line 1 column 9"
        );
    }
}
