//! Answers: every answer is a buffered body, built here.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Serialize;

/// The body of every answer: the whole of it, in one buffer.
pub type Body = Full<Bytes>;
/// An answer of the server.
pub type Response = hyper::Response<Body>;

/// A 200 answer whose body is `body`, JSON already encoded.
pub fn json_bytes(body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A 200 answer with `answer` encoded as JSON.
pub fn json(answer: &impl Serialize) -> Response {
    json_bytes(serde_json::to_vec(answer).expect("answers always serialize"))
}

/// A 200 answer of `bytes` with these headers (content type first).
pub fn bytes(body: impl Into<Bytes>, headers: &[(HeaderName, &'static str)]) -> Response {
    let mut response = Response::new(Body::new(body.into()));
    for (name, value) in headers {
        (response.headers_mut()).insert(name.clone(), HeaderValue::from_static(value));
    }
    response
}
