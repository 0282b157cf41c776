//! Who may make a request, and how often: where it comes from (the `Host`
//! and `Origin` checks of [`super::origin`], first), the bearer token of
//! each request checked against the token file, and the per-namespace rate
//! limits.
//!
//! Handlers take a [`Caller`] and, once they know the namespace a request
//! touches (from `?ns=`, the body, or the path), call
//! [`AppState::admit`](super::AppState::admit), which checks both.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{FromRef, FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::origin::SiteCheck;
use crate::auth::{Authenticator, Grants};

/// The middleware in front of every route of the router: refuses a foreign
/// `Host` or `Origin` (403) before anything is read or changed. The hot
/// path runs the same [`SiteCheck::check`].
pub async fn check_sites(
    State(sites): State<Arc<SiteCheck>>,
    request: Request,
    next: Next,
) -> Response {
    match sites.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// The grants of the request's token (or [`Grants::Open`] on a server
/// without tokens). Missing or unknown tokens are refused with 401 here,
/// before anything else is read.
pub struct Caller(pub Grants);

impl<S> FromRequestParts<S> for Caller
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let auth = Arc::<Authenticator>::from_ref(state);
        let header = parts.headers.get(AUTHORIZATION).map(|v| v.as_bytes());
        auth.authenticate(header)
            .map(Caller)
            .map_err(ApiError::Auth)
    }
}

/// Requests per second allowed to a namespace, with a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// Token buckets per namespace.
///
/// Why one mutex around the buckets: the check is a few arithmetic
/// operations, and it is only taken when a limit is configured at all.
#[derive(Default)]
pub struct RateLimits {
    default: Option<Rate>,
    overrides: HashMap<String, Rate>,
    buckets: Mutex<HashMap<Option<Box<str>>, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before full ones are dropped (a full bucket is the same
/// as no bucket), so names never seen again cannot grow the map forever.
const MAX_BUCKETS: usize = 100_000;

impl RateLimits {
    pub fn new(default: Option<Rate>, overrides: HashMap<String, Rate>) -> Self {
        RateLimits {
            default,
            overrides,
            buckets: Mutex::default(),
        }
    }

    fn rate_of(&self, namespace: Option<&str>) -> Option<Rate> {
        namespace
            .and_then(|ns| self.overrides.get(ns))
            .copied()
            .or(self.default)
    }

    /// Takes one request from the namespace's bucket; when it is empty,
    /// says in how many whole seconds the next request will be allowed.
    pub fn check(&self, namespace: Option<&str>) -> Result<(), ApiError> {
        let Some(rate) = self.rate_of(namespace) else {
            return Ok(());
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, b| refill(b, rate, now) < rate.burst);
        }
        let bucket = buckets.entry(namespace.map(Into::into)).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
        });
        let tokens = refill(bucket, rate, now);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            return Ok(());
        }
        let wait = (1.0 - tokens) / rate.per_second;
        Err(ApiError::RateLimited {
            namespace: namespace.map(str::to_owned),
            retry_after_secs: wait.ceil().max(1.0) as u64,
        })
    }
}

/// Tokens in `bucket` at `now`.
fn refill(bucket: &Bucket, rate: Rate, now: Instant) -> f64 {
    let elapsed = now.duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * rate.per_second).min(rate.burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals_with_retry_after() {
        let limits = RateLimits::new(
            Some(Rate {
                per_second: 0.5,
                burst: 3.0,
            }),
            HashMap::new(),
        );
        for _ in 0..3 {
            limits.check(Some("a")).unwrap();
        }
        match limits.check(Some("a")) {
            Err(ApiError::RateLimited {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, 2),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Another namespace has its own bucket.
        limits.check(Some("b")).unwrap();
    }

    #[test]
    fn overrides_win_and_no_rate_means_no_limit() {
        let mut overrides = HashMap::new();
        overrides.insert(
            "vip".to_string(),
            Rate {
                per_second: 1000.0,
                burst: 1000.0,
            },
        );
        let limits = RateLimits::new(None, overrides);
        for _ in 0..500 {
            limits.check(Some("vip")).unwrap();
            limits.check(Some("other")).unwrap();
        }
    }
}
