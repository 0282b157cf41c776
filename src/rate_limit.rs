//! Per-namespace rate limits: a token bucket for each namespace, with the
//! rates of the quota file (`requests_per_second`, `burst`). The HTTP layer
//! checks them for every request it admits and answers a refusal with 429.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

/// Requests per second allowed to a namespace, with a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// A request refused: the namespace's bucket is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimited {
    pub namespace: Option<String>,
    /// Whole seconds until the next request will be allowed (at least 1).
    pub retry_after_secs: u64,
}

/// Token buckets per namespace.
///
/// Why one mutex around the buckets: the check is a few arithmetic
/// operations, and it is only taken when a limit is configured at all.
#[derive(Default)]
pub struct RateLimits {
    /// The rates, replaced whole by a reload (`SIGHUP`).
    rates: RwLock<Rates>,
    /// Whether any rate is set: a server without rate limits reads this
    /// one flag a request, no lock.
    any: AtomicBool,
    buckets: Mutex<HashMap<Option<Box<str>>, Bucket>>,
}

#[derive(Default)]
struct Rates {
    default: Option<Rate>,
    overrides: HashMap<String, Rate>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before full ones are dropped (a full bucket is the same
/// as no bucket), so names never seen again cannot grow the map forever.
const MAX_BUCKETS: usize = 100_000;

impl RateLimits {
    pub fn new(default: Option<Rate>, overrides: HashMap<String, Rate>) -> Self {
        let limits = RateLimits::default();
        limits.set(Rates { default, overrides });
        limits
    }

    /// Takes `new`'s rates (a reload); the buckets, which hold how much
    /// of its burst each namespace has used, are kept.
    pub fn replace(&self, new: RateLimits) {
        self.set(new.rates.into_inner().unwrap_or_else(|p| p.into_inner()));
    }

    fn set(&self, rates: Rates) {
        let any = rates.default.is_some() || !rates.overrides.is_empty();
        *self.rates.write().unwrap_or_else(|p| p.into_inner()) = rates;
        self.any.store(any, Ordering::Release);
    }

    fn rate_of(&self, namespace: Option<&str>) -> Option<Rate> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let rates = self.rates.read().unwrap_or_else(|p| p.into_inner());
        namespace
            .and_then(|ns| rates.overrides.get(ns))
            .copied()
            .or(rates.default)
    }

    /// Takes one request from the namespace's bucket; when it is empty,
    /// says in how many whole seconds the next request will be allowed.
    pub fn check(&self, namespace: Option<&str>) -> Result<(), RateLimited> {
        let Some(rate) = self.rate_of(namespace) else {
            return Ok(());
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            buckets.retain(|_, b| refill(b, rate, now) < rate.burst);
        }
        let bucket = buckets.entry(namespace.map(Into::into)).or_insert(Bucket {
            tokens: rate.burst,
            at: now,
        });
        let tokens = refill(bucket, rate, now);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            return Ok(());
        }
        let wait = (1.0 - tokens) / rate.per_second;
        Err(RateLimited {
            namespace: namespace.map(str::to_owned),
            retry_after_secs: wait.ceil().max(1.0) as u64,
        })
    }
}

/// Tokens in `bucket` at `now`.
fn refill(bucket: &Bucket, rate: Rate, now: Instant) -> f64 {
    let elapsed = now.duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * rate.per_second).min(rate.burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals_with_retry_after() {
        let limits = RateLimits::new(
            Some(Rate {
                per_second: 0.5,
                burst: 3.0,
            }),
            HashMap::new(),
        );
        for _ in 0..3 {
            limits.check(Some("a")).unwrap();
        }
        match limits.check(Some("a")) {
            Err(RateLimited {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, 2),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Another namespace has its own bucket.
        limits.check(Some("b")).unwrap();
    }

    #[test]
    fn overrides_win_and_no_rate_means_no_limit() {
        let mut overrides = HashMap::new();
        overrides.insert(
            "vip".to_string(),
            Rate {
                per_second: 1000.0,
                burst: 1000.0,
            },
        );
        let limits = RateLimits::new(None, overrides);
        for _ in 0..500 {
            limits.check(Some("vip")).unwrap();
            limits.check(Some("other")).unwrap();
        }
    }
}
