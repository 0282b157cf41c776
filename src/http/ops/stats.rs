//! `GET /stats?ns=`: the store's counters as the seed shapes them; a
//! tenant sees only its namespaces, and with `?ns=` one namespace's
//! figures.

use std::borrow::Cow;

use hyper::Method;

use super::{Documented, Needs, Operation, documented};
use crate::api;
use crate::auth::{Access, Grants};
use crate::backend::BackendStats;
use crate::backend::KvBackend;
use crate::http::HandlerContext;
use crate::http::error::ApiError;
use crate::http::reply::{self, Response};
use crate::http::request::Request;
use crate::http::views::{render_view, visible_stats};
use crate::store;

pub struct Stats {
    namespace: Option<String>,
}

impl Operation for Stats {
    const METHOD: Method = Method::GET;
    const PATHS: &'static [&'static str] = &["/stats"];

    fn parse(request: &Request<'_>, _body: &[u8]) -> Result<Self, ApiError> {
        Ok(Stats {
            namespace: request.namespace()?,
        })
    }

    fn needs(&self) -> Needs<'_> {
        match &self.namespace {
            Some(ns) => Needs::Namespace(Some(ns), Access::Read),
            None => Needs::Caller,
        }
    }

    async fn apply(self, ctx: &HandlerContext, caller: &Grants) -> Result<Response, ApiError> {
        // The namespace is validated before anything is gathered.
        let scoped = match self.namespace {
            Some(ns) => {
                let figures = ctx.backend.namespace_stats(Some(&ns)).await?;
                Some((ns, figures))
            }
            None => None,
        };
        let stats = visible_stats(ctx, caller).await?;
        let shown = stats.clone();
        let render = move || stats_body(&shown, scoped);
        Ok(reply::json_bytes(
            render_view(&stats, "rendering /stats", render).await?,
        ))
    }

    fn openapi() -> Option<Documented> {
        documented::<Self>()
    }
}

/// `/stats`'s answer, with one namespace's figures when `?ns=` names one
/// (its keys then are the total).
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
    serde_json::to_vec(&answer).expect("answers always serialize")
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

#[utoipa::path(
    get, path = "/stats", tag = "server", impl_for = Stats,
    params(("ns" = Option<String>, Query, pattern = r"^[A-Za-z0-9_.-]{1,64}$", min_length = 1, max_length = 64, description = "Namespace (1 to 64 of A-Z a-z 0-9 _ . -); absent: the default namespace")),
    responses(
        (status = 200, description = "Counters of the store and its log", body = api::StatsAnswer),
        (status = 422, description = "An invalid namespace name", body = api::ErrorBody),
    )
)]
#[allow(dead_code)]
fn document() {}
