//! Cross-origin requests: closed unless origins are named.
//!
//! Without `--cors-origin`, no answer carries `Access-Control-Allow-Origin`
//! and preflights are refused, so a web page on another site cannot call
//! this server from a visitor's browser. The console at `/ui` is served by
//! the server itself (same origin) and needs no CORS.
//!
//! Reading is not all: a request from a page of another origin is refused
//! outright (403) by [`super::origin`] before it reaches this layer, so this
//! layer only adds the headers of the origins it allows.

use axum::http::{HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The CORS layer for `origins`, or `None` when CORS stays closed.
pub fn layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
            .collect();
        AllowOrigin::list(values)
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .expose_headers([header::RETRY_AFTER]),
    )
}
