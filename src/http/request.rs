//! What an operation reads of its request: the route's path parameters,
//! the query string, the headers. The body is read by the pipeline
//! ([`super::pipeline`]), within `--max-body-bytes` and the request's
//! deadline, and handed over as bytes.

use std::borrow::Cow;

use hyper::HeaderMap;
use hyper::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A request's head, routed.
pub struct Request<'a> {
    parts: &'a Parts,
    params: &'a matchit::Params<'a, 'a>,
}

/// `?ns=`: the namespace named in the query string.
#[derive(Debug, Default, Deserialize)]
pub struct NsQuery {
    pub ns: Option<String>,
}

impl<'a> Request<'a> {
    pub fn new(parts: &'a Parts, params: &'a matchit::Params<'a, 'a>) -> Self {
        Request { parts, params }
    }

    pub fn headers(&self) -> &'a HeaderMap {
        &self.parts.headers
    }

    /// The path parameter `name` of the route, percent-decoded.
    pub fn param(&self, name: &str) -> Result<Cow<'a, str>, ApiError> {
        let raw = self
            .params
            .get(name)
            .expect("operations ask only for their routes' parameters");
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map_err(|_| {
                ApiError::invalid_with_diagnostic(
                    format!(
                        "path: `{{{name}}}` is not UTF-8 once percent-decoded; \
                         percent-encode the UTF-8 bytes of the text"
                    ),
                    "path: a parameter is not UTF-8 once percent-decoded (the path left out)",
                )
            })
    }

    /// The query string read as `T`.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let query = self.parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query).map_err(|e| {
            ApiError::invalid_with_diagnostic(
                format!("query string: {e}"),
                "query string: cannot be read for this route (the query left out)",
            )
        })
    }

    /// `?ns=`, the namespace most operations work on.
    ///
    /// A query that is exactly `ns=NAME`, with nothing to decode, is read
    /// in place (the common case, on every GET and SET); anything else goes
    /// through the full decoder, with the same result.
    pub fn namespace(&self) -> Result<Option<String>, ApiError> {
        match self.parts.uri.query() {
            None => Ok(None),
            Some(query) => match query.strip_prefix("ns=") {
                Some(name) if !name.is_empty() && !name.contains(['&', '%', '+', '=']) => {
                    Ok(Some(name.to_owned()))
                }
                _ => Ok(self.query::<NsQuery>()?.ns),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-place reading of `ns=NAME` answers as the full decoder does.
    #[test]
    fn the_namespace_reads_the_same_both_ways() {
        let mut router = matchit::Router::new();
        router.insert("/stats", ()).unwrap();
        let params = router.at("/stats").unwrap().params;
        for uri in [
            "/stats",
            "/stats?ns=app1",
            "/stats?ns=a.b-c_d",
            "/stats?ns=",
            "/stats?ns=a%20b",
            "/stats?ns=a+b",
            "/stats?ns=a&ns=b",
            "/stats?ns=a&x=1",
            "/stats?x=1",
            "/stats?ns=a=b",
        ] {
            let (parts, ()) = hyper::Request::get(uri).body(()).unwrap().into_parts();
            let request = Request::new(&parts, &params);
            let decoded = request.query::<NsQuery>().map(|q| q.ns);
            match (request.namespace(), decoded) {
                (Ok(fast), Ok(full)) => assert_eq!(fast, full, "{uri}"),
                (Err(_), Err(_)) => {}
                (fast, full) => panic!("{uri}: {fast:?} against {full:?}"),
            }
        }
    }
}
