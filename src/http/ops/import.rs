//! `POST /namespaces/{ns}/import`: NDJSON in, one key per line
//! ([`api::ExportLine`], what an export writes), stored with its absolute
//! deadline.
//!
//! The body is streamed ([`Operation::STREAMS_BODY`]): lines are read as
//! they arrive, checked one by one, and applied in chunks of at most
//! [`CHUNK_RECORDS`] records or [`CHUNK_BYTES`] bytes, each chunk one call
//! to the backend and one wait for durability. Memory is one chunk and one
//! line (at most `--max-body-bytes`) whatever the body's size.
//!
//! A bad line (not JSON, a missing field, a key refused, a quota reached)
//! ends the import with its error and its number: every line before it is
//! applied, nothing from it on. Blank lines are skipped (and counted in
//! the numbering); lines whose `expires_at` has passed are skipped; other
//! fields are ignored.

use std::time::Duration;

use hyper::Method;
use tokio::time::timeout;

use super::{Documented, Needs, Operation, documented};
use crate::api::{self, ExportLine, ImportAnswer};
use crate::auth::{Access, Grants};
use crate::backend::KvBackend;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;
use crate::http::upload::Upload;
use crate::store::{Record, validate_namespace};

/// Most records applied in one call to the backend.
pub const CHUNK_RECORDS: usize = 1000;
/// Most bytes of keys and values applied in one call (a chunk may pass it
/// by one record).
pub const CHUNK_BYTES: usize = 1 << 20;

/// After a refusal, how long the rest of the body may be read and dropped
/// before answering (see [`Upload::discard_rest`]). Measured: 125 MB
/// after a bad first line took 1.4 s through `pykv import` over loopback
/// (debug build), the refusal then read in full by the client.
const DISCARD_PATIENCE: Duration = Duration::from_secs(60);

pub struct Import {
    namespace: String,
    body: Option<Upload>,
}

impl Operation for Import {
    const METHOD: Method = Method::POST;
    const PATHS: &'static [&'static str] = &["/namespaces/{ns}/import"];
    const STREAMS_BODY: bool = true;

    fn parse(request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        let namespace = request.param("ns")?.into_owned();
        validate_namespace(&namespace)?;
        Ok(Import {
            namespace,
            body: None,
        })
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Namespace(Some(&self.namespace), Access::Write)
    }

    fn receive(&mut self, body: Upload) {
        self.body = Some(body);
    }

    async fn apply(mut self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let mut body = self.body.take().expect("the pipeline hands the body over");
        let mut import = Importer {
            ctx,
            namespace: &self.namespace,
            imported: 0,
            chunk: Vec::new(),
            lines: Vec::new(),
            bytes: 0,
        };
        match import.run(&mut body).await {
            Ok(()) => Ok(reply::json(&ImportAnswer {
                imported: import.imported,
                namespace: self.namespace,
            })),
            Err(refusal) => {
                // A client that stalled is sending nothing more to wait for.
                if !refusal.is_stalled_body() {
                    body.discard_rest(DISCARD_PATIENCE).await;
                }
                Err(refusal)
            }
        }
    }

    /// The body is optional: an empty one imports nothing. (utoipa would
    /// make an `Option` body nullable instead, and `null` is no line.)
    fn openapi() -> Option<Documented> {
        let (path, methods, mut operation) = documented::<Self>()?;
        if let Some(body) = operation.request_body.as_mut() {
            body.required = Some(utoipa::openapi::Required::False);
        }
        Some((path, methods, operation))
    }
}

/// An import under way: the chunk read and not yet applied.
struct Importer<'a> {
    ctx: &'a HandlerContext,
    namespace: &'a str,
    /// Keys stored so far.
    imported: u64,
    chunk: Vec<Record>,
    /// The line number of each record of the chunk.
    lines: Vec<u64>,
    bytes: usize,
}

impl Importer<'_> {
    /// Reads, checks and applies every line, or stops at the first bad one
    /// after applying those before it.
    async fn run(&mut self, body: &mut Upload) -> Result<(), ApiError> {
        loop {
            let number = body.next_number();
            let read = body.next_line(self.ctx.max_body_bytes).await;
            let record = match read.and_then(|line| line.map(|l| parse_line(&l)).transpose()) {
                Ok(None) => break,
                Ok(Some(None)) => continue,
                Ok(Some(Some(record))) => record,
                Err(error) => {
                    self.apply_chunk().await?;
                    return Err(self.refusal(number, error));
                }
            };
            self.bytes += record.key.len() + record.value.len();
            self.chunk.push(record);
            self.lines.push(number);
            if self.chunk.len() >= CHUNK_RECORDS || self.bytes >= CHUNK_BYTES {
                self.apply_chunk().await?;
            }
        }
        self.apply_chunk().await
    }

    /// Applies the chunk in one call and waits once for its durability,
    /// each within `--request-timeout`.
    async fn apply_chunk(&mut self) -> Result<(), ApiError> {
        let Some(&first_line) = self.lines.first() else {
            return Ok(());
        };
        let patience = self.ctx.request_timeout;
        let overdue = || ApiError::Overdue { limit: patience };
        let backend = &self.ctx.backend;
        let call = backend.import_records(Some(self.namespace), &self.chunk);
        let done = timeout(patience, call)
            .await
            .map_err(|_| self.refusal(first_line, overdue()))?;
        let durable = timeout(patience, done.commit.durable()).await;
        match durable {
            Err(_) => return Err(self.refusal(first_line, overdue())),
            Ok(Err(error)) => return Err(self.refusal(first_line, error.into())),
            Ok(Ok(())) => {}
        }
        self.imported += done.stored as u64;
        if let Some(error) = done.refused {
            return Err(self.refusal(self.lines[done.applied], error.into()));
        }
        self.chunk.clear();
        self.lines.clear();
        self.bytes = 0;
        Ok(())
    }

    fn refusal(&self, line: u64, error: ApiError) -> ApiError {
        ApiError::AtLine {
            line,
            imported: self.imported,
            error: Box::new(error),
        }
    }
}

const EXPECTED: &str = "each line must be a JSON object such as \
    {\"key\": \"user:1\", \"value\": \"alice\", \"expires_at\": null} \
    (`expires_at`: seconds since the Unix epoch, or null)";

/// A line as a record; `None` for a blank line.
fn parse_line(line: &[u8]) -> Result<Option<Record>, ApiError> {
    if line.trim_ascii().is_empty() {
        return Ok(None);
    }
    // serde would also read a struct from an array.
    if line.trim_ascii_start().first() != Some(&b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
                Ok(_) => ApiError::invalid(format!("{EXPECTED}; got another JSON type")),
                Err(e) => ApiError::MalformedJson(within_line(&e)),
            },
        );
    }
    let parsed: ExportLine = serde_json::from_slice(line).map_err(|e| {
        if e.is_data() {
            ApiError::invalid_with_diagnostic(format!("{EXPECTED}: {}", within_line(&e)), EXPECTED)
        } else {
            ApiError::MalformedJson(within_line(&e))
        }
    })?;
    if parsed.key.is_empty() {
        return Err(ApiError::invalid("field `key`: must not be empty"));
    }
    let expires_at = parsed.expires_at_ms().map_err(ApiError::invalid)?;
    // A value is stored on one line: a raw `\r` can only be whitespace
    // between tokens (as on `POST /set`).
    let value = parsed.value.get().replace('\r', "");
    Ok(Some(Record {
        key: parsed.key.into_owned(),
        value,
        expires_at,
    }))
}

/// The parser's message with its position as a column: its "line 1"
/// would read as the body's first line.
fn within_line(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => format!("{} (column {})", &text[..at], e.column()),
        None => text,
    }
}

#[utoipa::path(
    post, path = "/namespaces/{ns}/import", tag = "namespaces", impl_for = Import,
    params(("ns" = String, Path, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace name (1 to 64 of A-Z a-z 0-9 _ . -)")),
    request_body(
        description = "One key per line, as an export writes them (NDJSON); streamed, of any size (each line at most `--max-body-bytes`). Blank lines are skipped; a line whose `expires_at` has passed is skipped. A single JSON object on one line is a body of one line, whatever the content type; an empty body imports nothing.",
        content(
            (api::ExportLine = "application/x-ndjson"),
            (api::ExportLine = "application/json"),
        ),
    ),
    responses(
        (status = 200, description = "Every line applied", body = api::ImportAnswer),
        (status = 400, description = "Line N is not JSON: the lines before it were applied, nothing from it on", body = api::ErrorBody),
        (status = 408, description = "The body stalled for longer than `--request-timeout`; the lines before were applied", body = api::ErrorBody),
        (status = 413, description = "Line N is over `--max-body-bytes`; the lines before it were applied", body = api::ErrorBody),
        (status = 422, description = "Line N has a missing or invalid field, or the namespace name is invalid; the lines before it were applied", body = api::ErrorBody),
        (status = 503, description = "The storage backend cannot be reached; the lines before line N were applied", body = api::ErrorBody),
        (status = 507, description = "Line N would pass a memory or key limit or the namespace's quota (noeviction); the lines before it were applied", body = api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}
