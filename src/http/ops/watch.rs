//! `GET /watch?ns=&prefix=`: the namespace's changes as server-sent events
//! (`text/event-stream`), from now or, with `Last-Event-ID`, from where a
//! client left off (see [`crate::feed`] for ids and retention).
//!
//! Each event is `event: OP`, `id: EPOCH-SEQ` and `data:` one line of
//! JSON ([`api::WatchEvent`]). The first is `ready` (or `reset`, when the
//! position asked for cannot be resumed). A comment line is sent after
//! [`HEARTBEAT`] without events, so proxies keep the connection and
//! clients notice a dead one. A producer task reads the backend's feed
//! and feeds the body through a bounded channel: a slow client holds back
//! only its own producer, and it ends as soon as the client goes away.

use std::time::{Duration, Instant};

use hyper::Method;
use hyper::body::Bytes;
use hyper::header::{CACHE_CONTROL, HeaderName, HeaderValue};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{Documented, Needs, Operation, documented};
use crate::api::{self, WatchEvent};
use crate::auth::{Access, Grants};
use crate::backend::{ChangeStream, KvBackend};
use crate::feed::{Change, FeedItem};
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;

/// Longest quiet time before a comment line is sent.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Chunks buffered between the producer and the client.
const BUFFERED: usize = 16;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Watch {
    /// Namespace to watch; absent for the default namespace.
    #[param(pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64)]
    ns: Option<String>,
    /// Only changes of keys starting with this (a `clear` always comes).
    prefix: Option<String>,
    #[serde(skip)]
    #[param(ignore)]
    last_event_id: Option<String>,
}

impl Operation for Watch {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/watch"];

    fn parse(request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        let mut watch: Watch = request.query()?;
        let last = request.headers().get("last-event-id");
        watch.last_event_id = match last.map(|v| v.to_str()) {
            None => None,
            Some(Ok(id)) => Some(id.to_owned()),
            Some(Err(_)) => {
                return Err(ApiError::invalid(
                    "header `Last-Event-ID`: must be the `id` of an event of this feed \
                     (EPOCH-SEQ, ASCII); leave it out to watch from now",
                ));
            }
        };
        Ok(watch)
    }

    fn needs(&self) -> Needs<'_> {
        Needs::Namespace(self.ns.as_deref(), Access::Read)
    }

    async fn apply(self, ctx: &HandlerContext, _caller: &Grants) -> Result<Response, ApiError> {
        let stream = (ctx.backend)
            .watch(self.ns.as_deref(), self.last_event_id.as_deref())
            .await?;
        let (mut response, sender) = reply::streamed("text/event-stream", BUFFERED);
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // nginx would otherwise buffer the stream.
        headers.insert(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
        tokio::spawn(produce(stream, self.prefix.unwrap_or_default(), sender));
        Ok(response)
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

/// Sends the feed's events matching `prefix` to the client until it goes
/// away or the backend fails (then an `error` event, and the end: the
/// client reconnects with its `Last-Event-ID`).
async fn produce(
    mut stream: ChangeStream,
    prefix: String,
    sender: mpsc::Sender<std::io::Result<Bytes>>,
) {
    let mut last_sent = Instant::now();
    loop {
        let wait = HEARTBEAT.saturating_sub(last_sent.elapsed());
        let items = tokio::select! {
            () = sender.closed() => return,
            items = stream.next(wait) => items,
        };
        let chunk = match items {
            Ok(items) if items.is_empty() => {
                if last_sent.elapsed() < HEARTBEAT {
                    continue;
                }
                Bytes::from_static(b": keep-alive\n\n")
            }
            Ok(items) => match encode(&items, &prefix) {
                Some(chunk) => chunk,
                None => continue,
            },
            Err(error) => {
                let detail = ApiError::from(error).detail();
                let _ = sender.send(Ok(Bytes::from(error_event(&detail)))).await;
                return;
            }
        };
        if sender.send(Ok(chunk)).await.is_err() {
            return;
        }
        last_sent = Instant::now();
    }
}

/// The SSE text of the items whose key matches `prefix`; `None` when none
/// does.
fn encode(items: &[FeedItem], prefix: &str) -> Option<Bytes> {
    let mut out = Vec::new();
    for item in items {
        let (op, id, change) = match item {
            FeedItem::Ready { at } => ("ready", at, None),
            FeedItem::Reset { at } => ("reset", at, None),
            FeedItem::Event { id, change } if change.matches(prefix) => {
                (change.kind.as_str(), id, Some(&**change))
            }
            FeedItem::Event { .. } => continue,
        };
        let event = event_of(op, id.to_string(), change);
        let data = serde_json::to_string(&event).expect("events always serialize");
        out.extend_from_slice(
            format!("event: {op}\nid: {}\ndata: {data}\n\n", event.id).as_bytes(),
        );
    }
    (!out.is_empty()).then(|| Bytes::from(out))
}

fn event_of(op: &str, id: String, change: Option<&Change>) -> WatchEvent {
    let value = change
        .and_then(|c| c.value.as_deref())
        .and_then(|text| serde_json::value::RawValue::from_string(text.to_owned()).ok());
    let is_set = value.is_some();
    WatchEvent {
        op: op.to_owned(),
        key: change.and_then(|c| c.key.as_deref()).map(str::to_owned),
        value,
        expires_at: is_set.then(|| change.and_then(|c| c.expires_at)),
        id,
    }
}

fn error_event(detail: &str) -> String {
    let data = serde_json::to_string(&api::ErrorBody {
        detail: detail.into(),
    })
    .expect("errors always serialize");
    format!("event: error\ndata: {data}\n\n")
}

#[utoipa::path(
    get, path = "/watch", tag = "keys", impl_for = Watch,
    params(
        Watch,
        ("Last-Event-ID" = Option<String>, Header, description = "The `id` of the last event received: the feed resumes right after it if it is still within the retention window, else starts with a `reset` event"),
    ),
    responses(
        (status = 200, description = "A stream of server-sent events (`text/event-stream`): `event: OP`, `id: EPOCH-SEQ`, `data: <WatchEvent JSON>`; first `ready` or `reset`, then set/delete/expire/evict/clear; a `: keep-alive` comment line after 15 s without events", body = api::WatchEvent, content_type = "text/event-stream"),
        (status = 403, description = "The token may not read this namespace", body = api::ErrorBody),
        (status = 422, description = "An invalid namespace name or Last-Event-ID", body = api::ErrorBody),
        (status = 503, description = "The storage backend is out of reach, or this node serves as many watchers as it may", body = api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}
