//! The HTTP API: the seed's routes, wire-compatible with PyKV.
//!
//! - [`handlers`]: one thin function per route;
//! - [`set_request`]: parsing and validation of `POST /set` bodies;
//! - [`error`]: the one place where errors become statuses and JSON.

mod error;
mod handlers;
mod set_request;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

pub use error::ApiError;
pub use set_request::MAX_TTL_SECS;

use crate::backend::KvBackend;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub backend: Arc<dyn KvBackend>,
    pub max_body_bytes: usize,
}

pub fn router(state: AppState) -> Router {
    let body_limit = DefaultBodyLimit::max(state.max_body_bytes);
    Router::new()
        .route("/set", post(handlers::set))
        // A wildcard, so that an unencoded `/` inside a key works too.
        .route("/get/{*key}", get(handlers::get))
        .route("/get/", get(handlers::empty_key))
        .route("/delete/{*key}", delete(handlers::delete))
        .route("/delete/", delete(handlers::empty_key))
        .route("/namespaces", get(handlers::list_namespaces))
        .route("/namespaces/{ns}/keys", get(handlers::namespace_keys))
        .route("/namespaces/{ns}", delete(handlers::clear_namespace))
        .route("/stats", get(handlers::stats))
        .route("/health", get(handlers::health))
        .route("/compact", post(handlers::compact))
        .fallback(handlers::no_route)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(body_limit)
        .with_state(state)
}
