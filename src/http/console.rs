//! `GET /ui`: the web console, plain HTML, CSS and JavaScript compiled into
//! the binary from `assets/ui/` and served with no network access and no
//! build step. `/` redirects to it.
//!
//! The console's own files need no token: they hold no data. Every call the
//! console makes to the API carries the token typed into its token field.

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::error::ApiError;

/// Where the console lives.
const PATH: &str = "/ui";

/// Only this origin's files, no inline script or style, and no frame: the
/// console never loads anything from another host, and a mistake that tried
/// to would show as an error in the browser's console.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../../assets/ui/index.html");

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// `(name, content type, bytes)` of every file under `/ui/`.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "style.css",
        CSS,
        include_bytes!("../../assets/ui/style.css"),
    ),
    ("app.js", JS, include_bytes!("../../assets/ui/app.js")),
    ("api.js", JS, include_bytes!("../../assets/ui/api.js")),
    ("format.js", JS, include_bytes!("../../assets/ui/format.js")),
    ("charts.js", JS, include_bytes!("../../assets/ui/charts.js")),
    ("live.js", JS, include_bytes!("../../assets/ui/live.js")),
    (
        "namespaces.js",
        JS,
        include_bytes!("../../assets/ui/namespaces.js"),
    ),
    ("keys.js", JS, include_bytes!("../../assets/ui/keys.js")),
    ("browse.js", JS, include_bytes!("../../assets/ui/browse.js")),
    (
        "favicon.svg",
        SVG,
        include_bytes!("../../assets/ui/favicon.svg"),
    ),
];

/// `/`, `/ui`, `/ui/` and `/ui/{file}`; stateless, so it merges into any
/// router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary(PATH) }))
        .route(PATH, get(index))
        .route("/ui/", get(index))
        .route("/ui/{file}", get(file))
}

async fn index() -> Response {
    respond(HTML, INDEX.as_bytes())
}

async fn file(Path(name): Path<String>) -> Response {
    if name == "index.html" {
        return respond(HTML, INDEX.as_bytes());
    }
    match FILES.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, bytes)) => respond(content_type, bytes),
        None => ApiError::NoRoute {
            method: "GET".into(),
            path: format!("{PATH}/{name}"),
        }
        .into_response(),
    }
}

fn respond(content_type: &'static str, bytes: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Revalidated each time: the files are small, and a new binary
            // must never run with the previous one's scripts.
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        bytes,
    )
        .into_response()
}
