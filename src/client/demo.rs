//! The seed's namespace demo (NAMESPACES.md, "Demo"), run through
//! [`Client`]: basic usage, a multi-tenant SaaS, environment separation,
//! microservices, and session storage with TTL, each with the seed's own
//! example calls.
//!
//! It lives in the library, not in `examples/namespace_demo.rs` (which only
//! calls [`run`]), so that the tests run it without building the example.
//! `examples/namespace_demo.py` is the same demo in Python; keep them alike.
//!
//! Every answer is checked: [`run`] fails on the first one that is not what
//! the demo expects. It refuses to start if one of its namespaces already
//! holds keys, because it clears them at the end.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use super::{Client, Error, SetAnswer};
use crate::api::{ClearStatus, SetStatus};

/// Every namespace the demo writes into, and how many keys it holds when
/// the demo ends (`app1` is cleared in the first part already).
pub const NAMESPACES: &[(&str, usize)] = &[
    ("app1", 0),
    ("app2", 1),
    ("tenant_acme", 2),
    ("tenant_globex", 2),
    ("dev", 2),
    ("staging", 2),
    ("prod", 2),
    ("auth", 2),
    ("payment", 2),
    ("notification", 2),
    ("analytics", 2),
    ("webapp", 1),
    ("mobileapp", 1),
    ("api", 1),
];

/// Runs the whole demo against the server at `url`, narrating to `out`.
pub fn run(url: &str, out: &mut impl Write) -> anyhow::Result<()> {
    let kv = Client::new(url)?;
    preflight(&kv, out)?;
    basic_usage(&kv, out)?;
    multi_tenant(&kv, out)?;
    environments(&kv, out)?;
    microservices(&kv, out)?;
    sessions(&kv, out)?;
    cleanup(&kv, out)?;
    writeln!(out, "\nAll checks passed.")?;
    Ok(())
}

/// The server answers, and none of the demo's namespaces holds keys.
fn preflight(kv: &Client, out: &mut impl Write) -> anyhow::Result<()> {
    let health = kv.health(None).context("is the server running?")?;
    writeln!(out, "PyKV at {}: {}", kv.url(), health.status)?;
    let listed = kv.namespaces()?;
    let busy: Vec<&str> = NAMESPACES
        .iter()
        .map(|(ns, _)| *ns)
        .filter(|ns| listed.namespaces.iter().any(|n| n == ns))
        .collect();
    if !busy.is_empty() {
        bail!(
            "namespaces {busy:?} already hold keys; the demo writes into and clears them, \
             so run it against a server without them"
        );
    }
    Ok(())
}

fn basic_usage(kv: &Client, out: &mut impl Write) -> anyhow::Result<()> {
    section(out, "1. Basic usage")?;
    set_all(kv, out, "app1", &[("user:123", "alice")])?;
    set_all(kv, out, "app2", &[("user:123", "bob")])?;
    expect_value(kv, out, "app1", "user:123", "alice")?;
    expect_value(kv, out, "app2", "user:123", "bob")?;
    let listed = kv.namespaces()?;
    writeln!(out, "  namespaces: {:?}", listed.namespaces)?;
    for ns in ["app1", "app2"] {
        ensure!(
            listed.namespaces.iter().any(|n| n == ns),
            "{ns} not listed: {}",
            listed.json()
        );
    }
    ensure!(
        listed.count == listed.namespaces.len(),
        "count: {}",
        listed.json()
    );
    clear(kv, out, "app1", 1)?;
    expect_missing(kv, out, "app1", "user:123")?;
    expect_value(kv, out, "app2", "user:123", "bob")
}

fn multi_tenant(kv: &Client, out: &mut impl Write) -> anyhow::Result<()> {
    section(out, "2. Multi-tenant SaaS")?;
    let acme = [("config:theme", "dark"), ("user:count", "1500")];
    let globex = [("config:theme", "light"), ("user:count", "3200")];
    set_all(kv, out, "tenant_acme", &acme)?;
    set_all(kv, out, "tenant_globex", &globex)?;
    writeln!(out, "  same keys, no conflicts:")?;
    expect_all(kv, out, "tenant_acme", &acme)?;
    expect_all(kv, out, "tenant_globex", &globex)?;
    expect_size(kv, out, "tenant_acme", 2)?;
    expect_size(kv, out, "tenant_globex", 2)
}

fn environments(kv: &Client, out: &mut impl Write) -> anyhow::Result<()> {
    section(out, "3. Environment separation")?;
    let envs = [
        ("dev", [("db:host", "localhost"), ("debug", "true")]),
        (
            "staging",
            [("db:host", "staging-db.example.com"), ("debug", "false")],
        ),
        (
            "prod",
            [("db:host", "prod-db.example.com"), ("debug", "false")],
        ),
    ];
    for (ns, pairs) in &envs {
        set_all(kv, out, ns, pairs)?;
    }
    writeln!(out, "  each environment reads its own configuration:")?;
    for (ns, pairs) in &envs {
        expect_all(kv, out, ns, pairs)?;
    }
    Ok(())
}

fn microservices(kv: &Client, out: &mut impl Write) -> anyhow::Result<()> {
    section(out, "4. Microservices architecture")?;
    let services = [
        (
            "auth",
            [
                ("session:user1", "token_abc"),
                ("refresh:user1", "refresh_xyz"),
            ],
        ),
        (
            "payment",
            [
                ("transaction:tx001", "pending"),
                ("balance:user1", "1000.00"),
            ],
        ),
        (
            "notification",
            [("queue:email", "100"), ("queue:sms", "50")],
        ),
        (
            "analytics",
            [
                ("metric:page_views", "50000"),
                ("metric:conversions", "1250"),
            ],
        ),
    ];
    for (ns, pairs) in &services {
        set_all(kv, out, ns, pairs)?;
    }
    // Counters outlive a clear, so the check is on the change.
    let hits_before = payment_hits(kv)?;
    expect_value(kv, out, "payment", "balance:user1", "1000.00")?;
    let hits_after = payment_hits(kv)?;
    ensure!(
        hits_after == hits_before + 1,
        "the GET should count as one payment hit"
    );
    let stats = kv.stats(None)?;
    writeln!(out, "  per-service statistics (GET /stats):")?;
    for (ns, _) in &services {
        let counters = stats
            .namespaces
            .get(*ns)
            .with_context(|| format!("{ns} missing from /stats: {}", stats.json()))?;
        writeln!(
            out,
            "    {ns:<13} keys={} hits={} misses={}",
            counters.total_keys, counters.cache_hits, counters.cache_misses
        )?;
        ensure!(
            counters.total_keys == 2,
            "{ns} should hold 2 keys: {}",
            stats.json()
        );
    }
    Ok(())
}

/// `GET /stats?ns=payment`: the namespace's hits.
fn payment_hits(kv: &Client) -> anyhow::Result<u64> {
    let stats = kv.stats(Some("payment"))?;
    let scoped = stats.namespace_stats;
    scoped
        .map(|s| s.cache_hits)
        .with_context(|| format!("no namespace_stats: {}", stats.json()))
}

fn sessions(kv: &Client, out: &mut impl Write) -> anyhow::Result<()> {
    section(out, "5. Session storage with TTL")?;
    let sessions = [
        (
            "webapp",
            "session:alice",
            r#"{"user_id": "alice", "role": "admin"}"#,
            3600,
        ),
        (
            "mobileapp",
            "session:bob",
            r#"{"user_id": "bob", "role": "user"}"#,
            7200,
        ),
        (
            "api",
            "session:client_xyz",
            r#"{"client_id": "xyz", "scope": "read"}"#,
            1800,
        ),
    ];
    for (ns, key, value, ttl) in sessions {
        set_one(kv, out, ns, key, value, Some(ttl))?;
    }
    let alice = kv.value(Some("webapp"), "session:alice")?;
    let role = alice
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| v["role"].as_str().map(str::to_owned));
    writeln!(
        out,
        "  webapp/session:alice has role {}",
        role.as_deref().unwrap_or("(none)")
    )?;
    ensure!(role.as_deref() == Some("admin"), "session:alice: {alice:?}");
    short_lived_session(kv, out)
}

/// A session with a 1 s TTL is served at once, and no longer once its
/// second has passed.
fn short_lived_session(kv: &Client, out: &mut impl Write) -> anyhow::Result<()> {
    set_one(kv, out, "webapp", "session:temp", "short-lived", Some(1))?;
    expect_value(kv, out, "webapp", "session:temp", "short-lived")?;
    writeln!(out, "  waiting 1.5 s for session:temp to expire...")?;
    std::thread::sleep(Duration::from_millis(1500));
    expect_missing(kv, out, "webapp", "session:temp")?;
    expect_size(kv, out, "webapp", 1)
}

/// Clears every namespace the demo wrote, so it can run again.
fn cleanup(kv: &Client, out: &mut impl Write) -> anyhow::Result<()> {
    section(out, "6. Clearing the demo's namespaces")?;
    for (ns, keys) in NAMESPACES {
        clear(kv, out, ns, *keys)?;
    }
    let listed = kv.namespaces()?;
    writeln!(out, "  namespaces left: {:?}", listed.namespaces)?;
    for (ns, _) in NAMESPACES {
        ensure!(
            !listed.namespaces.iter().any(|n| n == ns),
            "{ns} still listed"
        );
    }
    Ok(())
}

fn section(out: &mut impl Write, title: &str) -> std::io::Result<()> {
    writeln!(out, "\n=== {title} ===")
}

fn set_all(
    kv: &Client,
    out: &mut impl Write,
    ns: &str,
    pairs: &[(&str, &str)],
) -> anyhow::Result<()> {
    for (key, value) in pairs {
        set_one(kv, out, ns, key, value, None)?;
    }
    Ok(())
}

/// `POST /set?ns=NS`, checking the answer is the seed's.
fn set_one(
    kv: &Client,
    out: &mut impl Write,
    ns: &str,
    key: &str,
    value: &str,
    ttl: Option<u64>,
) -> anyhow::Result<()> {
    let answer = kv.set(Some(ns), key, &Value::from(value), ttl)?;
    let ttl_note = ttl.map(|t| format!(" (ttl {t} s)")).unwrap_or_default();
    writeln!(
        out,
        "  SET {ns}/{key} = {value:?}{ttl_note}: {}",
        answer.status
    )?;
    let expected = SetAnswer {
        key: key.into(),
        namespace: Some(ns.into()),
        status: SetStatus::Success,
    };
    ensure!(*answer == expected, "SET {ns}/{key}: {}", answer.json());
    Ok(())
}

fn expect_all(
    kv: &Client,
    out: &mut impl Write,
    ns: &str,
    pairs: &[(&str, &str)],
) -> anyhow::Result<()> {
    for (key, value) in pairs {
        expect_value(kv, out, ns, key, value)?;
    }
    Ok(())
}

fn expect_value(
    kv: &Client,
    out: &mut impl Write,
    ns: &str,
    key: &str,
    expected: &str,
) -> anyhow::Result<()> {
    let answer = kv.get(Some(ns), key)?;
    writeln!(out, "  GET {ns}/{key} -> {}", answer.value)?;
    ensure!(
        answer.value == expected,
        "GET {ns}/{key}: expected {expected:?}, got {}",
        answer.json()
    );
    ensure!(
        answer.namespace.as_deref() == Some(ns),
        "GET {ns}/{key}: {}",
        answer.json()
    );
    Ok(())
}

fn expect_missing(kv: &Client, out: &mut impl Write, ns: &str, key: &str) -> anyhow::Result<()> {
    match kv.get(Some(ns), key) {
        Err(Error::NotFound { .. }) => {
            writeln!(out, "  GET {ns}/{key} -> 404 Key not found")?;
            Ok(())
        }
        Ok(answer) => bail!("GET {ns}/{key} should be gone: {}", answer.json()),
        Err(e) => Err(e.into()),
    }
}

fn expect_size(kv: &Client, out: &mut impl Write, ns: &str, expected: usize) -> anyhow::Result<()> {
    let size = kv.namespace_size(ns)?;
    writeln!(out, "  {ns} holds {}", keys(size.total_keys))?;
    ensure!(
        size.total_keys == expected,
        "{ns}: expected {expected} keys: {}",
        size.json()
    );
    Ok(())
}

fn clear(kv: &Client, out: &mut impl Write, ns: &str, expected: usize) -> anyhow::Result<()> {
    let cleared = kv.clear_namespace(ns)?;
    writeln!(
        out,
        "  cleared {ns}: {} deleted",
        keys(cleared.keys_deleted)
    )?;
    ensure!(
        cleared.status == ClearStatus::Cleared
            && cleared.namespace == ns
            && cleared.keys_deleted == expected,
        "clear {ns}: expected {expected} keys deleted: {}",
        cleared.json()
    );
    Ok(())
}

/// `1 key`, `2 keys`.
fn keys(n: usize) -> String {
    if n == 1 {
        "1 key".into()
    } else {
        format!("{n} keys")
    }
}
