//! What a Redis failure means to a client of PyKV.
//!
//! Why everything maps to 503 (or 507) and nothing to 500: from PyKV's
//! side a Redis error is a store out of reach (connection lost, cluster
//! failing over, slots moving), too slow, or full; each is temporary and
//! the client should retry, which `Retry-After` tells it.

use std::time::Duration;

use redis::RedisError;

use crate::backend::BackendError;
use crate::store::StoreError;

/// The backend error for a failed Redis call.
pub fn from_redis(error: &RedisError, timeout: Duration) -> BackendError {
    if error.is_timeout() {
        return BackendError::TimedOut { after: timeout };
    }
    if let Some(refusal) = quota_refusal(error) {
        return refusal.into();
    }
    if error.code() == Some("OOM") {
        return StoreError::LimitReached {
            scope: "the Redis store".into(),
            limit: "its maxmemory".into(),
        }
        .into();
    }
    if !(error.is_io_error() || error.is_cluster_error() || error.is_connection_dropped()) {
        // Not a connectivity problem: a script or protocol error is a bug
        // here, worth a log line; the client still gets a 503.
        tracing::warn!(%error, "unexpected answer from Redis");
    }
    BackendError::Unavailable {
        detail: format!("Redis: {}", error.kind_name()),
    }
}

/// A script's refusal of a write past a quota (scripts.rs, `admit`):
/// `PYKV_LIMIT scope|limit|` or `PYKV_TOO_LARGE scope|size|max|`; Redis
/// appends where in the script it was raised, after the last `|`.
fn quota_refusal(error: &RedisError) -> Option<StoreError> {
    quota_refusal_of(error.code()?, error.detail()?)
}

/// A refusal a script returned rather than raised (the import's, which
/// keeps what it stored before it): `CODE detail`, as in [`quota_refusal`].
pub fn returned_refusal(text: &str) -> Option<StoreError> {
    // Redis may put where the error was raised in front of it.
    let text = &text[text.find("PYKV_")?..];
    let (code, detail) = text.split_once(' ')?;
    quota_refusal_of(code, detail)
}

fn quota_refusal_of(code: &str, detail: &str) -> Option<StoreError> {
    let fields: Vec<&str> = detail.split('|').collect();
    match (code, fields.as_slice()) {
        ("PYKV_LIMIT", [scope, limit, ..]) => Some(StoreError::LimitReached {
            scope: (*scope).to_owned(),
            limit: (*limit).to_owned(),
        }),
        ("PYKV_TOO_LARGE", [scope, size, max, ..]) => Some(StoreError::TooLarge {
            scope: (*scope).to_owned(),
            size: size.parse().ok()?,
            max: max.parse().ok()?,
        }),
        _ => None,
    }
}

/// A short description of the error's kind, without addresses or keys.
trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for RedisError {
    fn kind_name(&self) -> String {
        match self.code() {
            Some(code) => code.to_owned(),
            None if self.is_connection_refusal() => "connection refused".into(),
            None if self.is_io_error() || self.is_connection_dropped() => "connection lost".into(),
            None => format!("{:?}", self.kind()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_refusal_reads_as_the_engine_error_wherever_redis_put_it() {
        let limit = returned_refusal("PYKV_LIMIT namespace \"q\"|3 keys| script: 7");
        assert_eq!(
            limit,
            Some(StoreError::LimitReached {
                scope: "namespace \"q\"".into(),
                limit: "3 keys".into(),
            })
        );
        let large = returned_refusal("user_script:1: PYKV_TOO_LARGE the default namespace|90|64|");
        assert_eq!(
            large,
            Some(StoreError::TooLarge {
                scope: "the default namespace".into(),
                size: 90,
                max: 64,
            })
        );
        assert_eq!(returned_refusal("ERR something else"), None);
    }
}
