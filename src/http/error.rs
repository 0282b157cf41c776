//! The one place where errors become HTTP answers.
//!
//! Every error is answered as JSON in the seed's shape, `{"detail": "..."}`,
//! with a message that says what was wrong and, where it helps, what to do.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::AuthError;
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    /// The request body is not JSON at all.
    MalformedJson(String),
    /// Well-formed, but a field is missing or has the wrong type or value.
    Invalid(String),
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
    },
    Store(StoreError),
    /// 401 (no or unknown token) or 403 (not this token's business).
    Auth(AuthError),
    RateLimited {
        namespace: Option<String>,
        retry_after_secs: u64,
    },
    RequestTimeout {
        limit: std::time::Duration,
    },
    /// A bug: work done for the request panicked (and was logged). Names
    /// what could not be done.
    Internal(&'static str),
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::Invalid(message.into())
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) => StatusCode::BAD_REQUEST,
            ApiError::Auth(AuthError::Missing | AuthError::Unknown) => StatusCode::UNAUTHORIZED,
            ApiError::Auth(AuthError::Forbidden { .. }) => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::KeyNotFound | ApiError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Store(e) => match e {
                StoreError::InvalidNamespace { .. }
                | StoreError::EmptyKey
                | StoreError::KeyTooLong { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                StoreError::LimitReached { .. } | StoreError::TooLarge { .. } => {
                    StatusCode::INSUFFICIENT_STORAGE
                }
                StoreError::LogUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::MalformedJson(e) => format!("request body is not valid JSON: {e}"),
            ApiError::Invalid(message) => message.clone(),
            // The seed's exact text: clients may compare it.
            ApiError::KeyNotFound => "Key not found".into(),
            ApiError::PayloadTooLarge { limit } => format!(
                "request body is over the limit of {limit} bytes; send a smaller value \
                 (the limit is set by --max-body-bytes)"
            ),
            ApiError::NoRoute { method, path } => {
                format!("Not Found: no route for {method} {path}")
            }
            ApiError::MethodNotAllowed { method, path } => {
                format!("Method Not Allowed: {path} does not accept {method}")
            }
            ApiError::Store(StoreError::EmptyKey) => "field `key`: must not be empty".into(),
            ApiError::Store(e @ StoreError::KeyTooLong { .. }) => format!("field `key`: {e}"),
            ApiError::Store(e @ StoreError::InvalidNamespace { .. }) => {
                format!("field `namespace`: {e}")
            }
            ApiError::Store(e) => e.to_string(),
            ApiError::Auth(e) => e.to_string(),
            ApiError::Internal(what) => {
                format!("{what} failed on an internal error (logged by the server); retry")
            }
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
                format!(
                    "too many requests for {scope}: over its rate limit; retry in {retry_after_secs} s"
                )
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Store(e)
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::invalid(format!("query string: {}", e.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::invalid(format!("path: {}", e.body_text()))
    }
}

impl ApiError {
    /// Maps a failure to read the body; `limit` is the configured maximum.
    pub fn from_body_error(e: &axum::Error, limit: usize) -> Self {
        let too_large = std::error::Error::source(e)
            .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::MalformedJson(format!("cannot read the body: {e}"))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "detail": self.detail() });
        let mut response = (self.status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::Auth(AuthError::Missing | AuthError::Unknown) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::RateLimited {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            // The rest of the body was not read: the connection cannot
            // carry another request, and the client must not try.
            ApiError::PayloadTooLarge { .. } | ApiError::RequestTimeout { .. } => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}
