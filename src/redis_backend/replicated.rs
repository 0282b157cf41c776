//! `--redis-wait-replicas N`: each write's script followed by `WAIT N`
//! in the same round trip, on the same connection.
//!
//! Why a connection wrapper: `Script::invoke_async` sends EVALSHA (and
//! loads the script after a NOSCRIPT) through any [`ConnectionLike`]; this
//! one sends each EVALSHA as a two-command pipeline, `EVALSHA ...; WAIT N
//! MS`. A pipeline's first keyed command routes it, so in a cluster both
//! go to the master of the namespace's slot, back to back on one socket:
//! `WAIT` then waits for that write (and any before it on the socket) to
//! reach N replicas. Other commands (`SCRIPT LOAD`) pass through as they
//! are: they must reach the node the crate picks for them.
//!
//! Why a connection of its own ([`super::shared`]): `WAIT` blocks the
//! Redis client that sends it, and a multiplexed connection is one client
//! for every request. Waited writes queue behind each other's `WAIT` on
//! their connection; reads keep theirs, so a lost replica delays writes
//! (refused after the deadline) but not reads.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, RedisFuture, Value};

use super::connection::Connection;

/// A connection that waits for replicas after every script.
pub struct Replicated {
    inner: Connection,
    replicas: u32,
    wait: Duration,
    /// Replicas that confirmed the last script, once one ran.
    confirmed: Option<u32>,
}

impl Replicated {
    /// `WAIT`s for `replicas` at most `wait` after each script.
    pub fn new(inner: Connection, replicas: u32, wait: Duration) -> Self {
        Replicated {
            inner,
            replicas,
            wait,
            confirmed: None,
        }
    }

    /// How many replicas confirmed the last script (0 before any ran).
    pub fn confirmed(&self) -> u32 {
        self.confirmed.unwrap_or(0)
    }
}

fn is_script_call(cmd: &Cmd) -> bool {
    cmd.args_iter().next().is_some_and(
        |first| matches!(first, redis::Arg::Simple(name) if name.eq_ignore_ascii_case(b"EVALSHA")),
    )
}

impl ConnectionLike for Replicated {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        if !is_script_call(cmd) {
            return self.inner.req_packed_command(cmd);
        }
        Box::pin(async move {
            let mut pipeline = redis::pipe();
            pipeline.add_command(cmd.clone());
            let wait_ms = self.wait.as_millis().max(1) as u64;
            pipeline.cmd("WAIT").arg(self.replicas).arg(wait_ms);
            let mut answers = self.inner.req_packed_commands(&pipeline, 0, 2).await?;
            let waited = answers.pop();
            let answer = answers.pop().unwrap_or(Value::Nil).extract_error()?;
            self.confirmed = match waited {
                Some(Value::Int(n)) => Some(n.clamp(0, i64::from(u32::MAX)) as u32),
                _ => Some(0),
            };
            Ok(answer)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.inner.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}
