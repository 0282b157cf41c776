//! Thin handlers: extract, call the backend, shape the answer. Errors go
//! through [`ApiError`], the one place they become statuses.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, LOG_RETRY_AFTER_SECS};
use super::guard::Caller;
use super::set_request::SetRequest;
use super::views::off_worker;
use super::{AppState, HandlerContext};
use crate::api::{self, GetAnswer, SetAnswer};
use crate::auth::{Access, Grants};
use crate::backend::{BackendStats, Health, KvBackend, wait_here};
use crate::store::{self, MAX_PAGE, validate_namespace};

/// `?ns=`: the namespace named in the query string.
#[derive(Debug, Default, Deserialize)]
pub struct NsQuery {
    pub ns: Option<String>,
}

type ApiResult = Result<Response, ApiError>;

fn ns_of(query: Result<Query<NsQuery>, QueryRejection>) -> Result<Option<String>, ApiError> {
    Ok(query?.0.ns)
}

fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[utoipa::path(
    post, path = "/set", tag = "keys",
    params(("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace (1 to 64 of A-Z a-z 0-9 _ . -); absent: the default namespace")),
    request_body(content = api::SetBody, description = "The body's `namespace` wins over `?ns=`"),
    responses(
        (status = 200, description = "Stored (and as durable as `--fsync` promises)", body = api::SetAnswer),
        (status = 400, description = "The body is not JSON", body = api::ErrorBody),
        (status = 413, description = "The body is over `--max-body-bytes`", body = api::ErrorBody),
        (status = 422, description = "A field is missing, of the wrong type or out of range", body = api::ErrorBody),
        (status = 503, description = "The write-ahead log cannot be written; nothing was applied", body = api::ErrorBody),
        (status = 507, description = "A memory or key limit is reached (noeviction) or the entry is too large", body = api::ErrorBody),
    )
)]
pub async fn set(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: Result<Query<NsQuery>, QueryRejection>,
    body: Body,
) -> ApiResult {
    let query_ns = ns_of(query)?;
    Ok(json_response(
        set_answer(&state, &caller, query_ns.as_deref(), body).await?,
    ))
}

/// `POST /set` once the caller is known and the query read: the body of
/// the answer. Shared with the hot path ([`super::hot`]).
pub(super) async fn set_answer(
    state: &HandlerContext,
    caller: &Grants,
    query_ns: Option<&str>,
    body: Body,
) -> Result<Vec<u8>, ApiError> {
    // A bad `?ns=` is refused even when the body names another namespace.
    if let Some(ns) = query_ns {
        validate_namespace(ns)?;
    }
    let body = read_body(body, state.max_body_bytes, state.request_timeout).await?;
    let request = SetRequest::parse(&body)?;
    // The body's namespace wins over the query's, as in PyKV; it is the
    // one the token must allow.
    let namespace = request.namespace.as_deref().or(query_ns);
    state.admit(caller, namespace, Access::Write)?;
    state
        .backend
        .set(namespace, &request.key, &request.value, request.ttl)
        .await?
        .durable()
        .await?;
    let answer = SetAnswer {
        key: Cow::Borrowed(&request.key),
        namespace: namespace.map(Cow::Borrowed),
        status: api::SetStatus::Success,
    };
    Ok(serde_json::to_vec(&answer).expect("strings always serialize"))
}

#[utoipa::path(
    get, path = "/get/{key}", tag = "keys",
    params(
        ("key" = String, Path, description = "The key, percent-encoded; an unencoded `/` inside it works too"),
        ("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace (1 to 64 of A-Z a-z 0-9 _ . -); absent: the default namespace"),
    ),
    responses(
        (status = 200, description = "The value", body = api::GetAnswer),
        (status = 404, description = "`Key not found`", body = api::ErrorBody),
        (status = 422, description = "An invalid key or namespace", body = api::ErrorBody),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    key: Result<Path<String>, PathRejection>,
    query: Result<Query<NsQuery>, QueryRejection>,
) -> ApiResult {
    let Path(key) = key?;
    let namespace = ns_of(query)?;
    Ok(json_response(
        get_answer(&state, &caller, &key, namespace.as_deref()).await?,
    ))
}

/// `GET /get/{key}` once the caller, key and namespace are known: the body
/// of the answer. Shared with the hot path ([`super::hot`]), which polls
/// it once in place.
pub(super) async fn get_answer(
    state: &HandlerContext,
    caller: &Grants,
    key: &str,
    namespace: Option<&str>,
) -> Result<Vec<u8>, ApiError> {
    state.admit(caller, namespace, Access::Read)?;
    let mut body = Vec::with_capacity(64 + 2 * key.len());
    GetAnswer::write_head(&mut body, key);
    if !state.backend.get_into(namespace, key, &mut body).await? {
        return Err(ApiError::KeyNotFound);
    }
    GetAnswer::write_tail(&mut body, namespace);
    Ok(body)
}

/// Reads a request body of at most `limit` bytes within `timeout`, so a
/// client sending its body slowly cannot hold a handler (408), nor send
/// an endless one (413). `POST /set` and `PUT /quota` have a body; the
/// other routes read none and need no timer.
pub(super) async fn read_body(
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::RequestTimeout { limit: timeout }),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(ApiError::from_body_error(&e, limit)),
    }
}

fn write_json(out: &mut Vec<u8>, value: &impl serde::Serialize) {
    serde_json::to_writer(out, value).expect("strings always serialize");
}

#[utoipa::path(
    delete, path = "/delete/{key}", tag = "keys",
    params(
        ("key" = String, Path, description = "The key, percent-encoded; an unencoded `/` inside it works too"),
        ("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace (1 to 64 of A-Z a-z 0-9 _ . -); absent: the default namespace"),
    ),
    responses(
        (status = 200, description = "Deleted", body = api::DeleteAnswer),
        (status = 404, description = "`Key not found`", body = api::ErrorBody),
        (status = 422, description = "An invalid key or namespace", body = api::ErrorBody),
        (status = 503, description = "The write-ahead log cannot be written; nothing was applied", body = api::ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    key: Result<Path<String>, PathRejection>,
    query: Result<Query<NsQuery>, QueryRejection>,
) -> ApiResult {
    let Path(key) = key?;
    let namespace = ns_of(query)?;
    state.admit(&caller, namespace.as_deref(), Access::Write)?;
    let commit = state
        .backend
        .delete(namespace.as_deref(), &key)
        .await?
        .ok_or(ApiError::KeyNotFound)?;
    commit.durable().await?;
    Ok(axum::Json(api::DeleteAnswer {
        key,
        namespace,
        status: api::DeleteStatus::Deleted,
    })
    .into_response())
}

/// `GET /keys`: the query of a key listing.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Namespace to list; absent for the default namespace.
    #[param(pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64)]
    pub ns: Option<String>,
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// Where to start: the `cursor` of the previous page.
    pub cursor: Option<String>,
    /// Keys per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

#[utoipa::path(
    get, path = "/keys", tag = "keys",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of the namespace's keys, in order", body = api::KeysAnswer),
        (status = 422, description = "An invalid namespace name or limit", body = api::ErrorBody),
    )
)]
/// Lists a namespace's keys page by page, in key order, with an optional
/// prefix. Each page is found without holding the namespace's locks for
/// more than one shard at a time; keys present for the whole listing
/// appear exactly once.
pub async fn list_keys(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query?;
    state.admit(&caller, query.ns.as_deref(), Access::Read)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid_json_input(&limit.to_string(), |got| {
            format!("query `limit`: must be from 1 to {MAX_PAGE}, got {got}")
        }));
    }
    let page = (state.backend)
        .list_keys(
            query.ns.as_deref(),
            query.prefix.as_deref().unwrap_or(""),
            query.cursor.as_deref(),
            limit,
        )
        .await?;
    Ok(axum::Json(api::KeysAnswer {
        namespace: query.ns,
        keys: page.keys,
        cursor: page.next_cursor,
    })
    .into_response())
}

#[utoipa::path(
    get, path = "/namespaces", tag = "namespaces",
    responses((status = 200, description = "Named namespaces holding keys", body = api::NamespacesAnswer))
)]
pub async fn list_namespaces(State(state): State<AppState>, Caller(caller): Caller) -> ApiResult {
    // A tenant sees only its own namespaces.
    let stats = visible_stats(&state, &caller).await?;
    let shown = stats.clone();
    let render = move || {
        let names = &shown.store.namespaces;
        let answer = api::NamespacesAnswer {
            count: names.len(),
            namespaces: names
                .keys()
                .map(|name| Cow::Borrowed(name.as_str()))
                .collect(),
        };
        let mut body = Vec::new();
        write_json(&mut body, &answer);
        body
    };
    Ok(json_response(
        render_view(&stats, "listing the namespaces", render).await?,
    ))
}

#[utoipa::path(
    get, path = "/namespaces/{ns}/keys", tag = "namespaces",
    params(("ns" = String, Path, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace name (1 to 64 of A-Z a-z 0-9 _ . -)")),
    responses(
        (status = 200, description = "How many live keys the namespace holds", body = api::NamespaceKeysAnswer),
        (status = 422, description = "An invalid namespace name", body = api::ErrorBody),
    )
)]
pub async fn namespace_keys(
    State(state): State<AppState>,
    Caller(caller): Caller,
    namespace: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(namespace) = namespace?;
    state.admit(&caller, Some(&namespace), Access::Read)?;
    let stats = state.backend.namespace_stats(Some(&namespace)).await?;
    Ok(axum::Json(api::NamespaceKeysAnswer {
        namespace,
        total_keys: stats.total_keys,
    })
    .into_response())
}

#[utoipa::path(
    delete, path = "/namespaces/{ns}", tag = "namespaces",
    params(("ns" = String, Path, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace name (1 to 64 of A-Z a-z 0-9 _ . -)")),
    responses(
        (status = 200, description = "Every key of the namespace deleted", body = api::ClearAnswer),
        (status = 422, description = "An invalid namespace name", body = api::ErrorBody),
        (status = 503, description = "The write-ahead log cannot be written; nothing was applied", body = api::ErrorBody),
    )
)]
pub async fn clear_namespace(
    State(state): State<AppState>,
    Caller(caller): Caller,
    namespace: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(namespace) = namespace?;
    state.admit(&caller, Some(&namespace), Access::Write)?;
    let (deleted, commit) = state.backend.clear_namespace(&namespace).await?;
    commit.durable().await?;
    Ok(axum::Json(api::ClearAnswer {
        keys_deleted: deleted,
        namespace,
        status: api::ClearStatus::Cleared,
    })
    .into_response())
}

#[utoipa::path(
    get, path = "/stats", tag = "server",
    params(("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace (1 to 64 of A-Z a-z 0-9 _ . -); absent: the default namespace")),
    responses(
        (status = 200, description = "Counters of the store and its log", body = api::StatsAnswer),
        (status = 422, description = "An invalid namespace name", body = api::ErrorBody),
    )
)]
pub async fn stats(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: Result<Query<NsQuery>, QueryRejection>,
) -> ApiResult {
    let namespace = ns_of(query)?;
    // Validate the namespace before gathering anything.
    let scoped = match namespace {
        Some(ns) => {
            state.admit(&caller, Some(&ns), Access::Read)?;
            let ns_stats = state.backend.namespace_stats(Some(&ns)).await?;
            Some((ns, ns_stats))
        }
        None => None,
    };
    let stats = visible_stats(&state, &caller).await?;
    let shown = stats.clone();
    let render = move || stats_body(&shown, scoped);
    Ok(json_response(
        render_view(&stats, "rendering /stats", render).await?,
    ))
}

/// `/stats`'s answer, as the seed shapes it, with one namespace's figures
/// when `?ns=` names one (its keys then are the total).
fn stats_body(stats: &BackendStats, scoped: Option<(String, store::NamespaceStats)>) -> Vec<u8> {
    let store = &stats.store;
    let log = stats.persistence.as_ref();
    let (namespace, namespace_stats, total_keys) = match &scoped {
        Some((ns, figures)) => (
            Some(Cow::Borrowed(ns.as_str())),
            Some(counters(figures)),
            figures.total_keys,
        ),
        None => (None, None, store.total_keys),
    };
    let answer = api::StatsAnswer {
        cache_hits: store.cache_hits,
        cache_misses: store.cache_misses,
        default_namespace: counters(&store.default_namespace),
        evictions: store.evictions,
        expirations: store.expirations,
        last_compaction: log.and_then(|log| log.last_compaction),
        log_size: log.map(|log| log.log_size),
        max_bytes: stats.max_bytes,
        max_keys: stats.max_keys,
        namespace,
        namespace_stats,
        namespaces: (store.namespaces.iter())
            .map(|(name, figures)| (Cow::Borrowed(name.as_str()), counters(figures)))
            .collect(),
        total_keys,
        uptime_seconds: stats.uptime_seconds,
        used_bytes: store.used_bytes,
    };
    let mut out = Vec::new();
    write_json(&mut out, &answer);
    out
}

/// A namespace's counters as `/stats` shows them.
fn counters(figures: &store::NamespaceStats) -> api::NamespaceStats {
    api::NamespaceStats {
        cache_hits: figures.cache_hits,
        cache_misses: figures.cache_misses,
        evictions: figures.evictions,
        expirations: figures.expirations,
        total_keys: figures.total_keys,
        used_bytes: figures.used_bytes,
    }
}

/// Views of at most this many namespaces are gathered and serialized on
/// the request worker: a few microseconds each, less than handing them to
/// another thread. Larger ones (a tenant whose token names many
/// namespaces, or a server-wide view) go to the views thread.
const INLINE_NAMESPACES: usize = 64;

/// What of the store's figures a caller may see: everything for admins
/// (and on an open server); for a tenant, only its namespaces, with totals
/// over them, and nothing server-wide.
///
/// A tenant's figures are looked up namespace by namespace, O(its
/// namespaces); everyone else's come from a walk of every namespace, done
/// off the request workers and shared with concurrent requests
/// ([`super::views`]).
async fn visible_stats(
    state: &HandlerContext,
    caller: &Grants,
) -> Result<Arc<BackendStats>, ApiError> {
    match caller.readable_namespaces() {
        Some(names) if names.len() <= INLINE_NAMESPACES => {
            Ok(Arc::new(state.backend.scoped_stats(names).await?))
        }
        Some(names) => {
            let (backend, names) = (state.backend.clone(), names.to_vec());
            let runtime = tokio::runtime::Handle::current();
            let gather = move || {
                let _runtime = runtime.enter();
                wait_here(backend.scoped_stats(&names))
            };
            Ok(Arc::new(
                off_worker("gathering a tenant's figures", gather).await??,
            ))
        }
        None => state.views.stats().await,
    }
}

/// Runs `render`, which serializes a view of `stats`: in place when it
/// holds few namespaces, else on the views thread (O(namespaces)).
async fn render_view(
    stats: &BackendStats,
    what: &'static str,
    render: impl FnOnce() -> Vec<u8> + Send + 'static,
) -> Result<Vec<u8>, ApiError> {
    if stats.store.namespaces.len() <= INLINE_NAMESPACES {
        Ok(render())
    } else {
        off_worker(what, render).await
    }
}

#[utoipa::path(
    get, path = "/health", tag = "server",
    params(("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace (1 to 64 of A-Z a-z 0-9 _ . -); absent: the default namespace")),
    responses(
        (status = 200, description = "The server answers", body = api::HealthAnswer),
        (status = 422, description = "An invalid namespace name", body = api::ErrorBody),
        (status = 503, description = "The write-ahead log cannot be written, so writes are refused; see the Retry-After header", body = api::UnhealthyAnswer),
    )
)]
/// Liveness needs no token; a namespace's size does. A server that
/// refuses writes (its log cannot be written) answers 503 before anything
/// else, so that a load balancer takes it out whatever it asks.
pub async fn health(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    query: Result<Query<NsQuery>, QueryRejection>,
) -> ApiResult {
    if let Health::WritesRefused { detail } = state.backend.health().await {
        return Ok(unhealthy(detail));
    }
    let namespace = ns_of(query)?;
    let store_size = match (&namespace, caller) {
        (Some(ns), caller) => {
            state.admit(&caller?.0, Some(ns), Access::Read)?;
            state.backend.namespace_stats(Some(ns)).await?.total_keys
        }
        (None, Ok(Caller(caller))) => visible_stats(&state, &caller).await?.store.total_keys,
        (None, Err(_)) => 0,
    };
    Ok(axum::Json(api::HealthAnswer {
        namespace,
        status: api::HealthStatus::Healthy,
        store_size,
    })
    .into_response())
}

/// The answer of `/health` while writes are refused: 503, with when to
/// ask again.
fn unhealthy(detail: String) -> Response {
    let body = api::UnhealthyAnswer {
        detail,
        status: api::UnhealthyStatus::Unhealthy,
    };
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(LOG_RETRY_AFTER_SECS));
    response
}

/// `POST /compact`: starts a rewrite of the log, as PyKV does.
#[utoipa::path(
    post, path = "/compact", tag = "server",
    responses(
        (status = 200, description = "A rewrite of the log started, or one is running", body = api::CompactAnswer),
        (status = 501, description = "The storage backend keeps no log (`--backend memory`)", body = api::ErrorBody),
    )
)]
pub async fn compact(State(state): State<AppState>, Caller(caller): Caller) -> ApiResult {
    caller.require_admin("/compact").map_err(ApiError::Auth)?;
    let status = if state.backend.compact().await? {
        api::CompactStatus::CompactionStarted
    } else {
        api::CompactStatus::CompactionAlreadyRunning
    };
    Ok(axum::Json(api::CompactAnswer { status }).into_response())
}

/// Unknown paths. `/get/` and `/delete/` with nothing after the slash
/// are answered as what they are, an empty key.
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    if matches!(uri.path(), "/get/" | "/delete/") {
        return ApiError::invalid(
            "path: the key must not be empty; use /get/{key} with a non-empty key",
        );
    }
    ApiError::NoRoute {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
