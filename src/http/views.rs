//! Server-wide views, gathered off the request workers and shared by the
//! requests that ask for them at the same time.
//!
//! `/stats` for an admin (or anyone on an open server), `/namespaces`,
//! `/health`'s total and `/metrics` need the figures of every namespace:
//! O(namespaces), over a second at 100,000 namespaces. Gathered on one of
//! tokio's request workers (one per core), a few clients polling them would
//! hold every worker, and every other request would wait behind them.
//!
//! So [`ServerViews::stats`] gathers them on one thread of their own, and
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

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};

use tokio::sync::{oneshot, watch};

use super::{ApiError, HandlerContext};
use crate::auth::Grants;
use crate::backend::{Backend, BackendError, BackendStats, KvBackend, wait_here};

/// Where a round's figures (or the backend's refusal) go: `None` until
/// they are gathered. Dropped without a value if gathering them panicked.
type Round = watch::Sender<Gathered>;
type Gathered = Option<Result<Arc<BackendStats>, BackendError>>;

/// Gathers the figures of the whole server: O(namespaces).
type Gather = Arc<dyn Fn() -> Result<BackendStats, BackendError> + Send + Sync>;

pub struct ServerViews {
    gather: Gather,
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
    /// Views of `backend`; starts the views thread if it is not running.
    ///
    /// The gathering runs on the views thread, which is no runtime worker:
    /// it enters the runtime (a remote backend's I/O needs its reactor) and
    /// waits there for the backend's answer.
    pub fn new(backend: Arc<Backend>) -> Arc<Self> {
        start_views_thread();
        let runtime = tokio::runtime::Handle::try_current().ok();
        Self::gathering(Arc::new(move || {
            let _runtime = runtime.as_ref().map(tokio::runtime::Handle::enter);
            wait_here(backend.stats())
        }))
    }

    fn gathering(gather: Gather) -> Arc<Self> {
        Arc::new(ServerViews {
            gather,
            rounds: Mutex::default(),
        })
    }

    /// The figures of the whole server, gathered after this call began.
    pub async fn stats(self: &Arc<Self>) -> Result<Arc<BackendStats>, ApiError> {
        let mut round = self.join_round();
        let gathered = round.wait_for(Option::is_some).await;
        match gathered {
            Ok(gathered) => match gathered.as_ref().expect("waited for a value") {
                Ok(stats) => Ok(stats.clone()),
                Err(refusal) => Err(refusal.clone().into()),
            },
            Err(_) => Err(ApiError::Internal("gathering the server's figures")),
        }
    }

    /// Subscribes to the round that will answer a request arriving now,
    /// starting it if no round runs.
    fn join_round(self: &Arc<Self>) -> watch::Receiver<Gathered> {
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
            let gather = self.gather.clone();
            // On failure its waiters learn it when `round` is dropped below.
            if let Ok(gathered) =
                off_worker("gathering the server's figures", move || gather()).await
            {
                round.send_replace(Some(gathered.map(Arc::new)));
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

/// Work handed to the views thread.
type Job = Box<dyn FnOnce() + Send>;

/// The views thread's queue; unset until [`start_views_thread`] succeeds.
static VIEWS_THREAD: OnceLock<mpsc::Sender<Job>> = OnceLock::new();

/// Starts the one long-lived thread that runs O(namespaces) work (walks
/// and the rendering of server-wide views), unless it runs already.
///
/// Why a thread of our own rather than tokio's blocking pool: the pool
/// starts threads on demand, and a start that the OS refuses (a pids cgroup
/// at its limit) fails the request with a panic. This thread is started
/// once, with the server; if the OS refuses even that one, the work runs
/// on the request's worker, slower for the others but never failing.
pub fn start_views_thread() -> bool {
    if VIEWS_THREAD.get().is_some() {
        return true;
    }
    let (queue, jobs) = mpsc::channel::<Job>();
    let started = std::thread::Builder::new()
        .name("pykv-views".into())
        .spawn(move || jobs.into_iter().for_each(|job| job()));
    match started {
        Ok(_) => VIEWS_THREAD.set(queue).is_ok(),
        Err(e) => {
            tracing::warn!(error = %e, "no thread for server-wide views; they run on request workers");
            false
        }
    }
}

/// Runs `work`, which is O(namespaces), on the views thread rather than on
/// a request worker (in place if that thread could not be started). A panic
/// of `work` is logged and answered as an internal error.
pub async fn off_worker<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let (answer, answered) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = answer.send(catch_unwind(AssertUnwindSafe(work)));
    });
    match VIEWS_THREAD.get() {
        Some(queue) => {
            if let Err(mpsc::SendError(job)) = queue.send(job) {
                job();
            }
        }
        None => job(),
    }
    match answered.await {
        Ok(Ok(value)) => Ok(value),
        _ => {
            tracing::error!("{what} failed: it panicked");
            Err(ApiError::Internal(what))
        }
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
/// ([`ServerViews::stats`]).
pub async fn visible_stats(
    ctx: &HandlerContext,
    caller: &Grants,
) -> Result<Arc<BackendStats>, ApiError> {
    match caller.readable_namespaces() {
        Some(names) if names.len() <= INLINE_NAMESPACES => {
            Ok(Arc::new(ctx.backend.scoped_stats(names).await?))
        }
        Some(names) => {
            let (backend, names) = (ctx.backend.clone(), names.to_vec());
            let runtime = tokio::runtime::Handle::current();
            let gather = move || {
                let _runtime = runtime.enter();
                wait_here(backend.scoped_stats(&names))
            };
            Ok(Arc::new(
                off_worker("gathering a tenant's figures", gather).await??,
            ))
        }
        None => ctx.views.stats().await,
    }
}

/// Runs `render`, which serializes a view of `stats`: in place when it
/// holds few namespaces, else on the views thread (O(namespaces)).
pub async fn render_view(
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    /// Figures that say which walk gathered them.
    fn walk_number(n: usize) -> BackendStats {
        let mut stats = BackendStats::default();
        stats.store.total_keys = n;
        stats
    }

    async fn wait_for_walks(walks: &AtomicUsize, n: usize) {
        for _ in 0..5000 {
            if walks.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("walk {n} never started");
    }

    async fn walk_of(mut round: watch::Receiver<Gathered>) -> usize {
        let stats = round.wait_for(Option::is_some).await.unwrap();
        stats.as_ref().unwrap().as_ref().unwrap().store.total_keys
    }

    #[tokio::test]
    async fn requests_arriving_during_a_walk_share_the_next_one() {
        // The first walk blocks its thread: it must be the views thread,
        // not this test's only runtime thread (alone, nothing else has
        // started it).
        assert!(start_views_thread());
        let walks = Arc::new(AtomicUsize::new(0));
        let (release, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let counter = walks.clone();
        let views = ServerViews::gathering(Arc::new(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            if n == 1 {
                // The first walk lasts until the test lets it end.
                gate.lock().unwrap().recv().unwrap();
            }
            Ok(walk_number(n))
        }));

        let first = views.join_round();
        wait_for_walks(&walks, 1).await;
        // Three requests arrive while the first walk runs: the first walk
        // may have missed their writes, so they wait for a second one.
        let during: Vec<_> = (0..3).map(|_| views.join_round()).collect();
        release.send(()).unwrap();
        assert_eq!(walk_of(first).await, 1);
        for round in during {
            assert_eq!(walk_of(round).await, 2);
        }
        assert_eq!(walks.load(Ordering::SeqCst), 2, "one walk for the three");

        // Once none runs, the next request starts a walk of its own.
        assert_eq!(views.stats().await.unwrap().store.total_keys, 3);
    }

    #[tokio::test]
    async fn a_walk_that_panics_answers_an_error_and_the_next_walks_again() {
        let walks = AtomicUsize::new(0);
        let views = ServerViews::gathering(Arc::new(move || {
            let n = walks.fetch_add(1, Ordering::SeqCst) + 1;
            assert!(n > 1, "the first walk fails");
            Ok(walk_number(n))
        }));
        let error = views.stats().await.unwrap_err();
        assert!(matches!(error, ApiError::Internal(_)), "{error:?}");
        assert_eq!(views.stats().await.unwrap().store.total_keys, 2);
    }

    #[tokio::test]
    async fn a_backend_out_of_reach_is_answered_as_such_and_the_next_walk_retries() {
        let walks = AtomicUsize::new(0);
        let views = ServerViews::gathering(Arc::new(move || {
            match walks.fetch_add(1, Ordering::SeqCst) + 1 {
                1 => Err(BackendError::Unavailable {
                    detail: "connection refused".into(),
                }),
                n => Ok(walk_number(n)),
            }
        }));
        let error = views.stats().await.unwrap_err();
        assert!(
            matches!(&error, ApiError::BackendUnavailable { detail } if detail == "connection refused"),
            "{error:?}"
        );
        assert_eq!(views.stats().await.unwrap().store.total_keys, 2);
    }
}
