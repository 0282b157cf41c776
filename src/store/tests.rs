//! Engine tests, through the public API only: no HTTP involved.

use std::sync::{Arc, Mutex};

use super::*;

fn val(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[test]
fn set_get_delete_round_trip() {
    let store = Store::in_memory();
    store.set(None, "k", &val("v"), None).unwrap();
    assert_eq!(store.get(None, "k").unwrap(), Some(val("v")));
    assert!(store.delete(None, "k").unwrap().is_some());
    assert_eq!(store.get(None, "k").unwrap(), None);
    assert!(store.delete(None, "k").unwrap().is_none());
}

#[test]
fn namespaces_are_isolated_from_prefixed_default_keys() {
    let store = Store::in_memory();
    store
        .set(None, "app1:user:123", &val("default"), None)
        .unwrap();
    store
        .set(Some("app1"), "user:123", &val("ns"), None)
        .unwrap();
    assert_eq!(
        store.get(None, "app1:user:123").unwrap(),
        Some(val("default"))
    );
    assert_eq!(
        store.get(Some("app1"), "user:123").unwrap(),
        Some(val("ns"))
    );
    assert_eq!(store.get(Some("app1"), "app1:user:123").unwrap(), None);

    let (deleted, _) = store.clear_namespace("app1").unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(
        store.get(None, "app1:user:123").unwrap(),
        Some(val("default"))
    );
    assert_eq!(store.namespaces(), Vec::<String>::new());
}

#[test]
fn namespace_listing_and_sizes() {
    let store = Store::in_memory();
    for (ns, n) in [("b", 3), ("a", 2)] {
        for i in 0..n {
            store.set(Some(ns), &format!("k{i}"), "1", None).unwrap();
        }
    }
    store.set(None, "loose", "1", None).unwrap();
    assert_eq!(store.namespaces(), vec!["a", "b"]);
    assert_eq!(store.namespace_len(Some("b")).unwrap(), 3);
    assert_eq!(store.namespace_len(None).unwrap(), 1);
    assert_eq!(store.namespace_len(Some("nope")).unwrap(), 0);
    assert_eq!(store.len(), 6);
}

#[test]
fn hits_and_misses_are_counted_per_namespace() {
    let store = Store::in_memory();
    store.set(Some("a"), "k", "1", None).unwrap();
    store.get(Some("a"), "k").unwrap();
    store.get(Some("a"), "k").unwrap();
    store.get(Some("a"), "missing").unwrap();
    store.get(Some("never"), "k").unwrap();
    store.get(None, "k").unwrap();
    let stats = store.stats();
    assert_eq!(stats.namespaces["a"].cache_hits, 2);
    assert_eq!(stats.namespaces["a"].cache_misses, 1);
    assert_eq!(stats.default_namespace.cache_misses, 1);
    assert_eq!(stats.cache_hits, 2);
    assert_eq!(stats.cache_misses, 3);
    assert!(!stats.namespaces.contains_key("never"));
}

#[test]
fn expired_keys_are_never_served_nor_counted() {
    let store = Store::in_memory();
    let past = now_ms() - 1;
    store.set(Some("a"), "old", "1", Some(past)).unwrap();
    store
        .set(Some("a"), "new", "1", Some(now_ms() + 60_000))
        .unwrap();
    assert_eq!(store.get(Some("a"), "old").unwrap(), None);
    assert_eq!(store.namespace_len(Some("a")).unwrap(), 1);
    assert!(store.delete(Some("a"), "old").unwrap().is_none());

    store.set(Some("b"), "gone", "1", Some(past)).unwrap();
    assert_eq!(store.namespaces(), vec!["a"]);
}

#[test]
fn expiry_cycle_frees_due_entries_only() {
    let store = Store::in_memory();
    let past = now_ms() - 1;
    for i in 0..100 {
        store
            .set(Some("t"), &format!("k{i}"), "1", Some(past))
            .unwrap();
    }
    store
        .set(Some("t"), "keep", "1", Some(now_ms() + 60_000))
        .unwrap();
    assert_eq!(store.expire_cycle(1_000), 100);
    assert_eq!(store.expire_cycle(1_000), 0);
    assert_eq!(store.namespace_len(Some("t")).unwrap(), 1);
}

#[test]
fn invalid_input_is_refused_and_changes_nothing() {
    let store = Store::new(StoreConfig {
        max_key_bytes: 4,
        ..StoreConfig::default()
    });
    assert_eq!(store.set(None, "", "1", None), Err(StoreError::EmptyKey));
    assert!(matches!(
        store.set(None, "12345", "1", None),
        Err(StoreError::KeyTooLong { len: 5, max: 4 })
    ));
    assert!(matches!(
        store.set(Some("a b"), "k", "1", None),
        Err(StoreError::InvalidNamespace { .. })
    ));
    assert!(store.get(Some(""), "k").is_err());
    assert!(store.clear_namespace("a/b").is_err());
    assert!(store.is_empty());
}

/// Records every mutation it is given.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Journal for Recorder {
    fn append(&self, m: &Mutation<'_>, _: Undo) -> Result<Lsn, (StoreError, Undo)> {
        let mut log = self.0.lock().unwrap();
        log.push(format!("{m:?}"));
        Ok(log.len() as Lsn)
    }
}

#[test]
fn every_change_is_journaled_and_no_op_deletes_are_not() {
    let recorder = Arc::new(Recorder::default());
    let store = Store::with_journal(StoreConfig::default(), Box::new(recorder.clone()));
    assert_eq!(store.set(Some("a"), "k", "1", None).unwrap(), 1);
    assert_eq!(store.delete(Some("a"), "k").unwrap(), Some(2));
    assert_eq!(store.delete(Some("a"), "k").unwrap(), None);
    store.set(Some("a"), "k", "1", None).unwrap();
    assert_eq!(store.clear_namespace("a").unwrap(), (1, Some(4)));
    assert_eq!(store.clear_namespace("a").unwrap(), (0, None));
    assert_eq!(recorder.0.lock().unwrap().len(), 4);
}

struct FailingJournal;

impl Journal for FailingJournal {
    fn append(&self, _: &Mutation<'_>, undo: Undo) -> Result<Lsn, (StoreError, Undo)> {
        Err((StoreError::LogUnavailable("disk full".into()), undo))
    }
}

/// Accepts everything and keeps the undos, as a log does until a batch is
/// durable.
#[derive(Default)]
struct HoldingJournal(Mutex<Vec<Undo>>);

impl Journal for HoldingJournal {
    fn append(&self, _: &Mutation<'_>, undo: Undo) -> Result<Lsn, (StoreError, Undo)> {
        self.0.lock().unwrap().push(undo);
        Ok(0)
    }
}

#[test]
fn undos_reverted_newest_first_restore_the_earlier_state() {
    let journal = Arc::new(HoldingJournal::default());
    let store = Store::with_journal(StoreConfig::default(), Box::new(journal.clone()));
    store
        .apply(
            &Mutation::Set {
                namespace: Some("a"),
                key: "k",
                value: "0",
                expires_at: None,
            },
            false,
        )
        .unwrap();
    store
        .apply(
            &Mutation::Set {
                namespace: Some("a"),
                key: "j",
                value: "0",
                expires_at: None,
            },
            false,
        )
        .unwrap();
    store.set(Some("a"), "k", "1", None).unwrap();
    store.delete(Some("a"), "j").unwrap();
    store.set(Some("a"), "new", "1", None).unwrap();
    store.clear_namespace("a").unwrap();
    store.set(Some("a"), "k", "2", None).unwrap();
    assert_eq!(store.get(Some("a"), "k").unwrap().as_deref(), Some("2"));

    let undos = std::mem::take(&mut *journal.0.lock().unwrap());
    undos.into_iter().rev().for_each(Undo::revert);
    assert_eq!(store.get(Some("a"), "k").unwrap().as_deref(), Some("0"));
    assert_eq!(store.get(Some("a"), "j").unwrap().as_deref(), Some("0"));
    assert_eq!(store.get(Some("a"), "new").unwrap(), None);
    assert_eq!(store.namespace_len(Some("a")).unwrap(), 2);
}

#[test]
fn a_refused_journal_append_leaves_memory_unchanged() {
    let store = Store::with_journal(StoreConfig::default(), Box::new(FailingJournal));
    store
        .apply(
            &Mutation::Set {
                namespace: None,
                key: "k",
                value: "1",
                expires_at: None,
            },
            false,
        )
        .unwrap();
    assert!(store.set(None, "k", "2", None).is_err());
    assert!(store.set(None, "other", "2", None).is_err());
    assert!(store.delete(None, "k").is_err());
    assert_eq!(store.get(None, "k").unwrap().as_deref(), Some("1"));
    assert_eq!(store.get(None, "other").unwrap(), None);
    store
        .apply(
            &Mutation::Set {
                namespace: Some("n"),
                key: "k",
                value: "1",
                expires_at: None,
            },
            false,
        )
        .unwrap();
    assert!(store.clear_namespace("n").is_err());
    assert_eq!(store.namespace_len(Some("n")).unwrap(), 1);
}

#[test]
fn concurrent_writers_lose_nothing() {
    let store = Arc::new(Store::in_memory());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..1_000 {
                    let ns = format!("ns{}", t % 4);
                    store
                        .set(Some(&ns), &format!("{t}-{i}"), "1", None)
                        .unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(store.len(), 8_000);
    assert_eq!(store.namespace_len(Some("ns0")).unwrap(), 2_000);
}

#[test]
fn clearing_a_big_namespace_leaves_others_readable() {
    let store = Arc::new(Store::in_memory());
    for i in 0..200_000 {
        store.set(Some("big"), &i.to_string(), "1", None).unwrap();
    }
    store.set(Some("small"), "k", "1", None).unwrap();
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut worst = std::time::Duration::ZERO;
            for _ in 0..2_000 {
                let t = std::time::Instant::now();
                assert!(store.get(Some("small"), "k").unwrap().is_some());
                worst = worst.max(t.elapsed());
            }
            worst
        })
    };
    assert_eq!(store.clear_namespace("big").unwrap().0, 200_000);
    reader.join().unwrap();
    assert_eq!(store.namespace_len(Some("big")).unwrap(), 0);
    assert_eq!(store.len(), 1);
}

#[test]
fn visit_live_visits_every_live_entry() {
    let store = Store::in_memory();
    store.set(None, "a", "1", None).unwrap();
    store
        .set(Some("n"), "b", "2", Some(now_ms() + 10_000))
        .unwrap();
    store.set(Some("n"), "c", "3", Some(now_ms() - 1)).unwrap();
    let mut seen = Vec::new();
    let mut shards = 0;
    store.visit_live(|visit| match visit {
        Visit::Entry(m) => seen.push(format!("{m:?}")),
        Visit::ShardDone => shards += 1,
    });
    // One per shard ever written: the default namespace's one, and one or
    // two of `n`'s.
    assert!((2..=3).contains(&shards), "{shards}");
    assert_eq!(seen.len(), 2);
}

fn limited(limits: Limits) -> Store {
    Store::new(StoreConfig {
        limits,
        ..StoreConfig::default()
    })
}

fn keys_limit(n: u64) -> Limit {
    Limit {
        max_keys: Some(n),
        max_bytes: None,
    }
}

#[test]
fn lru_keeps_the_store_within_max_keys() {
    let store = limited(Limits {
        global: keys_limit(100),
        ..Limits::default()
    });
    for i in 0..1_000 {
        store
            .set(Some(&format!("n{}", i % 7)), &i.to_string(), "1", None)
            .unwrap();
        assert!(store.len() <= 100);
    }
    assert_eq!(store.len(), 100);
    assert_eq!(store.stats().evictions, 900);
}

#[test]
fn lru_keeps_the_store_within_max_bytes() {
    let store = limited(Limits {
        global: Limit {
            max_bytes: Some(20_000),
            max_keys: None,
        },
        ..Limits::default()
    });
    for i in 0..2_000 {
        store
            .set(None, &format!("key{i}"), "\"some value\"", None)
            .unwrap();
        assert!(store.stats().used_bytes <= 20_000);
    }
    assert!(
        store.stats().used_bytes > 15_000,
        "evicts only what it must"
    );
}

#[test]
fn lru_spares_recently_used_keys() {
    let store = limited(Limits {
        global: keys_limit(200),
        ..Limits::default()
    });
    for i in 0..50 {
        store.set(None, &format!("hot{i}"), "1", None).unwrap();
    }
    for i in 0..2_000 {
        if i % 10 == 0 {
            // Touch the hot set now and then, as a real working set would.
            std::thread::sleep(std::time::Duration::from_millis(2));
            for h in 0..50 {
                store.get(None, &format!("hot{h}")).unwrap();
            }
        }
        store.set(None, &format!("cold{i}"), "1", None).unwrap();
    }
    let kept = (0..50)
        .filter(|h| store.get(None, &format!("hot{h}")).unwrap().is_some())
        .count();
    assert!(kept >= 45, "only {kept} of 50 hot keys survived");
}

#[test]
fn a_namespace_at_its_quota_evicts_only_its_own_keys() {
    let mut quotas = std::collections::HashMap::new();
    quotas.insert("noisy".to_string(), keys_limit(10));
    let store = limited(Limits {
        quotas,
        ..Limits::default()
    });
    for i in 0..20 {
        store.set(Some("quiet"), &i.to_string(), "1", None).unwrap();
    }
    for i in 0..100 {
        store.set(Some("noisy"), &i.to_string(), "1", None).unwrap();
    }
    assert_eq!(store.namespace_len(Some("noisy")).unwrap(), 10);
    assert_eq!(store.namespace_len(Some("quiet")).unwrap(), 20);
    let stats = store.stats();
    assert_eq!(stats.namespaces["noisy"].evictions, 90);
    assert_eq!(stats.namespaces["quiet"].evictions, 0);
}

#[test]
fn noeviction_refuses_and_changes_nothing() {
    let store = limited(Limits {
        default_quota: keys_limit(3),
        policy: EvictionPolicy::Noeviction,
        ..Limits::default()
    });
    for k in ["a", "b", "c"] {
        store.set(Some("t"), k, "1", None).unwrap();
    }
    let err = store.set(Some("t"), "d", "1", None).unwrap_err();
    assert!(matches!(err, StoreError::LimitReached { .. }), "{err}");
    assert!(err.to_string().contains("namespace \"t\""), "{err}");
    // Overwriting an existing key adds no key: allowed.
    store.set(Some("t"), "a", "2", None).unwrap();
    assert_eq!(store.namespace_len(Some("t")).unwrap(), 3);
    assert_eq!(store.get(Some("t"), "d").unwrap(), None);
    assert_eq!(store.stats().evictions, 0);
}

#[test]
fn an_entry_larger_than_a_byte_limit_is_refused_under_any_policy() {
    // Room for the namespace's own overhead and a small entry.
    let store = limited(Limits {
        global: Limit {
            max_bytes: Some(4_000),
            max_keys: None,
        },
        ..Limits::default()
    });
    store.set(None, "small", "1", None).unwrap();
    let err = store
        .set(None, "big", &"1".repeat(4_000), None)
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    assert_eq!(store.len(), 1, "the store was not emptied for nothing");
}

#[test]
fn evictions_are_journaled_as_deletes() {
    let recorder = Arc::new(Recorder::default());
    let store = Store::with_journal(
        StoreConfig {
            limits: Limits {
                global: keys_limit(1),
                ..Limits::default()
            },
            ..StoreConfig::default()
        },
        Box::new(recorder.clone()),
    );
    store.set(None, "a", "1", None).unwrap();
    store.set(None, "b", "1", None).unwrap();
    let log = recorder.0.lock().unwrap();
    assert_eq!(log.len(), 3);
    assert!(log[2].starts_with("Evict"), "{log:?}");
}

#[test]
fn concurrent_writers_stay_within_the_limit() {
    let store = Arc::new(limited(Limits {
        global: keys_limit(500),
        ..Limits::default()
    }));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..2_000 {
                    store
                        .set(Some(&format!("n{t}")), &i.to_string(), "1", None)
                        .unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert!(store.len() <= 500, "{}", store.len());
    assert!(store.len() >= 490);
}

#[test]
fn an_emptied_namespace_is_freed_and_its_counters_stay_in_the_totals() {
    let store = Store::in_memory();
    store.set(Some("a"), "k", "1", None).unwrap();
    store.get(Some("a"), "k").unwrap();
    store.set_quota(Some("a"), keys_limit(5)).unwrap();
    store.delete(Some("a"), "k").unwrap();
    assert_eq!(store.free_empty_namespaces(), 1);
    assert!(store.named_snapshot().is_empty(), "the namespace was freed");
    let stats = store.stats();
    assert_eq!((stats.cache_hits, stats.used_bytes), (1, 0));
    // A quota set while running outlives the namespace.
    assert_eq!(store.quota(Some("a")).unwrap().quota, keys_limit(5));
    store.set(Some("a"), "k", "1", None).unwrap();
    assert_eq!(store.quota(Some("a")).unwrap().quota, keys_limit(5));
    // A namespace in use, or holding keys, stays.
    assert_eq!(store.free_empty_namespaces(), 0);
    assert_eq!(store.namespaces(), vec!["a"]);
}

#[test]
fn a_write_refused_leaves_no_namespace_behind() {
    let store = limited(Limits {
        global: keys_limit(1),
        policy: EvictionPolicy::Noeviction,
        ..Limits::default()
    });
    store.set(Some("a"), "k", "1", None).unwrap();
    for i in 0..100 {
        let refused = store.set(Some(&format!("n{i}")), "k", "1", None);
        assert!(matches!(refused, Err(StoreError::LimitReached { .. })));
    }
    assert_eq!(store.free_empty_namespaces(), 100);
    assert_eq!(store.named_snapshot().len(), 1);
}

#[test]
fn only_namespaces_with_keys_due_are_scheduled_for_expiry() {
    let store = Store::in_memory();
    for i in 0..1_000 {
        store.set(Some(&format!("n{i}")), "k", "1", None).unwrap();
    }
    let soon = now_ms() + 60_000;
    store.set(Some("ttl"), "a", "1", Some(soon + 10)).unwrap();
    store.set(Some("ttl"), "b", "1", Some(soon)).unwrap();
    store.set(None, "c", "1", Some(soon + 20)).unwrap();
    assert_eq!(store.registry.scheduled(), 2);
    // Nothing is due: a tick frees nothing and keeps both scheduled.
    assert_eq!(store.expire_cycle(1_000), 0);
    assert_eq!(store.registry.scheduled(), 2);
    store.delete(Some("ttl"), "a").unwrap();
    store.delete(Some("ttl"), "b").unwrap();
    assert_eq!(store.free_empty_namespaces(), 1);
    assert_eq!(
        store.registry.scheduled(),
        1,
        "a freed namespace leaves the schedule"
    );
}

#[test]
fn global_eviction_frees_the_namespaces_it_empties() {
    let store = limited(Limits {
        global: Limit {
            max_bytes: Some(64 * 1024),
            max_keys: None,
        },
        ..Limits::default()
    });
    for i in 0..3_000 {
        store.set(Some(&format!("n{i}")), "k", "1", None).unwrap();
        assert!(store.stats().used_bytes <= 64 * 1024);
        if i % 100 == 99 {
            store.free_empty_namespaces();
        }
    }
    store.free_empty_namespaces();
    let held = store.named_snapshot().len();
    let per_namespace = namespace::overhead_of(Some("n0000")) as usize;
    assert!(held <= 64 * 1024 / per_namespace, "{held} namespaces held");
    assert!(
        held >= 64 * 1024 / (2 * per_namespace),
        "evicted too many: {held} left"
    );
    assert_eq!(store.len(), held);
}

/// Where a key's bytes go, for docs/BENCHMARKS.md ("Memory"): the
/// benchmark's keys (12-byte keys in 100 namespaces, 32-byte string values)
/// loaded, then the tables and entries measured.
///
/// `cargo test --lib store::tests::memory_breakdown -- --ignored --nocapture`
#[test]
#[ignore = "prints a measurement; run by hand"]
fn memory_breakdown() {
    let keys: usize = std::env::var("KEYS").map_or(1_000_000, |n| n.parse().unwrap());
    let store = Store::in_memory();
    let value = val(&"v".repeat(32));
    let names: Vec<String> = (0..100).map(|i| format!("ns{i:02}")).collect();
    for i in 0..keys {
        let key = format!("key:{i:08}");
        store
            .set(Some(&names[i % 100]), &key, &value, None)
            .unwrap();
    }
    let [shards, buckets, tables, allocations, blocks] = store.footprint();
    let per_key = |bytes: usize| bytes as f64 / keys as f64;
    println!(
        "keys {keys}, shards {shards}, buckets {buckets} (load {:.2})",
        keys as f64 / buckets as f64
    );
    println!(
        "entries: allocations {:.1} B/key, blocks {:.1} B/key",
        per_key(allocations),
        per_key(blocks)
    );
    println!(
        "tables: slots {} B + 1 control byte a bucket, {:.1} B/key with rounding",
        size_of::<Entry>(),
        per_key(tables)
    );
    println!(
        "used_bytes {:.1} B/key",
        per_key(store.stats().used_bytes as usize)
    );
    store.assert_consistent(&"after the load");
}
