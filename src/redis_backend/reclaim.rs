//! Deleting the keys a clear set aside, in the background.
//!
//! Why in batches of [`BATCH`] with a pause between them: each batch is
//! one script, and a script blocks its Redis shard while it runs; short
//! ones let the shard serve everyone else in between, so reclaiming a
//! namespace of millions of keys never stalls the other tenants.

use std::time::Duration;

use super::connection::{Connection, Patience};
use super::layout::NamespaceKeys;
use super::scripts::RECLAIM_SCRIPT;
use super::{invocation, within};

/// Keys deleted by one script.
const BATCH: usize = 256;
/// Pause between two batches.
const PAUSE: Duration = Duration::from_millis(1);

/// Starts reclaiming every set of keys queued by the namespace's clears.
/// A failure stops it with a log line: what is left stays queued for the
/// next clear of the namespace.
pub fn spawn(connection: Connection, keys: NamespaceKeys, patience: Patience) {
    tokio::spawn(async move {
        let mut connection = connection;
        let mut call = invocation(&RECLAIM_SCRIPT, &keys);
        call.arg(keys.base()).arg(BATCH);
        loop {
            match within(patience, call.invoke_async::<i64>(&mut connection)).await {
                Ok(0) => return,
                Ok(_) => tokio::time::sleep(PAUSE).await,
                Err(error) => {
                    tracing::warn!(%error, "reclaiming a cleared namespace stopped; the next clear resumes it");
                    return;
                }
            }
        }
    });
}
