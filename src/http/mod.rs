//! The HTTP API: the seed's routes, wire-compatible with PyKV.
//!
//! - [`hot`]: the service in front of the router, which answers plain
//!   `GET /get/{key}` and `POST /set` requests without it;
//! - [`handlers`]: one thin function per route;
//! - [`quota`]: `GET /quota` and `PUT /quota`;
//! - [`set_request`]: parsing and validation of `POST /set` bodies;
//! - [`error`]: the one place where errors become statuses and JSON;
//! - [`origin`]: the `Host` and `Origin` checks, first on every request
//!   (cross-site requests, DNS rebinding);
//! - [`guard`]: the middleware running those checks, and the bearer token
//!   of each request ([`Caller`]); rate limits are [`crate::rate_limit`]'s;
//! - [`cors`]: cross-origin requests, closed unless `--cors-origin` names
//!   origins;
//! - [`console`]: the web console (`/ui`);
//! - operability: [`observe`] (request counters, latency histograms, recent
//!   errors, and the middleware feeding them), [`metrics`] (`/metrics`),
//!   [`performance`] (`/performance`), [`openapi`] (`/openapi.json`, from
//!   the types of [`crate::api`]) and [`docs`] (`/docs`, offline);
//! - [`views`]: the server-wide figures, gathered off the request workers.

mod console;
mod cors;
mod docs;
mod error;
mod guard;
mod handlers;
pub mod hot;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod origin;
pub mod performance;
mod quota;
pub(crate) mod set_request;
pub mod views;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Path, State};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

pub use error::ApiError;
pub use guard::Caller;
pub use observe::Observer;
pub use set_request::MAX_TTL_SECS;
pub use views::ServerViews;

use crate::auth::{Access, Authenticator, Grants};
use crate::backend::Backend;
use crate::rate_limit::RateLimits;

/// What every handler shares.
///
/// Why one `Arc` around it all: axum clones the state for every request,
/// and one reference count is cheaper than one per field.
#[derive(Clone)]
pub struct AppState(Arc<HandlerContext>);

impl AppState {
    pub fn new(shared: HandlerContext) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = HandlerContext;
    fn deref(&self) -> &HandlerContext {
        &self.0
    }
}

pub struct HandlerContext {
    pub backend: Arc<Backend>,
    pub max_body_bytes: usize,
    pub auth: Arc<Authenticator>,
    pub rate_limits: Arc<RateLimits>,
    /// Origins allowed to call from a browser (`--cors-origin`); none by
    /// default.
    pub cors_origins: Vec<String>,
    /// The `Host` and `Origin` checks run first on every request.
    pub sites: Arc<origin::SiteCheck>,
    /// How long a request may take, its body included (`--request-timeout`).
    pub request_timeout: Duration,
    /// The server-wide figures, shared by the requests that need them.
    pub views: Arc<ServerViews>,
    /// Namespaces given their own series in `/metrics`
    /// (`--metrics-namespace-limit`).
    pub metrics_namespace_limit: usize,
}

impl HandlerContext {
    /// Whether the caller may touch `namespace` with `access`, and whether
    /// the namespace is within its rate limit.
    pub fn admit(
        &self,
        caller: &Grants,
        namespace: Option<&str>,
        access: Access,
    ) -> Result<(), ApiError> {
        caller.check(namespace, access).map_err(ApiError::Auth)?;
        Ok(self.rate_limits.check(namespace)?)
    }
}

impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

impl FromRef<OpsState> for Arc<Authenticator> {
    fn from_ref(state: &OpsState) -> Self {
        state.auth.clone()
    }
}

/// What the operability routes share: the store's figures and the
/// request counters.
#[derive(Clone)]
struct OpsState {
    views: Arc<ServerViews>,
    metrics_namespace_limit: usize,
    observer: Arc<Observer>,
    auth: Arc<Authenticator>,
}

/// The server's service: the hot path, and the router behind it.
pub fn service(state: AppState) -> hot::Service {
    let observer = Observer::new();
    let router = router(state.clone(), observer.clone());
    hot::Service::new(router, state, observer)
}

fn router(state: AppState, observer: Arc<Observer>) -> Router {
    let ops = OpsState {
        views: state.views.clone(),
        metrics_namespace_limit: state.metrics_namespace_limit,
        observer: observer.clone(),
        auth: state.auth.clone(),
    };
    let body_limit = DefaultBodyLimit::max(state.max_body_bytes);
    let cors_origins = state.cors_origins.clone();
    let sites = state.sites.clone();
    let operability = Router::new()
        .route("/performance", get(performance_handler))
        .route("/performance/recent-errors", get(recent_errors_handler))
        .route("/metrics", get(metrics_handler))
        .route("/openapi.json", get(openapi_handler))
        .route("/docs", get(docs_index_handler))
        .route("/docs/{file}", get(docs_file_handler))
        .with_state(ops);
    let router = Router::new()
        .route("/set", post(handlers::set))
        // A wildcard, so that an unencoded `/` inside a key works too.
        .route("/get/{*key}", get(handlers::get))
        .route("/delete/{*key}", delete(handlers::delete))
        .route("/keys", get(handlers::list_keys))
        .route("/namespaces", get(handlers::list_namespaces))
        .route("/namespaces/{ns}/keys", get(handlers::namespace_keys))
        .route("/namespaces/{ns}", delete(handlers::clear_namespace))
        .route("/stats", get(handlers::stats))
        .route("/health", get(handlers::health))
        .route("/compact", post(handlers::compact))
        .route("/quota", get(quota::get_quota).put(quota::put_quota))
        .fallback(handlers::no_route)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(body_limit)
        .with_state(state)
        .merge(operability)
        // The web console (`/ui`, and `/` redirecting to it).
        .merge(console::router());
    let router = match cors::layer(&cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    // Outside CORS, so that a foreign page's preflight is refused too.
    let router = router.layer(middleware::from_fn_with_state(sites, guard::check_sites));
    // Around every route and the fallbacks: counts and times each request
    // under its route template.
    router.layer(middleware::from_fn_with_state(observer, observe::track))
}

#[utoipa::path(
    get, path = "/performance", tag = "operability",
    responses((status = 200, description = "Request counts, error rate and latencies since the start", body = crate::api::Performance))
)]
async fn performance_handler(State(ops): State<OpsState>, Caller(caller): Caller) -> Response {
    if let Err(e) = caller.require_admin("/performance") {
        return ApiError::Auth(e).into_response();
    }
    axum::Json(performance::performance(&ops.observer)).into_response()
}

#[utoipa::path(
    get, path = "/performance/recent-errors", tag = "operability",
    responses((status = 200, description = "The last answers with a status of 400 or more, oldest first (at most 100)", body = crate::api::RecentErrors))
)]
async fn recent_errors_handler(State(ops): State<OpsState>, Caller(caller): Caller) -> Response {
    if let Err(e) = caller.require_admin("/performance/recent-errors") {
        return ApiError::Auth(e).into_response();
    }
    axum::Json(performance::recent_errors(&ops.observer)).into_response()
}

#[utoipa::path(
    get, path = "/metrics", tag = "operability",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain; version=0.0.4"))
)]
async fn metrics_handler(State(ops): State<OpsState>, Caller(caller): Caller) -> Response {
    if let Err(e) = caller.require_admin("/metrics") {
        return ApiError::Auth(e).into_response();
    }
    let stats = match ops.views.stats().await {
        Ok(stats) => stats,
        Err(e) => return e.into_response(),
    };
    let observer = ops.observer.clone();
    let limit = ops.metrics_namespace_limit;
    let render = move || metrics::render(&observer, &stats, limit);
    match views::off_worker("rendering /metrics", render).await {
        Ok(text) => metrics::response(text),
        Err(e) => e.into_response(),
    }
}

#[utoipa::path(
    get, path = "/openapi.json", tag = "operability",
    responses((status = 200, description = "This document", body = Object, content_type = "application/json"))
)]
async fn openapi_handler() -> Response {
    axum::Json(openapi::document()).into_response()
}

#[utoipa::path(
    get, path = "/docs", tag = "operability",
    responses((status = 200, description = "Interactive documentation (Swagger UI), served with no network", body = String, content_type = "text/html"))
)]
async fn docs_index_handler() -> Response {
    docs::index()
}

#[utoipa::path(
    get, path = "/docs/{file}", tag = "operability",
    params(("file" = String, Path, description = "A file of the documentation page, such as `swagger-ui.css`")),
    responses(
        (status = 200, description = "The file", body = String, content_type = "text/plain"),
        (status = 404, description = "No such file", body = crate::api::ErrorBody),
    )
)]
async fn docs_file_handler(Path(file): Path<String>) -> Response {
    docs::file(&file)
}
