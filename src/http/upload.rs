//! A request body read as it arrives, line by line, for an operation that
//! takes bodies of any size in bounded memory (an import, see
//! [`super::ops::Operation::STREAMS_BODY`]).
//!
//! Why not `--max-body-bytes` and the request's deadline, as for other
//! bodies: an import is as large as a tenant, and takes as long as it
//! takes. What bounds it instead:
//! - **memory**: one line at most `--max-body-bytes` long (413 past it),
//!   plus what the operation keeps of the lines it has read;
//! - **time**: the client may leave the body idle for at most
//!   `--request-timeout` between two pieces (408), so a stalled client
//!   cannot hold the server; the operation bounds each write it makes.

use std::time::Duration;

use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body as HttpBody, Bytes};
use tokio::time::{Instant, timeout, timeout_at};

use super::error::ApiError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body, unread, handed to its operation.
pub struct Upload {
    body: UnsyncBoxBody<Bytes, BoxError>,
    /// Longest wait for the next piece of the body.
    idle: Duration,
    /// Bytes read and not yet handed out as lines, from `start`.
    buffer: Vec<u8>,
    start: usize,
    /// Where the search for the next newline resumes, from `start`.
    scanned: usize,
    /// Lines handed out so far.
    lines: u64,
    ended: bool,
}

impl Upload {
    pub fn new<B>(body: B, idle: Duration) -> Self
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Upload {
            body: UnsyncBoxBody::new(body.map_err(Into::into)),
            idle,
            buffer: Vec::new(),
            start: 0,
            scanned: 0,
            lines: 0,
            ended: false,
        }
    }

    /// The number of the next line [`Upload::next_line`] will hand out.
    pub fn next_number(&self) -> u64 {
        self.lines + 1
    }

    /// The next line (without its `\n` or `\r\n`), numbered from 1; `None`
    /// at the end of the body. A line over `max` bytes is refused (413)
    /// without reading it further.
    pub async fn next_line(&mut self, max: usize) -> Result<Option<Vec<u8>>, ApiError> {
        loop {
            let pending = &self.buffer[self.start..];
            if let Some(at) = memchr::memchr(b'\n', &pending[self.scanned..]) {
                let end = self.scanned + at;
                if end > max {
                    return Err(ApiError::LineTooLong { limit: max });
                }
                let line = trim_cr(&pending[..end]).to_vec();
                self.start += end + 1;
                self.scanned = 0;
                return Ok(Some(self.hand_out(line)));
            }
            self.scanned = pending.len();
            if pending.len() > max {
                return Err(ApiError::LineTooLong { limit: max });
            }
            if self.ended {
                if pending.is_empty() {
                    return Ok(None);
                }
                let line = trim_cr(pending).to_vec();
                self.start = self.buffer.len();
                self.scanned = 0;
                return Ok(Some(self.hand_out(line)));
            }
            self.read_more().await?;
        }
    }

    fn hand_out(&mut self, line: Vec<u8>) -> Vec<u8> {
        self.lines += 1;
        line
    }

    /// Reads the next piece of the body into the buffer, dropping the
    /// lines already handed out first when they fill half of it.
    async fn read_more(&mut self) -> Result<(), ApiError> {
        if self.start > 0 && self.start >= self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        match timeout(self.idle, self.body.frame()).await {
            Err(_) => Err(ApiError::BodyStalled { idle: self.idle }),
            Ok(None) => {
                self.ended = true;
                Ok(())
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    self.buffer.extend_from_slice(&data);
                }
                Ok(())
            }
            Ok(Some(Err(e))) => Err(ApiError::MalformedJson(format!(
                "cannot read the body: {e}"
            ))),
        }
    }

    /// Reads and drops what is left of the body before an early refusal is
    /// answered, for at most `patience` in all and as long as it keeps
    /// coming: a client still sending would otherwise have its connection
    /// cut before it reads the answer (reqwest, for one, then reports only
    /// the broken upload). Nothing of it is kept.
    pub async fn discard_rest(&mut self, patience: Duration) {
        let deadline = Instant::now() + patience;
        loop {
            let next = timeout(self.idle, self.body.frame());
            match timeout_at(deadline, next).await {
                Ok(Ok(Some(Ok(_)))) => {}
                _ => return,
            }
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use hyper::body::Frame;

    use super::*;

    /// A body of the given pieces, each one frame.
    struct Pieces(VecDeque<Bytes>);

    impl HttpBody for Pieces {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Ready(self.0.pop_front().map(|piece| Ok(Frame::data(piece))))
        }
    }

    fn upload(pieces: &[&'static str]) -> Upload {
        let pieces = pieces.iter().map(|p| Bytes::from_static(p.as_bytes()));
        Upload::new(Pieces(pieces.collect()), Duration::from_secs(1))
    }

    #[tokio::test]
    async fn lines_across_pieces_with_crlf_and_no_final_newline() {
        let mut body = upload(&["a\r\nb", "c\n\n", "last"]);
        let mut lines = Vec::new();
        while let Some(line) = body.next_line(100).await.unwrap() {
            lines.push(String::from_utf8(line).unwrap());
        }
        assert_eq!(lines, ["a", "bc", "", "last"]);
        assert_eq!(body.next_number(), 5);
    }

    #[tokio::test]
    async fn a_line_over_the_limit_is_refused() {
        let mut body = upload(&["short\n", "0123456789", "0123456789\n"]);
        assert_eq!(body.next_line(12).await.unwrap().unwrap(), b"short");
        assert!(matches!(
            body.next_line(12).await,
            Err(ApiError::LineTooLong { limit: 12 })
        ));
        // Also when the whole line came in one piece.
        let mut body = upload(&["0123456789abc\nok\n"]);
        assert!(matches!(
            body.next_line(12).await,
            Err(ApiError::LineTooLong { limit: 12 })
        ));
    }
}
