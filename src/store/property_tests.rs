//! Property test of expiry and accounting: random sequences of writes,
//! deletes, clears, reads and clock steps, on a stopped clock, checked
//! against a reference model (a `BTreeMap` of the live keys).
//!
//! Each case is a seeded sequence (fastrand), so a failure names its seed
//! and its operations and replays exactly. The clock steps include zero, so
//! the same key is often set twice within one millisecond with the same
//! TTL: the case of issue 12, item 3.
//!
//! What is checked, after every step and once the clock has passed every
//! deadline and the active expiry cycle has run:
//! - the store's key counts (total, per namespace, `/namespaces`), used
//!   bytes and the quota's `used_keys` equal the model's live keys;
//! - every shard's expiry index holds exactly its table's deadlines;
//! - the journal's records, replayed into a fresh store as recovery does,
//!   give the same state.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};

use super::clock::manual;
use super::namespace::overhead_of;
use super::shard::Entry;
use super::*;

const NAMESPACES: [Option<&str>; 3] = [None, Some("a"), Some("b")];
const KEYS: [&str; 5] = ["k0", "k1", "k2", "k3", "k4"];
/// TTLs in milliseconds, short enough that clock steps cross them.
const TTLS: [u64; 4] = [1, 2, 10, 1_000];
/// Clock steps in milliseconds; zeros make same-millisecond repeats.
const STEPS: [u64; 7] = [0, 0, 0, 1, 2, 9, 1_000];
const START_MS: u64 = 1_800_000_000_000;

#[derive(Debug, Clone)]
enum Op {
    Set {
        ns: Option<&'static str>,
        key: &'static str,
        value: u32,
        ttl: Option<u64>,
    },
    Delete {
        ns: Option<&'static str>,
        key: &'static str,
    },
    Clear {
        ns: &'static str,
    },
    Get {
        ns: Option<&'static str>,
        key: &'static str,
    },
    Step(u64),
    /// One tick of the active expiry cycle, with a small budget.
    Expire(usize),
    /// What the expiry thread does after each tick: free the namespaces
    /// left empty.
    FreeEmpty,
}

fn random_op(rng: &mut fastrand::Rng, last: Option<&Op>) -> Op {
    let ns = NAMESPACES[rng.usize(..NAMESPACES.len())];
    let key = KEYS[rng.usize(..KEYS.len())];
    match rng.u32(..100) {
        // The previous operation again, at once: a retry or a pipeline.
        0..=14 if last.is_some() => last.unwrap().clone(),
        0..=39 => Op::Set {
            ns,
            key,
            value: rng.u32(..3),
            ttl: rng.bool().then(|| TTLS[rng.usize(..TTLS.len())]),
        },
        40..=54 => Op::Delete { ns, key },
        55..=59 => Op::Clear {
            ns: if rng.bool() { "a" } else { "b" },
        },
        60..=69 => Op::Get { ns, key },
        70..=92 => Op::Step(STEPS[rng.usize(..STEPS.len())]),
        93..=96 => Op::FreeEmpty,
        _ => Op::Expire(rng.usize(1..4)),
    }
}

/// A key of the model: its namespace and name.
type ModelKey = (Option<&'static str>, &'static str);

/// The reference: live keys with their value and deadline.
#[derive(Default)]
struct Model {
    keys: BTreeMap<ModelKey, (String, Option<u64>)>,
}

impl Model {
    fn apply(&mut self, op: &Op, now: u64) {
        match *op {
            Op::Set {
                ns,
                key,
                value,
                ttl,
            } => {
                let deadline = ttl.map(|ttl| now + ttl);
                self.keys.insert((ns, key), (value.to_string(), deadline));
            }
            Op::Delete { ns, key } => {
                self.keys.remove(&(ns, key));
            }
            Op::Clear { ns } => self.keys.retain(|(n, _), _| *n != Some(ns)),
            Op::Get { .. } | Op::Step(_) | Op::Expire(_) | Op::FreeEmpty => {}
        }
        self.keys
            .retain(|_, (_, deadline)| deadline.is_none_or(|at| at > now));
    }

    fn live_in(&self, ns: Option<&str>) -> impl Iterator<Item = (&str, &(String, Option<u64>))> {
        self.keys
            .iter()
            .filter(move |((n, _), _)| *n == ns)
            .map(|((_, k), v)| (*k, v))
    }

    fn bytes_in(&self, ns: Option<&str>) -> u64 {
        self.live_in(ns)
            .map(|(key, (value, at))| {
                Entry::new(key, value, at.and_then(NonZeroU64::new), 0).size() as u64
            })
            .sum()
    }

    fn latest_deadline(&self) -> u64 {
        self.keys
            .values()
            .filter_map(|(_, at)| *at)
            .max()
            .unwrap_or(0)
    }
}

/// A journal keeping every record, to replay it.
#[derive(Default)]
struct Log(Mutex<Vec<OwnedMutation>>);

#[derive(Debug, Clone)]
struct OwnedMutation {
    kind: &'static str,
    namespace: Option<String>,
    key: String,
    value: String,
    expires_at: Option<u64>,
}

impl Journal for Log {
    fn append(&self, m: &Mutation<'_>, undo: Undo) -> Result<Lsn, (StoreError, Undo)> {
        let owned = |kind, namespace: Option<&str>, key: &str, value: &str, at| OwnedMutation {
            kind,
            namespace: namespace.map(Into::into),
            key: key.into(),
            value: value.into(),
            expires_at: at,
        };
        let record = match *m {
            Mutation::Set {
                namespace,
                key,
                value,
                expires_at,
            } => owned("set", namespace, key, value, expires_at),
            Mutation::Delete { namespace, key } | Mutation::Evict { namespace, key } => {
                owned("del", namespace, key, "", None)
            }
            Mutation::ClearNamespace { namespace } => owned("clear", Some(namespace), "", "", None),
            Mutation::Transaction { .. } => unreachable!("the property tests make no transaction"),
        };
        // Dropped rather than discarded: this journal never runs the
        // writer's threads, and the undo's contents just go.
        drop(undo.into_action());
        let mut log = self.0.lock().unwrap();
        log.push(record);
        Ok(log.len() as Lsn)
    }
}

fn run(store: &Store, op: &Op, now: u64) {
    match *op {
        Op::Set {
            ns,
            key,
            value,
            ttl,
        } => {
            store
                .set(ns, key, &value.to_string(), ttl.map(|ttl| now + ttl))
                .unwrap();
        }
        Op::Delete { ns, key } => {
            store.delete(ns, key).unwrap();
        }
        Op::Clear { ns } => {
            store.clear_namespace(ns).unwrap();
        }
        Op::Get { ns, key } => {
            store.get(ns, key).unwrap();
        }
        Op::Step(ms) => manual::advance(ms),
        Op::Expire(budget) => {
            store.expire_cycle(budget);
        }
        Op::FreeEmpty => {
            store.free_empty_namespaces();
        }
    }
}

/// Where a check stands, printed only when it fails.
struct Context<'a> {
    seed: u64,
    phase: &'static str,
    ops: &'a [Op],
}

impl std::fmt::Display for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seed {} {}, after {:?}", self.seed, self.phase, self.ops)
    }
}

/// The counts the store reports equal the model's live keys.
fn assert_counts(store: &Store, model: &Model, context: &Context<'_>) {
    store.assert_consistent(context);
    assert_eq!(store.len(), model.keys.len(), "total_keys {context}");
    let mut named: Vec<String> = Vec::new();
    for ns in NAMESPACES {
        let live = model.live_in(ns).count();
        assert_eq!(
            store.namespace_len(ns).unwrap(),
            live,
            "keys of {ns:?} {context}"
        );
        if let Some(name) = ns
            && live > 0
        {
            named.push(name.into());
        }
    }
    assert_eq!(store.namespaces(), named, "/namespaces {context}");
}

/// Once every deadline has passed and the expiry cycle has run (and freed
/// the namespaces left empty), what is held (bytes, entries, namespaces) is
/// exactly what is live.
fn assert_nothing_expired_is_held(store: &Store, model: &Model, context: &Context<'_>) {
    assert_counts(store, model, context);
    let held: Vec<String> = store.named_snapshot().into_iter().map(|(n, _)| n).collect();
    let mut held = held;
    held.sort();
    assert_eq!(held, store.namespaces(), "namespaces held {context}");
    // The store's bytes also count the overhead of each namespace holding
    // keys.
    let mut total: u64 = NAMESPACES
        .iter()
        .filter(|ns| model.live_in(**ns).next().is_some())
        .map(|ns| overhead_of(*ns))
        .sum();
    for ns in NAMESPACES {
        let quota = store.quota(ns).unwrap();
        let live = model.live_in(ns).count() as u64;
        assert_eq!(quota.used_keys, live, "used_keys of {ns:?} {context}");
        assert_eq!(
            quota.used_bytes,
            model.bytes_in(ns),
            "bytes of {ns:?} {context}"
        );
        total += model.bytes_in(ns);
    }
    assert_eq!(store.stats().used_bytes, total, "used_bytes {context}");
}

fn replay(log: &[OwnedMutation]) -> Store {
    let store = Store::in_memory();
    for r in log {
        let (namespace, key) = (r.namespace.as_deref(), r.key.as_str());
        let mutation = match r.kind {
            "set" => Mutation::Set {
                namespace,
                key,
                value: &r.value,
                expires_at: r.expires_at,
            },
            "del" => Mutation::Delete { namespace, key },
            _ => Mutation::ClearNamespace {
                namespace: namespace.unwrap(),
            },
        };
        store.apply(&mutation, false).unwrap();
    }
    store
}

fn run_case(seed: u64, len: usize) {
    let mut rng = fastrand::Rng::with_seed(seed);
    manual::set(START_MS);
    let log = Arc::new(Log::default());
    let store = Store::with_journal(StoreConfig::default(), Box::new(log.clone()));
    let mut model = Model::default();
    let mut ops: Vec<Op> = Vec::with_capacity(len);
    for _ in 0..len {
        let op = random_op(&mut rng, ops.last());
        run(&store, &op, now_ms());
        model.apply(&op, now_ms());
        ops.push(op);
        let context = Context {
            seed,
            phase: "running",
            ops: &ops,
        };
        assert_counts(&store, &model, &context);
    }
    // Past every deadline, the cycle frees everything that expired.
    manual::advance(model.latest_deadline().saturating_sub(now_ms()) + 1);
    model.apply(&Op::Step(0), now_ms());
    expire_everything_due(&store);
    let context = Context {
        seed,
        phase: "once expired",
        ops: &ops,
    };
    assert_nothing_expired_is_held(&store, &model, &context);

    // The journal, replayed into a fresh store, gives the same state.
    let replayed = replay(&log.0.lock().unwrap());
    expire_everything_due(&replayed);
    let context = Context {
        seed,
        phase: "replayed",
        ops: &ops,
    };
    assert_nothing_expired_is_held(&replayed, &model, &context);
    for ((ns, key), (value, _)) in &model.keys {
        assert_eq!(
            replayed.get(*ns, key).unwrap().as_ref(),
            Some(value),
            "{context}"
        );
    }
    manual::release();
}

#[test]
fn counts_follow_the_live_keys_whatever_the_sequence() {
    for seed in 0..300 {
        run_case(seed, 100);
    }
}

#[test]
fn a_key_set_twice_in_one_millisecond_with_one_ttl_expires() {
    manual::set(START_MS);
    let store = Store::in_memory();
    store
        .set(Some("a"), "k", "1", Some(START_MS + 1_000))
        .unwrap();
    store
        .set(Some("a"), "k", "1", Some(START_MS + 1_000))
        .unwrap();
    manual::advance(1_000);
    assert_eq!(store.expire_cycle(1_000), 1);
    assert_eq!(store.quota(Some("a")).unwrap().used_keys, 0);
    assert_eq!(store.free_empty_namespaces(), 1);
    assert_eq!(store.stats().used_bytes, 0);
    assert!(store.namespaces().is_empty());
    manual::release();
}

/// Runs the expiry cycle until nothing is due, then frees the namespaces
/// it emptied.
fn expire_everything_due(store: &Store) {
    while store.expire_cycle(1_000) > 0 {}
    store.free_empty_namespaces();
}
