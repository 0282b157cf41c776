//! The web console: `GET /ui` (also `/ui/`), its files under `/ui/{file}`,
//! and `/` redirecting to it. Plain HTML, CSS and JavaScript compiled into
//! the binary from `assets/ui/` and served with no network access and no
//! build step.
//!
//! The console's own files need no token: they hold no data. Every call the
//! console makes to the API carries the token typed into its token field.

use hyper::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY as CSP, CONTENT_TYPE, HeaderValue, LOCATION,
    REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use hyper::{Method, StatusCode};

use super::{Needs, Operation};
use crate::auth::Grants;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;

/// Where the console lives.
const PATH: &str = "/ui";

/// Only this origin's files, no inline script or style, and no frame: the
/// console never loads anything from another host, and a mistake that tried
/// to would show as an error in the browser's console.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../../../assets/ui/index.html");

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// `(name, content type, bytes)` of every file under `/ui/`.
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "style.css",
        CSS,
        include_bytes!("../../../assets/ui/style.css"),
    ),
    ("app.js", JS, include_bytes!("../../../assets/ui/app.js")),
    ("api.js", JS, include_bytes!("../../../assets/ui/api.js")),
    (
        "format.js",
        JS,
        include_bytes!("../../../assets/ui/format.js"),
    ),
    (
        "charts.js",
        JS,
        include_bytes!("../../../assets/ui/charts.js"),
    ),
    ("live.js", JS, include_bytes!("../../../assets/ui/live.js")),
    (
        "namespaces.js",
        JS,
        include_bytes!("../../../assets/ui/namespaces.js"),
    ),
    ("keys.js", JS, include_bytes!("../../../assets/ui/keys.js")),
    (
        "browse.js",
        JS,
        include_bytes!("../../../assets/ui/browse.js"),
    ),
    ("feed.js", JS, include_bytes!("../../../assets/ui/feed.js")),
    (
        "favicon.svg",
        SVG,
        include_bytes!("../../../assets/ui/favicon.svg"),
    ),
];

/// `GET /`: to the console.
pub struct Home;

impl Operation for Home {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/"];
    const PUBLIC: bool = true;

    fn parse(_request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(Home)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Nothing
    }

    async fn apply(self, _ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let mut response = reply::bytes(Vec::new(), &[]);
        *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        (response.headers_mut()).insert(LOCATION, HeaderValue::from_static(PATH));
        Ok(response)
    }
}

/// `GET /ui`: the console's page.
pub struct Console;

impl Operation for Console {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &[PATH, "/ui/"];
    const PUBLIC: bool = true;

    fn parse(_request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(Console)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Nothing
    }

    async fn apply(self, _ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        Ok(respond(HTML, INDEX.as_bytes()))
    }
}

/// `GET /ui/{file}`: one of the console's files.
pub struct ConsoleFile {
    name: String,
}

impl Operation for ConsoleFile {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/ui/{file}"];
    const PUBLIC: bool = true;

    fn parse(request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(ConsoleFile {
            name: request.param("file")?.into_owned(),
        })
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Nothing
    }

    async fn apply(self, _ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        if self.name == "index.html" {
            return Ok(respond(HTML, INDEX.as_bytes()));
        }
        match FILES.iter().find(|(file, _, _)| *file == self.name) {
            Some((_, content_type, bytes)) => Ok(respond(content_type, bytes)),
            None => Err(ApiError::NoRoute {
                method: "GET".into(),
                path: format!("{PATH}/{}", self.name),
            }),
        }
    }
}

fn respond(content_type: &'static str, bytes: &'static [u8]) -> Response {
    reply::bytes(
        bytes,
        &[
            (CONTENT_TYPE, content_type),
            // Revalidated each time: the files are small, and a new binary
            // must never run with the previous one's scripts.
            (CACHE_CONTROL, "no-cache"),
            (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (CSP, CONTENT_SECURITY_POLICY),
            (REFERRER_POLICY, "no-referrer"),
        ],
    )
}
