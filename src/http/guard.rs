//! Who may make a request: where it comes from (the `Host` and `Origin`
//! checks of [`super::origin`], first), and the bearer token of each request
//! checked against the token file. How often is [`crate::rate_limit`]'s.
//!
//! Handlers take a [`Caller`] and, once they know the namespace a request
//! touches (from `?ns=`, the body, or the path), call
//! [`HandlerContext::admit`](super::HandlerContext::admit), which checks the token's grants
//! and the namespace's rate limit.

use std::sync::Arc;

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
