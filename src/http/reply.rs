//! Answers: every answer's body is built here, either whole in one buffer
//! (nearly all of them) or streamed from a producer task (an export, a
//! change feed).

use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Serialize;
use tokio::sync::mpsc;

/// The body of an answer.
///
/// Why an enum of our own rather than a boxed body: a whole answer, the
/// GET path's, stays one buffer with no allocation for the body itself;
/// only a streamed answer pays for its channel.
pub enum Body {
    /// The whole answer; `None` once it was handed to hyper.
    Whole(Option<Bytes>),
    /// Chunks sent by a producer task, in order, through a bounded channel
    /// (so a slow reader holds the producer back, never the server's
    /// memory). The body ends when the producer drops its sender; an
    /// `Err` chunk aborts the connection, so the client sees a cut stream
    /// rather than a clean end.
    Streamed(
        mpsc::Receiver<std::io::Result<Bytes>>,
        /// Dropped with the body, once it ended or the client left: the
        /// connection's bookkeeping counts the answer finished then
        /// (`connections.rs`), not when its head was ready.
        Option<Box<dyn Send>>,
    ),
}

impl Body {
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Body::Whole(Some(bytes.into()))
    }

    /// Keeps `guard` until a streamed body ends; `Err(guard)` for a whole
    /// body, which is finished as soon as it is handed over.
    pub fn keep_until_end<G: Send + 'static>(&mut self, guard: G) -> Result<(), G> {
        match self {
            Body::Streamed(_, slot) => {
                *slot = Some(Box::new(guard));
                Ok(())
            }
            Body::Whole(_) => Err(guard),
        }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Body::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Streamed(chunks, _) => chunks
                .poll_recv(cx)
                .map(|chunk| chunk.map(|c| c.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Whole(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Body::Streamed(..) => SizeHint::default(),
        }
    }
}

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
///
/// The answer is encoded into a buffer kept by the thread, then copied
/// into one of its exact size: one allocation per answer, where a `Vec`
/// with room to spare costs two (it becomes `Bytes` through a shared
/// header). A buffer grown past [`KEPT_BYTES`] by a big answer is let go.
pub fn json(answer: &impl Serialize) -> Response {
    ENCODER.with_borrow_mut(|buffer| {
        buffer.clear();
        serde_json::to_writer(&mut *buffer, answer).expect("answers always serialize");
        let body = Bytes::copy_from_slice(buffer);
        if buffer.capacity() > KEPT_BYTES {
            *buffer = Vec::new();
        }
        bytes(body, &[JSON])
    })
}

/// The most a thread keeps of its buffer for encoding answers.
const KEPT_BYTES: usize = 64 * 1024;

thread_local! {
    static ENCODER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The content type of a JSON answer.
const JSON: (HeaderName, &str) = (CONTENT_TYPE, "application/json");

/// A 200 answer of `bytes` with these headers (content type first).
pub fn bytes(body: impl Into<Bytes>, headers: &[(HeaderName, &'static str)]) -> Response {
    let mut response = Response::new(Body::new(body.into()));
    for (name, value) in headers {
        (response.headers_mut()).insert(name.clone(), HeaderValue::from_static(value));
    }
    response
}

/// A 200 answer of `content_type` whose body is streamed: the producer
/// sends its chunks into the returned sender, at most `buffered` ahead of
/// the client, and ends the body by dropping it.
pub fn streamed(
    content_type: &'static str,
    buffered: usize,
) -> (Response, mpsc::Sender<std::io::Result<Bytes>>) {
    let (sender, receiver) = mpsc::channel(buffered);
    let mut response = Response::new(Body::Streamed(receiver, None));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    (response, sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(response: Response) -> Bytes {
        match response.into_body() {
            Body::Whole(Some(bytes)) => bytes,
            _ => panic!("a JSON answer is whole"),
        }
    }

    /// Small answers and big ones alike, in any order (the encoding buffer
    /// is reused).
    #[test]
    fn json_answers_are_serde_json_and_typed() {
        for size in [0, 10, 512, 4096, 100_000, 10] {
            let answer = serde_json::json!({"key": "k".repeat(size), "n": null});
            let response = json(&answer);
            assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
            assert_eq!(
                body_of(response),
                serde_json::to_vec(&answer).unwrap(),
                "{size}"
            );
        }
    }
}
