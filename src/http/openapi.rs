//! `GET /openapi.json`: the OpenAPI 3.1 document of the API, generated
//! from the code by utoipa: each handler carries its `#[utoipa::path]`
//! (route, parameters, every status it can answer), and the bodies are the
//! schemas below. `tests/operability.rs` checks that every route of the
//! router is in the document and that real answers match their schemas.
//!
//! The answer bodies of the key-value routes are written with `json!` in
//! the handlers; the types here describe them for the document only.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::{OpenApi, ToSchema};

use super::observe::ErrorRecord;
use super::performance::{OperationFigures, Performance, RecentErrors};

/// The document, built once per request of `/openapi.json` (it is small).
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    add_guard_answers(&mut doc);
    doc
}

/// Routes that answer without a token (the documentation itself, and the
/// empty-key errors, which are refused before anything else).
const OPEN_PATHS: [&str; 3] = ["/openapi.json", "/docs", "/docs/{file}"];

/// Every other route may also answer 401 (no or unknown token, once the
/// server has tokens), 403 (outside the token's namespaces or access) and
/// 429 (over a namespace's rate limit): added here once rather than on
/// every handler. The bearer scheme lets the docs page send a token.
fn add_guard_answers(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    let guarded = [
        (
            "401",
            "No token, or an unknown one, on a server that requires tokens",
        ),
        (
            "403",
            "The token does not allow this namespace or this access",
        ),
        (
            "429",
            "Over the namespace's rate limit; see the Retry-After header",
        ),
    ];
    for (path, item) in doc.paths.paths.iter_mut() {
        if OPEN_PATHS.contains(&path.as_str()) {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            for (status, description) in guarded {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error(description).into());
            }
            operation.security = Some(vec![
                SecurityRequirement::default(),
                SecurityRequirement::new("bearer", Vec::<String>::new()),
            ]);
        }
    }
    let scheme = SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme("bearer", scheme);
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "PyKV",
        description = "A multi-tenant key-value server over HTTP and JSON, wire-compatible \
            with the Python PyKV. Namespaces come from `?ns=` (or the body's `namespace` on \
            `POST /set`); without one, a request works on the default namespace. Every error \
            is `{\"detail\": \"...\"}`. Any route called with a method it does not accept \
            answers 405, and a path that matches no route 404, both with a `detail`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        super::handlers::set,
        super::handlers::get,
        super::handlers::delete,
        super::handlers::list_keys,
        super::handlers::list_namespaces,
        super::handlers::namespace_keys,
        super::handlers::clear_namespace,
        super::handlers::stats,
        super::handlers::health,
        super::handlers::compact,
        super::quota::get_quota,
        super::quota::put_quota,
        super::performance_handler,
        super::recent_errors_handler,
        super::metrics_handler,
        super::openapi_handler,
        super::docs_index_handler,
        super::docs_file_handler,
    ),
    components(schemas(
        SetBody,
        SetAnswer,
        GetAnswer,
        DeleteAnswer,
        NamespacesAnswer,
        NamespaceKeysAnswer,
        KeysAnswer,
        super::quota::QuotaBody,
        super::quota::QuotaAnswer,
        ClearAnswer,
        StatsAnswer,
        NamespaceStats,
        HealthAnswer,
        UnhealthyAnswer,
        CompactAnswer,
        ErrorBody,
        Performance,
        OperationFigures,
        RecentErrors,
        ErrorRecord,
    )),
    tags(
        (name = "keys", description = "Set, get and delete keys"),
        (name = "namespaces", description = "List, measure and clear namespaces"),
        (name = "server", description = "Statistics, health and log compaction"),
        (name = "operability", description = "Metrics, performance figures and documentation"),
    )
)]
struct ApiDoc;

/// Every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What was wrong and, where it helps, what to do; `Key not found` for
    /// a missing key.
    pub detail: String,
}

/// The body of `POST /set`.
#[derive(Serialize, ToSchema)]
pub struct SetBody {
    /// Non-empty, at most `--max-key-bytes` bytes of UTF-8.
    #[schema(min_length = 1)]
    pub key: String,
    /// Any JSON value; given back unchanged by `GET /get/{key}`.
    pub value: Value,
    /// Seconds until the key expires, 1 to 3153600000; absent or null for
    /// a key that never expires.
    #[schema(minimum = 1, maximum = 3_153_600_000_u64)]
    pub ttl: Option<u64>,
    /// Wins over `?ns=`; null or absent: the query's namespace, or the
    /// default one.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub namespace: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SetStatus {
    Success,
}

#[derive(Serialize, ToSchema)]
pub struct SetAnswer {
    pub status: SetStatus,
    pub key: String,
    /// null for the default namespace.
    pub namespace: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct GetAnswer {
    pub key: String,
    /// The stored JSON value, as it was set.
    pub value: Value,
    pub namespace: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeleteStatus {
    Deleted,
}

#[derive(Serialize, ToSchema)]
pub struct DeleteAnswer {
    pub status: DeleteStatus,
    pub key: String,
    pub namespace: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct NamespacesAnswer {
    /// Named namespaces holding at least one live key, sorted.
    pub namespaces: Vec<String>,
    pub count: usize,
}

#[derive(Serialize, ToSchema)]
pub struct NamespaceKeysAnswer {
    pub namespace: String,
    pub total_keys: usize,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClearStatus {
    Cleared,
}

#[derive(Serialize, ToSchema)]
pub struct ClearAnswer {
    pub status: ClearStatus,
    pub namespace: String,
    pub keys_deleted: usize,
}

/// A page of `GET /keys`.
#[derive(Serialize, ToSchema)]
pub struct KeysAnswer {
    /// The namespace listed; null for the default namespace.
    pub namespace: Option<String>,
    /// Keys in order.
    pub keys: Vec<String>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub cursor: Option<String>,
}

/// Counters of one namespace.
#[derive(Serialize, ToSchema)]
pub struct NamespaceStats {
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub total_keys: usize,
    pub used_bytes: u64,
    pub evictions: u64,
    /// Keys removed because their TTL ran out.
    pub expirations: u64,
}

/// The answer of `GET /stats`.
#[derive(Serialize, ToSchema)]
pub struct StatsAnswer {
    /// Every namespace's live keys; with `?ns=`, that namespace's.
    pub total_keys: usize,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub evictions: u64,
    /// Keys removed because their TTL ran out.
    pub expirations: u64,
    pub used_bytes: u64,
    /// null: unlimited.
    pub max_bytes: Option<u64>,
    /// null: unlimited.
    pub max_keys: Option<u64>,
    /// Bytes in the write-ahead log.
    pub log_size: u64,
    /// Seconds since the Unix epoch, or null.
    pub last_compaction: Option<f64>,
    pub uptime_seconds: f64,
    /// Named namespaces holding at least one live key.
    pub namespaces: BTreeMap<String, NamespaceStats>,
    pub default_namespace: NamespaceStats,
    /// Only with `?ns=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only with `?ns=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_stats: Option<NamespaceStats>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Healthy,
}

/// `/health` when the write-ahead log cannot be written: writes are
/// refused with 503 until it can; a load balancer should take the node out.
#[derive(Serialize, ToSchema)]
pub struct UnhealthyAnswer {
    /// Always `unhealthy`.
    #[schema(example = "unhealthy")]
    pub status: String,
    /// Why, and that writes are refused meanwhile.
    pub detail: String,
}

#[derive(Serialize, ToSchema)]
pub struct HealthAnswer {
    pub status: HealthStatus,
    /// Live keys: every namespace's, or with `?ns=` that namespace's.
    pub store_size: usize,
    /// Only with `?ns=`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CompactStatus {
    CompactionStarted,
    CompactionAlreadyRunning,
}

#[derive(Serialize, ToSchema)]
pub struct CompactAnswer {
    pub status: CompactStatus,
}
