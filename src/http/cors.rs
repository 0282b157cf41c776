//! Cross-origin requests: closed unless origins are named.
//!
//! Without `--cors-origin`, no answer carries `Access-Control-Allow-Origin`
//! and preflights are not answered (405, as any `OPTIONS`), so a web page
//! on another site cannot call this server from a visitor's browser. The
//! console at `/ui` is served by the server itself (same origin) and needs
//! no CORS.
//!
//! Reading is not all: a request from a page of another origin is refused
//! outright (403) by [`super::origin`] before this stage, so this stage
//! only answers the preflights of the origins it allows and adds their
//! headers to answers.
//!
//! Why by hand rather than tower-http's `CorsLayer`: that layer wraps a
//! service from outside, before anything of ours runs, and would answer a
//! foreign page's preflight before the site check could refuse it. Here
//! CORS is one stage of the pipeline ([`super::pipeline`]), after the site
//! check, and the rules of a fixed list of origins without credentials are
//! these few lines.

use hyper::HeaderMap;
use hyper::Method;
use hyper::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, HeaderValue, ORIGIN, VARY,
};

use super::reply::{self, Response};

/// The origins allowed to call from a browser.
#[derive(Debug, Clone)]
pub struct Cors {
    /// `--cors-origin *`: any origin, answered `*`.
    any: bool,
    /// The named origins, as browsers write them (no trailing slash).
    origins: Vec<String>,
}

impl Cors {
    /// The CORS of `--cors-origin`, or `None` when CORS stays closed.
    pub fn new(origins: &[String]) -> Option<Cors> {
        if origins.is_empty() {
            return None;
        }
        Some(Cors {
            any: origins.iter().any(|o| o.trim() == "*"),
            origins: origins
                .iter()
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .collect(),
        })
    }

    /// The value of `Access-Control-Allow-Origin` for a request from
    /// `origin`, if it is allowed.
    fn allow(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        if self.any {
            return Some(HeaderValue::from_static("*"));
        }
        let origin = headers.get(ORIGIN)?;
        let named =
            (self.origins.iter()).any(|o| o.as_bytes().eq_ignore_ascii_case(origin.as_bytes()));
        named.then(|| origin.clone())
    }

    /// The answer to a preflight (`OPTIONS` asking for a method), or `None`
    /// for any other request.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Response> {
        if method != Method::OPTIONS || !headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) {
            return None;
        }
        let mut response = reply::bytes(Vec::new(), &[]);
        let answer = response.headers_mut();
        if let Some(origin) = self.allow(headers) {
            answer.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            answer.insert(
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET,POST,PUT,DELETE"),
            );
            answer.insert(
                ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type,authorization,if-match,if-none-match"),
            );
        }
        answer.insert(
            VARY,
            HeaderValue::from_static("origin, access-control-request-method"),
        );
        Some(response)
    }

    /// Adds the headers of an allowed origin to an answer.
    pub fn decorate(&self, request: &HeaderMap, response: &mut Response) {
        let answer = response.headers_mut();
        if !self.any {
            answer.append(VARY, HeaderValue::from_static("origin"));
        }
        if let Some(origin) = self.allow(request) {
            answer.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            answer.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("retry-after"),
            );
        }
    }
}
