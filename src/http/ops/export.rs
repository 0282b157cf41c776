//! `GET /namespaces/{ns}/export`: the namespace as NDJSON, one line per
//! live key with its value and absolute deadline ([`api::ExportLine`]),
//! in key order.
//!
//! The answer is streamed: a producer task pages through the backend's
//! listing ([`KvBackend::export_page`]) and sends each page as one chunk
//! through a bounded channel, so the server holds a few pages whatever the
//! namespace's size, and a slow client slows the producer, not the server.
//! Paging by key order after a cursor keeps the listing's promise: a key
//! live for the whole export appears exactly once; one written, deleted or
//! expiring meanwhile may or may not.

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use hyper::body::Bytes;
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::{Documented, Needs, Operation, documented};
use crate::api;
use crate::auth::{Access, Grants};
use crate::backend::{Backend, BackendError, KvBackend};
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;
use crate::store::{MAX_PAGE, RecordPage, validate_namespace};

/// The content type of an export (and of an import's body).
pub const NDJSON: &str = "application/x-ndjson";

/// Pages sent ahead of the client at most.
const PAGES_AHEAD: usize = 2;

pub struct Export {
    namespace: String,
}

impl Operation for Export {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/namespaces/{ns}/export"];

    fn parse(request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        let namespace = request.param("ns")?.into_owned();
        validate_namespace(&namespace)?;
        Ok(Export { namespace })
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Namespace(Some(&self.namespace), Access::Read)
    }

    /// The first page is read before answering, so that a backend out of
    /// reach is a 503 with `Retry-After`, not a stream cut at once.
    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let patience = ctx.request_timeout;
        let first = page(&ctx.backend, &self.namespace, None, patience).await?;
        let (response, chunks) = reply::streamed(NDJSON, PAGES_AHEAD);
        let backend = ctx.backend.clone();
        tokio::spawn(produce(backend, self.namespace, first, chunks, patience));
        Ok(response)
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

/// One page, within `patience`.
async fn page(
    backend: &Backend,
    namespace: &str,
    cursor: Option<&str>,
    patience: Duration,
) -> Result<RecordPage, BackendError> {
    match timeout(
        patience,
        backend.export_page(Some(namespace), cursor, MAX_PAGE),
    )
    .await
    {
        Ok(page) => page,
        Err(_) => Err(BackendError::TimedOut { after: patience }),
    }
}

/// Sends the pages from `first` on, one chunk each, until the last, or
/// until the client is gone. A page that cannot be read cuts the stream
/// (an error chunk aborts the connection), so that a client never takes a
/// partial export for a whole one.
async fn produce(
    backend: Arc<Backend>,
    namespace: String,
    first: RecordPage,
    chunks: mpsc::Sender<std::io::Result<Bytes>>,
    patience: Duration,
) {
    let mut page = first;
    loop {
        if !page.records.is_empty() && chunks.send(Ok(encode(&page))).await.is_err() {
            return;
        }
        let Some(cursor) = page.next_cursor else {
            return;
        };
        page = match self::page(&backend, &namespace, Some(&cursor), patience).await {
            Ok(next) => next,
            Err(error) => {
                tracing::warn!(%error, "an export was cut: a page could not be read");
                let _ = chunks.send(Err(std::io::Error::other(error))).await;
                return;
            }
        };
    }
}

/// A page's lines.
fn encode(page: &RecordPage) -> Bytes {
    let mut out = Vec::new();
    for record in &page.records {
        api::ExportLine::write(&mut out, &record.key, &record.value, record.expires_at);
    }
    Bytes::from(out)
}

#[utoipa::path(
    get, path = "/namespaces/{ns}/export", tag = "namespaces", impl_for = Export,
    params(("ns" = String, Path, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace name (1 to 64 of A-Z a-z 0-9 _ . -)")),
    responses(
        (status = 200, description = "The namespace's live keys, one NDJSON line each, in key order, streamed. A key live for the whole export appears exactly once. A stream cut before its end (the connection aborted) is an export that failed midway.", body = api::ExportLine, content_type = "application/x-ndjson"),
        (status = 422, description = "An invalid namespace name", body = api::ErrorBody),
        (status = 503, description = "The storage backend cannot be reached", body = api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}
