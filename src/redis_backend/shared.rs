//! The connection every call uses, and its renewal when a cluster node
//! hangs.
//!
//! Why renew: the `redis` crate learns a cluster's new layout when a node
//! answers MOVED or refuses connections, but a hung master (stopped, or
//! cut off with its sockets open) only makes calls time out, and the crate
//! retries the same node forever. After a timeout, a fresh connection asks
//! the nodes that answer who serves which slots, which finds the replica
//! that took over. At most one renewal runs at a time, at most one a
//! second, in the background: requests never wait for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redis::cluster::ClusterClient;

use super::connection::{Connection, Patience};

/// Least time between two renewals.
const RENEWAL_INTERVAL: Duration = Duration::from_secs(1);

pub struct SharedConnection {
    current: RwLock<Connection>,
    /// For a cluster: how to connect afresh.
    client: Option<ClusterClient>,
    patience: Patience,
    renewing: AtomicBool,
    last_renewal: Mutex<Option<Instant>>,
}

impl SharedConnection {
    pub fn new(connection: Connection, client: Option<ClusterClient>, patience: Patience) -> Self {
        SharedConnection {
            current: RwLock::new(connection),
            client,
            patience,
            renewing: AtomicBool::new(false),
            last_renewal: Mutex::new(None),
        }
    }

    /// The connection to use now (a cheap clone of a shared handle).
    pub fn get(&self) -> Connection {
        (self.current.read().unwrap_or_else(PoisonError::into_inner)).clone()
    }

    /// After a call timed out: reconnects to a cluster in the background,
    /// unless a renewal is running or ran less than a second ago.
    pub fn renew(self: &Arc<Self>) {
        let Some(client) = self.client.clone() else {
            return;
        };
        if !self.due() || self.renewing.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = self.clone();
        tokio::spawn(async move {
            let connecting = client.get_async_connection();
            match tokio::time::timeout(shared.patience.timeout * 2, connecting).await {
                Ok(Ok(fresh)) => {
                    *shared
                        .current
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) = Connection::Cluster(fresh);
                    tracing::info!("reconnected to the Redis Cluster after a timeout");
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "reconnecting to the Redis Cluster failed")
                }
                Err(_) => tracing::warn!("reconnecting to the Redis Cluster timed out"),
            }
            *shared
                .last_renewal
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
            shared.renewing.store(false, Ordering::Release);
        });
    }

    fn due(&self) -> bool {
        let last = *self
            .last_renewal
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.is_none_or(|at| at.elapsed() >= RENEWAL_INTERVAL)
    }
}
