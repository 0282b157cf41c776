//! A small blocking client for the PyKV HTTP API, for Rust programs and for
//! the `pykv` command-line client ([`crate::cli`]).
//!
//! ```no_run
//! use pykv::client::Client;
//!
//! let kv = Client::new("http://127.0.0.1:8000")?;
//! kv.set(Some("app1"), "user:123", &"alice".into(), Some(3600))?;
//! assert_eq!(kv.value(Some("app1"), "user:123")?, Some("alice".into()));
//! # Ok::<(), pykv::client::Error>(())
//! ```
//!
//! Every method sends one request and waits for its answer. Keys and
//! namespace names are percent-encoded here, so any key works (`/`, spaces,
//! `?`, `#`, `%`, any Unicode). Answers come back typed, as the server's
//! own answer types ([`crate::api`]), and keep the server's JSON text for
//! callers that pass it through (`pykv --json`).
//! Errors say which of the API's outcomes happened ([`Error`]), so callers
//! can tell "no such key" from "bad request" from "server down".
//!
//! It is blocking (reqwest's blocking client): do not call it from inside
//! an async runtime.

pub mod demo;

use std::borrow::Cow;
use std::ops::Deref;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::blocking::RequestBuilder;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use crate::api::ImportAnswer;
pub use crate::api::{
    BatchAnswer, BatchOpBody, BatchResult, ClearAnswer, CompactAnswer, DeleteAnswer, GetAnswer,
    HealthAnswer, NamespaceKeysAnswer, NamespaceStats, NamespacesAnswer, SetAnswer, StatsAnswer,
};
use crate::api::{
    BatchBody, ErrorBody, ExpireBody, IncrAnswer, IncrBody, SetBody, TtlAnswer, WatchEvent,
};

/// Where `pykv serve` listens by default.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8000";

/// How long a request may take before [`Error::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything but the unreserved characters `A-Za-z0-9-._~` is encoded, so
/// a key is always one path segment and a name one query value.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How long an import may take in all: it sends a tenant, as fast as the
/// server stores it, and the server itself cuts an upload that stalls
/// (`--request-timeout` between two pieces).
pub const IMPORT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The longest part of a non-JSON error body quoted in an [`Error`].
const QUOTE_LIMIT: usize = 200;

/// The outcome of a request that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request cannot be sent as given (a bad URL, an empty key...);
    /// nothing was sent.
    #[error("{0}")]
    Usage(String),
    /// 404 `{"detail": "Key not found"}`: the key does not exist (or has
    /// expired) in that namespace.
    #[error("key not found: {key:?} in {}", in_namespace(.namespace.as_deref()))]
    NotFound {
        key: String,
        namespace: Option<String>,
    },
    /// 412: a conditional write's precondition did not hold (the key
    /// changed, or exists); `current` is the key's current ETag, `None`
    /// when it does not exist. Nothing was written.
    #[error("precondition failed: {detail}")]
    PreconditionFailed {
        detail: String,
        current: Option<String>,
    },
    /// Any other 4xx: the server refused the request as invalid; `detail`
    /// says what to fix.
    #[error("{detail} (HTTP {status})")]
    Rejected { status: u16, detail: String },
    /// 5xx: the server could not do it (e.g. 503, its disk is full).
    #[error("server error (HTTP {status}): {detail}")]
    Server { status: u16, detail: String },
    /// No connection could be made (refused, unknown host...).
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The connection broke, or the answer could not be read.
    #[error("request to {url} failed: {reason}")]
    Transport { url: String, reason: String },
    /// No answer within the client's timeout.
    #[error("no answer from {url} within {} s", .timeout.as_secs_f64())]
    Timeout { url: String, timeout: Duration },
    /// A success status with a body that is not the expected JSON: the URL
    /// probably points at something other than PyKV.
    #[error("unexpected answer from {url} (HTTP {status}): {reason}")]
    BadAnswer {
        url: String,
        status: u16,
        reason: String,
    },
}

/// What a conditional write requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition<'a> {
    /// The key's current ETag is this one (`If-Match`).
    Matches(&'a str),
    /// The key does not exist (`If-None-Match: *`).
    Absent,
}

impl Precondition<'_> {
    fn apply(self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Precondition::Matches(tag) => request.header(reqwest::header::IF_MATCH, tag),
            Precondition::Absent => request.header(reqwest::header::IF_NONE_MATCH, "*"),
        }
    }
}

/// A typed answer that keeps the server's JSON text. Derefs to the typed
/// body.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    body: T,
    json: String,
    /// The `ETag` header (`GET /get/{key}`): the tag for a later
    /// [`Client::set_if`] or [`Client::delete_if`].
    etag: Option<String>,
}

impl<T> Reply<T> {
    /// The answer's JSON exactly as the server sent it.
    pub fn json(&self) -> &str {
        &self.json
    }

    pub fn into_inner(self) -> T {
        self.body
    }

    /// The answer's `ETag`, on `GET /get/{key}`.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }
}

impl<T> Deref for Reply<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.body
    }
}

/// A connection to one PyKV server (reqwest's pool underneath: reuse it).
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    timeout: Duration,
    http: reqwest::blocking::Client,
    /// Sent as `Authorization: Bearer` when the server requires tokens.
    token: Option<String>,
}

impl Client {
    /// A client for the server at `url` (`http://HOST:PORT`, optionally
    /// with a path prefix), with [`DEFAULT_TIMEOUT`].
    pub fn new(url: &str) -> Result<Client, Error> {
        Client::with_timeout(url, DEFAULT_TIMEOUT)
    }

    /// Like [`Client::new`], waiting at most `timeout` for each answer.
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Client, Error> {
        Client::with_ca(url, timeout, None)
    }

    /// Like [`Client::with_timeout`], trusting for `https://` the CA
    /// certificates (PEM) in `ca` as well as the system's (a private CA).
    pub fn with_ca(url: &str, timeout: Duration, ca: Option<&[u8]>) -> Result<Client, Error> {
        let base = check_url(url)?;
        crate::tls::install_default_provider();
        // No system proxy: a PyKV server is spoken to directly, and a
        // stray HTTP_PROXY must not send `127.0.0.1` to a proxy.
        let mut builder = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(timeout);
        if let Some(pem) = ca {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Usage(format!("--cacert: not PEM certificates: {e}")))?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| Error::Usage(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client {
            base,
            timeout,
            http,
            token: None,
        })
    }

    /// Sends `token` with every request (`None`: no token).
    pub fn with_token(mut self, token: Option<String>) -> Client {
        self.token = token.filter(|t| !t.is_empty());
        self
    }

    /// The server's URL, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Sets `key` to `value` in `ns` (`None`: the default namespace),
    /// expiring after `ttl` seconds if given.
    pub fn set(
        &self,
        ns: Option<&str>,
        key: &str,
        value: &Value,
        ttl: Option<u64>,
    ) -> Result<Reply<SetAnswer<'static>>, Error> {
        let body = SetBody {
            key: Cow::Borrowed(key),
            value: Cow::Borrowed(value),
            ttl,
            namespace: None,
        };
        let url = format!("{}/set{}", self.base, ns_query(ns));
        self.send(self.http.post(url).json(&body), ns, key)
    }

    /// [`Client::set`] only if `precondition` holds: check-and-set.
    /// [`Error::PreconditionFailed`] (with the current ETag) otherwise.
    pub fn set_if(
        &self,
        ns: Option<&str>,
        key: &str,
        value: &Value,
        ttl: Option<u64>,
        precondition: Precondition<'_>,
    ) -> Result<Reply<SetAnswer<'static>>, Error> {
        let body = SetBody {
            key: Cow::Borrowed(key),
            value: Cow::Borrowed(value),
            ttl,
            namespace: None,
        };
        let url = format!("{}/set{}", self.base, ns_query(ns));
        let request = precondition.apply(self.http.post(url).json(&body));
        self.send(request, ns, key)
    }

    /// Deletes `key` only if its current ETag is `etag`.
    pub fn delete_if(
        &self,
        ns: Option<&str>,
        key: &str,
        etag: &str,
    ) -> Result<Reply<DeleteAnswer>, Error> {
        let url = format!("{}/delete/{}{}", self.base, key_segment(key)?, ns_query(ns));
        let request = Precondition::Matches(etag).apply(self.http.delete(url));
        self.send(request, ns, key)
    }

    /// Adds `by` to the integer counter under `key` (a missing key counts
    /// from 0); `ttl` sets its TTL, `None` keeps it.
    pub fn incr(
        &self,
        ns: Option<&str>,
        key: &str,
        by: i64,
        ttl: Option<u64>,
    ) -> Result<Reply<IncrAnswer>, Error> {
        let body = IncrBody {
            key: key.to_owned(),
            by: Some(by),
            ttl,
        };
        let url = format!("{}/incr{}", self.base, ns_query(ns));
        self.send(self.http.post(url).json(&body), ns, key)
    }

    /// Runs `ops` in `ns` in one request (`POST /batch`), each on its own,
    /// or with `atomic` as one transaction, every op applied or none.
    /// One result per op, each with its own status; a transaction whose
    /// op fails is [`Error::PreconditionFailed`] (a condition) or
    /// [`Error::Rejected`], naming the op, and nothing was applied.
    pub fn batch(
        &self,
        ns: Option<&str>,
        ops: &[BatchOpBody<'_>],
        atomic: bool,
    ) -> Result<Reply<BatchAnswer>, Error> {
        let body = BatchBody {
            ops: ops.to_vec(),
            atomic,
            namespace: None,
        };
        let url = format!("{}/batch{}", self.base, ns_query(ns));
        self.send(self.http.post(url).json(&body), ns, "")
    }

    /// The seconds left before `key` expires (`ttl: None`: never);
    /// [`Error::NotFound`] if it does not exist.
    pub fn ttl(&self, ns: Option<&str>, key: &str) -> Result<Reply<TtlAnswer>, Error> {
        let url = format!("{}/ttl/{}{}", self.base, key_segment(key)?, ns_query(ns));
        self.send(self.http.get(url), ns, key)
    }

    /// Gives `key` a TTL of `ttl` seconds (`None`: never expires), keeping
    /// its value; [`Error::NotFound`] if it does not exist.
    pub fn expire(
        &self,
        ns: Option<&str>,
        key: &str,
        ttl: Option<u64>,
    ) -> Result<Reply<TtlAnswer>, Error> {
        let body = ExpireBody {
            key: key.to_owned(),
            ttl,
        };
        let url = format!("{}/expire{}", self.base, ns_query(ns));
        self.send(self.http.post(url).json(&body), ns, key)
    }

    /// The key's answer; [`Error::NotFound`] if it does not exist.
    pub fn get(&self, ns: Option<&str>, key: &str) -> Result<Reply<GetAnswer>, Error> {
        let url = format!("{}/get/{}{}", self.base, key_segment(key)?, ns_query(ns));
        self.send(self.http.get(url), ns, key)
    }

    /// The key's value, `None` if it does not exist.
    pub fn value(&self, ns: Option<&str>, key: &str) -> Result<Option<Value>, Error> {
        match self.get(ns, key) {
            Ok(answer) => Ok(Some(answer.into_inner().value)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the key; [`Error::NotFound`] if it does not exist.
    pub fn delete(&self, ns: Option<&str>, key: &str) -> Result<Reply<DeleteAnswer>, Error> {
        let url = format!("{}/delete/{}{}", self.base, key_segment(key)?, ns_query(ns));
        self.send(self.http.delete(url), ns, key)
    }

    /// The named namespaces holding at least one live key, sorted.
    pub fn namespaces(&self) -> Result<Reply<NamespacesAnswer<'static>>, Error> {
        let url = format!("{}/namespaces", self.base);
        self.send(self.http.get(url), None, "")
    }

    /// How many live keys `ns` holds (0 for a namespace never used).
    pub fn namespace_size(&self, ns: &str) -> Result<Reply<NamespaceKeysAnswer>, Error> {
        let url = format!("{}/namespaces/{}/keys", self.base, ns_segment(ns)?);
        self.send(self.http.get(url), None, "")
    }

    /// Deletes every key of `ns`.
    pub fn clear_namespace(&self, ns: &str) -> Result<Reply<ClearAnswer>, Error> {
        let url = format!("{}/namespaces/{}", self.base, ns_segment(ns)?);
        self.send(self.http.delete(url), None, "")
    }

    /// The server's counters; with `ns`, also that namespace's.
    pub fn stats(&self, ns: Option<&str>) -> Result<Reply<StatsAnswer<'static>>, Error> {
        let url = format!("{}/stats{}", self.base, ns_query(ns));
        self.send(self.http.get(url), None, "")
    }

    /// Whether the server answers, and how many keys it (or `ns`) holds.
    pub fn health(&self, ns: Option<&str>) -> Result<Reply<HealthAnswer>, Error> {
        let url = format!("{}/health{}", self.base, ns_query(ns));
        self.send(self.http.get(url), None, "")
    }

    /// Starts a rewrite of the log in the background.
    pub fn compact(&self) -> Result<Reply<CompactAnswer>, Error> {
        let url = format!("{}/compact", self.base);
        self.send(self.http.post(url), None, "")
    }

    /// Streams the export of `ns` (NDJSON, one key per line) into `out`,
    /// calling `progress` with the number of keys written so far as they
    /// arrive; returns how many keys. Each wait for more is bounded by the
    /// client's timeout, not the whole. An export cut midway is an
    /// [`Error::Transport`]: what `out` holds then is partial.
    pub fn export(
        &self,
        ns: &str,
        out: &mut dyn std::io::Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, Error> {
        let url = format!("{}/namespaces/{}/export", self.base, ns_segment(ns)?);
        let mut response = self
            .authorized(self.http.get(url))
            .send()
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let body = response.text().map_err(|e| self.transport_error(&e))?;
            return Err(status_error(status, &body, Some(ns), ""));
        }
        let cut = |reason: String| Error::Transport {
            url: self.base.clone(),
            reason: format!(
                "the export was cut before its end ({reason}); what was written is partial"
            ),
        };
        let mut buffer = vec![0; 64 * 1024];
        let (mut keys, mut last) = (0, b'\n');
        loop {
            let n =
                std::io::Read::read(&mut response, &mut buffer).map_err(|e| cut(e.to_string()))?;
            if n == 0 {
                break;
            }
            let chunk = &buffer[..n];
            out.write_all(chunk)
                .map_err(|e| Error::Usage(format!("cannot write the export: {e}")))?;
            keys += memchr::memchr_iter(b'\n', chunk).count() as u64;
            last = chunk[n - 1];
            progress(keys);
        }
        if last != b'\n' {
            return Err(cut("it ends inside a line".into()));
        }
        Ok(keys)
    }

    /// Streams `input` (NDJSON as [`Client::export`] writes it) into `ns`,
    /// within [`IMPORT_TIMEOUT`]. A refused line is an [`Error::Rejected`]
    /// (or [`Error::Server`]) naming its number; the lines before it were
    /// imported.
    pub fn import(
        &self,
        ns: &str,
        input: impl std::io::Read + Send + 'static,
    ) -> Result<Reply<ImportAnswer>, Error> {
        let url = format!("{}/namespaces/{}/import", self.base, ns_segment(ns)?);
        let request = (self.http.post(url))
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .timeout(IMPORT_TIMEOUT)
            .body(reqwest::blocking::Body::new(input));
        self.send(request, Some(ns), "")
    }

    fn authorized(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends the request and decodes the answer; `ns` and `key` name the
    /// key in an [`Error::NotFound`].
    fn send<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
        ns: Option<&str>,
        key: &str,
    ) -> Result<Reply<T>, Error> {
        let response = self
            .authorized(request)
            .send()
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        let etag = (response.headers().get(reqwest::header::ETAG))
            .and_then(|tag| tag.to_str().ok())
            .map(str::to_owned);
        let json = response.text().map_err(|e| self.transport_error(&e))?;
        if status == 412 {
            let detail = status_error(status, &json, ns, key).to_string();
            return Err(Error::PreconditionFailed {
                detail,
                current: etag,
            });
        }
        if !(200..300).contains(&status) {
            return Err(status_error(status, &json, ns, key));
        }
        match serde_json::from_str(&json) {
            Ok(body) => Ok(Reply { body, json, etag }),
            Err(e) => Err(Error::BadAnswer {
                url: self.base.clone(),
                status,
                reason: format!("{e}: {}", quote(&json)),
            }),
        }
    }

    /// Opens `ns`'s change feed (`GET /watch`), of the keys starting with
    /// `prefix`, resuming after `last_event_id` if given: an iterator of
    /// its events, the first `ready` or `reset`. It ends with an error
    /// when the connection breaks; open it again with
    /// [`Watch::last_event_id`] to resume without a gap. The client's
    /// timeout does not apply: the feed's heartbeat keeps it alive.
    pub fn watch(
        &self,
        ns: Option<&str>,
        prefix: Option<&str>,
        last_event_id: Option<&str>,
    ) -> Result<Watch, Error> {
        let mut query = Vec::new();
        if let Some(ns) = ns {
            query.push(format!("ns={}", utf8_percent_encode(ns, NON_ALPHANUMERIC)));
        }
        if let Some(prefix) = prefix {
            query.push(format!(
                "prefix={}",
                utf8_percent_encode(prefix, NON_ALPHANUMERIC)
            ));
        }
        let url = format!("{}/watch?{}", self.base, query.join("&"));
        let mut request = (self.http.get(url)).timeout(Duration::from_secs(100 * 365 * 24 * 3600));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let json = response.text().map_err(|e| self.transport_error(&e))?;
            return Err(status_error(status, &json, ns, ""));
        }
        Ok(Watch {
            url: self.base.clone(),
            lines: std::io::BufReader::new(response),
            last_event_id: last_event_id.map(str::to_owned),
        })
    }

    /// Classifies a reqwest failure: timeout, connection, or broken
    /// exchange.
    fn transport_error(&self, e: &reqwest::Error) -> Error {
        let url = self.base.clone();
        if e.is_timeout() {
            Error::Timeout {
                url,
                timeout: self.timeout,
            }
        } else if e.is_connect() {
            Error::Connect {
                url,
                reason: root_cause(e),
            }
        } else {
            Error::Transport {
                url,
                reason: root_cause(e),
            }
        }
    }
}

/// A change feed being read: [`Client::watch`].
pub struct Watch {
    url: String,
    lines: std::io::BufReader<reqwest::blocking::Response>,
    last_event_id: Option<String>,
}

impl Watch {
    /// The id of the last event read: where to resume.
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    fn broken(&self, reason: String) -> Error {
        Error::Transport {
            url: self.url.clone(),
            reason,
        }
    }
}

impl Iterator for Watch {
    type Item = Result<WatchEvent, Error>;

    /// The next event; comment lines (heartbeats) are skipped. `None`
    /// when the server ended the feed.
    fn next(&mut self) -> Option<Self::Item> {
        use std::io::BufRead;
        let (mut kind, mut data) = (String::new(), String::new());
        loop {
            let mut line = String::new();
            match self.lines.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(self.broken(e.to_string()))),
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(value) = line.strip_prefix("event:") {
                kind = value.trim().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                data = value.trim_start().to_owned();
            } else if line.is_empty() && !data.is_empty() {
                break;
            }
        }
        if kind == "error" {
            let detail = serde_json::from_str::<ErrorBody>(&data)
                .map(|body| body.detail.into_owned())
                .unwrap_or(data);
            return Some(Err(self.broken(detail)));
        }
        Some(match serde_json::from_str::<WatchEvent>(&data) {
            Ok(event) => {
                self.last_event_id = Some(event.id.clone());
                Ok(event)
            }
            Err(e) => Err(self.broken(format!("an event that is not JSON ({e}): {data}"))),
        })
    }
}

/// Checks that `url` is a plain `http://` URL with a host, and drops a
/// trailing `/` so paths can be appended.
fn check_url(url: &str) -> Result<String, Error> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| Error::Usage(format!("invalid server URL {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::Usage(format!(
            "invalid server URL {url:?}: use http:// or https://"
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::Usage(format!("invalid server URL {url:?}: no host")));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(Error::Usage(format!(
            "invalid server URL {url:?}: no query or fragment allowed"
        )));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// The key as one encoded path segment. URL rules turn the segments `.`
/// and `..` (even encoded) into path steps, so those two keys cannot be
/// read or deleted over HTTP: refused here rather than sent to the wrong
/// route.
fn key_segment(key: &str) -> Result<String, Error> {
    match key {
        "" => Err(Error::Usage("the key must not be empty".into())),
        "." | ".." => Err(Error::Usage(format!(
            "the key {key:?} cannot be put in a URL path (URLs read it as a directory step)"
        ))),
        _ => Ok(encode(key)),
    }
}

/// The namespace as one encoded path segment; the server checks the name.
fn ns_segment(ns: &str) -> Result<String, Error> {
    match ns {
        "" => Err(Error::Usage("the namespace name must not be empty".into())),
        "." | ".." => Err(Error::Usage(format!("invalid namespace name {ns:?}"))),
        _ => Ok(encode(ns)),
    }
}

/// `?ns=NAME`, or nothing for the default namespace.
fn ns_query(ns: Option<&str>) -> String {
    ns.map(|ns| format!("?ns={}", encode(ns)))
        .unwrap_or_default()
}

/// Percent-encodes every byte outside `A-Za-z0-9-._~`.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// The error for a non-2xx answer: PyKV's [`ErrorBody`], or the start of
/// whatever else came back.
fn status_error(status: u16, body: &str, ns: Option<&str>, key: &str) -> Error {
    let detail = match serde_json::from_str::<ErrorBody>(body) {
        Ok(error) => error.detail.into_owned(),
        Err(_) => serde_json::from_str::<Value>(body)
            .ok()
            .and_then(|v| v.get("detail").map(detail_text))
            .unwrap_or_else(|| quote(body)),
    };
    match status {
        404 if detail == "Key not found" => Error::NotFound {
            key: key.to_owned(),
            namespace: ns.map(str::to_owned),
        },
        400..=499 => Error::Rejected { status, detail },
        _ => Error::Server { status, detail },
    }
}

/// `namespace "app1"` or `the default namespace`, for messages.
fn in_namespace(ns: Option<&str>) -> String {
    match ns {
        Some(ns) => format!("namespace {ns:?}"),
        None => "the default namespace".into(),
    }
}

/// A `detail` that is not a string (FastAPI sends lists of problems) as
/// compact JSON.
fn detail_text(detail: &Value) -> String {
    match detail {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The first [`QUOTE_LIMIT`] characters of a body, on one line.
fn quote(body: &str) -> String {
    let one_line = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None if one_line.is_empty() => "(empty body)".into(),
        None => one_line,
    }
}

/// The innermost cause of a reqwest error, lower-cased as in "connection
/// refused", which is what a person needs to read.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    if let Some(io) = cause.downcast_ref::<std::io::Error>() {
        return io_reason(io);
    }
    cause.to_string()
}

fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::ConnectionReset => "connection reset by the server".into(),
        ErrorKind::TimedOut => "timed out".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_everything_but_unreserved() {
        assert_eq!(encode("a/b c?d#e%f"), "a%2Fb%20c%3Fd%23e%25f");
        assert_eq!(encode("é-._~"), "%C3%A9-._~");
    }

    #[test]
    fn refuses_unaddressable_keys() {
        for key in ["", ".", ".."] {
            assert!(matches!(key_segment(key), Err(Error::Usage(_))), "{key:?}");
        }
        assert_eq!(key_segment("...").unwrap(), "...");
    }

    #[test]
    fn checks_the_url() {
        assert_eq!(check_url("http://h:1/").unwrap(), "http://h:1");
        assert_eq!(check_url("http://h:1/p/").unwrap(), "http://h:1/p");
        assert_eq!(check_url("https://h:1").unwrap(), "https://h:1");
        for bad in ["ftp://h", "h:1", "http://h/?x=1", "nonsense"] {
            assert!(matches!(check_url(bad), Err(Error::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn maps_statuses() {
        let e = status_error(404, r#"{"detail":"Key not found"}"#, Some("a"), "k");
        assert_eq!(e.to_string(), r#"key not found: "k" in namespace "a""#);
        let e = status_error(404, r#"{"detail":"Not Found: no route"}"#, None, "k");
        assert!(matches!(e, Error::Rejected { status: 404, .. }));
        let e = status_error(422, r#"{"detail":"field `ttl`: bad"}"#, None, "k");
        assert!(
            matches!(e, Error::Rejected { status: 422, detail } if detail == "field `ttl`: bad")
        );
        let e = status_error(502, "<html>\n bad gateway</html>", None, "k");
        assert!(
            matches!(e, Error::Server { status: 502, detail } if detail == "<html> bad gateway</html>")
        );
    }
}
