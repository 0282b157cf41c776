//! Server-wide views, gathered off the request workers and shared by the
//! requests that ask for them at the same time.
//!
//! `/stats` for an admin (or anyone on an open server), `/namespaces`,
//! `/health`'s total and `/metrics` need the figures of every namespace:
//! O(namespaces), over a second at 100,000 namespaces. Gathered on one of
//! tokio's request workers (one per core), a few clients polling them would
//! hold every worker, and every other request would wait behind them.
//!
//! So [`ServerViews::stats`] gathers them on tokio's blocking pool, and
//! requests that ask at the same time share one walk ("a round"):
//!
//! - at most one round runs at a time;
//! - a request arriving when none runs starts one;
//! - a request arriving while one runs waits for the *next* round, which
//!   starts as soon as the running one ends and serves every request that
//!   arrived meanwhile.
//!
//! Why not join the running round: it may have read a namespace before the
//! request's own, earlier, write reached it. An answer must show every
//! write acknowledged before its request arrived, as it did when each
//! request walked on its own (clients read their writes back through
//! `/stats`). So however many clients poll, one walk runs at a time, and
//! each answer waits for at most two walks.
//!
//! A tenant's views do not come here: they look up the tenant's own
//! namespaces only ([`crate::backend::KvBackend::scoped_stats`]).

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::ApiError;
use crate::backend::{BackendStats, KvBackend};

/// Where a round's figures go: `None` until they are gathered. Dropped
/// without a value if gathering them panicked.
type Round = watch::Sender<Option<Arc<BackendStats>>>;

pub struct ServerViews {
    backend: Arc<dyn KvBackend>,
    rounds: Mutex<Rounds>,
}

#[derive(Default)]
struct Rounds {
    running: bool,
    /// The round that starts when the running one ends; created by the
    /// first request that waits for it.
    next: Option<Round>,
}

impl ServerViews {
    pub fn new(backend: Arc<dyn KvBackend>) -> Arc<Self> {
        Arc::new(ServerViews {
            backend,
            rounds: Mutex::default(),
        })
    }

    /// The figures of the whole server, gathered after this call began.
    pub async fn stats(self: &Arc<Self>) -> Result<Arc<BackendStats>, ApiError> {
        let mut round = self.join_round();
        let gathered = round.wait_for(Option::is_some).await;
        match gathered {
            Ok(stats) => Ok(stats.clone().expect("waited for a value")),
            Err(_) => Err(ApiError::Internal("gathering the server's figures")),
        }
    }

    /// Subscribes to the round that will answer a request arriving now,
    /// starting it if no round runs.
    fn join_round(self: &Arc<Self>) -> watch::Receiver<Option<Arc<BackendStats>>> {
        let mut rounds = self.lock();
        if rounds.running {
            return rounds
                .next
                .get_or_insert_with(|| watch::channel(None).0)
                .subscribe();
        }
        rounds.running = true;
        let (round, receiver) = watch::channel(None);
        tokio::spawn(self.clone().run_rounds(round));
        receiver
    }

    /// Runs `round`, then each round that requests queued behind it, until
    /// none waits.
    async fn run_rounds(self: Arc<Self>, mut round: Round) {
        loop {
            let backend = self.backend.clone();
            match tokio::task::spawn_blocking(move || backend.stats()).await {
                Ok(stats) => {
                    round.send_replace(Some(Arc::new(stats)));
                }
                // Its waiters learn it when `round` is dropped below.
                Err(e) => tracing::error!(error = %e, "gathering the server's figures failed"),
            }
            let mut rounds = self.lock();
            match rounds.next.take() {
                Some(next) => round = next,
                None => {
                    rounds.running = false;
                    return;
                }
            }
        }
    }

    /// The rounds' state holds no invariant a panic could break midway.
    fn lock(&self) -> MutexGuard<'_, Rounds> {
        self.rounds.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs `render`, which is O(namespaces) (serializing a server-wide view),
/// on the blocking pool rather than on a request worker.
pub async fn off_worker<T: Send + 'static>(
    what: &'static str,
    render: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(render).await.map_err(|e| {
        tracing::error!(error = %e, "{what} failed");
        ApiError::Internal(what)
    })
}
