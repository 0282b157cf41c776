//! Tokens kept in Redis, for PyKV nodes over a Redis backend: every node
//! reads the same tokens, and `pykv token create|revoke --backend
//! redis://...` changes them for all.
//!
//! The token document (the token file's JSON) is one Redis string,
//! `PREFIX:{auth}:tokens`, beside a version counter `PREFIX:{auth}:version`
//! in the same slot. Why a version: each node polls it four times a second
//! (the token file's reload period), a few bytes, and fetches the document
//! only when it changed; so a change is honoured by every node within a
//! second, at a cost that does not grow with the number of tokens. Why
//! not keyspace notifications: they are off by default, a cluster sends
//! them only from the node that holds the key, and a subscriber that
//! misses one (a reconnect, a failover) would keep a revoked token; a
//! poll cannot miss a change.
//!
//! An edit is optimistic: read the version and the document, change the
//! document, and write it back with a script that does so only if the
//! version is still the one read (and increments it); otherwise read
//! again. Two `pykv token` commands run at once, even on two machines,
//! never lose each other's change.
//!
//! Everything here is blocking, with a deadline: the CLI and the token
//! reload thread are no runtime workers.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::{ConnectionLike, RedisResult, Script};

use crate::redis_backend::RedisTarget;

/// The tokens of the PyKV deployment under `prefix` in a Redis.
pub struct RedisTokens {
    target: RedisTarget,
    timeout: Duration,
    tokens_key: String,
    version_key: String,
    connection: Mutex<Option<Box<dyn ConnectionLike + Send>>>,
    /// The version and document last fetched.
    cached: Mutex<Option<(i64, Option<Vec<u8>>)>>,
}

/// KEYS: tokens, version; ARGV: the version read, the new document.
/// Returns 1 when written, 0 when someone wrote first.
const REPLACE: &str = r"
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if current ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('INCR', KEYS[2])
return 1
";

impl RedisTokens {
    pub fn new(target: RedisTarget, prefix: &str, timeout: Duration) -> Self {
        RedisTokens {
            target,
            timeout,
            tokens_key: format!("{prefix}:{{auth}}:tokens"),
            version_key: format!("{prefix}:{{auth}}:version"),
            connection: Mutex::new(None),
            cached: Mutex::new(None),
        }
    }

    /// Where the tokens are, for messages: the Redis and the key.
    pub fn describe(&self) -> String {
        format!("{} key {}", self.target, self.tokens_key)
    }

    /// The document (`None`: no token was ever written), fetched again
    /// only when its version changed.
    pub fn read(&self) -> RedisResult<Option<Vec<u8>>> {
        let version: Option<i64> =
            self.with_connection(|c| redis::cmd("GET").arg(&self.version_key).query(c))?;
        let version = version.unwrap_or(0);
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((seen, text)) = cached.as_ref()
            && *seen == version
        {
            return Ok(text.clone());
        }
        let (version, text) = self.fetch()?;
        *cached = Some((version, text.clone()));
        Ok(text)
    }

    /// The version and the document, read together.
    pub fn fetch(&self) -> RedisResult<(i64, Option<Vec<u8>>)> {
        let (version, text): (Option<i64>, Option<Vec<u8>>) = self.with_connection(|c| {
            redis::cmd("MGET")
                .arg(&self.version_key)
                .arg(&self.tokens_key)
                .query(c)
        })?;
        Ok((version.unwrap_or(0), text))
    }

    /// Writes `text` if the version is still `version`; false when another
    /// edit came first.
    pub fn replace(&self, version: i64, text: &str) -> RedisResult<bool> {
        let script = Script::new(REPLACE);
        let written: i64 = self.with_connection(|c| {
            script
                .key(&self.tokens_key)
                .key(&self.version_key)
                .arg(version)
                .arg(text)
                .invoke(c)
        })?;
        Ok(written == 1)
    }

    /// Runs `call` on the connection, connecting first if there is none;
    /// after an error the connection is dropped, and the next call
    /// connects afresh (a cluster then learns its new layout).
    fn with_connection<T>(
        &self,
        call: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let mut slot = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(self.connect()?);
        }
        let connection = slot.as_mut().expect("connected above");
        let result = call(connection.as_mut());
        if result.is_err() {
            *slot = None;
        }
        result
    }

    fn connect(&self) -> RedisResult<Box<dyn ConnectionLike + Send>> {
        match &self.target {
            RedisTarget::Single { url } => {
                let client = redis::Client::open(url.as_str())?;
                let connection = client.get_connection_with_timeout(self.timeout)?;
                connection.set_read_timeout(Some(self.timeout))?;
                connection.set_write_timeout(Some(self.timeout))?;
                Ok(Box::new(connection))
            }
            RedisTarget::Cluster { seeds } => {
                let client = redis::cluster::ClusterClientBuilder::new(seeds.clone())
                    .connection_timeout(self.timeout)
                    .response_timeout(self.timeout)
                    .retries(2)
                    .build()?;
                Ok(Box::new(client.get_connection()?))
            }
        }
    }
}
