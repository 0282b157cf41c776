#!/usr/bin/env python3
"""PyKV namespace demo: the scenarios of NAMESPACES.md, run against a server.

    python examples/namespace_demo.py          # server at $PYKV_URL,
                                               # default http://127.0.0.1:8000

Basic usage, a multi-tenant SaaS, environment separation, microservices and
session storage with TTL, each with the seed's own example calls. Every
answer is checked: the demo exits 1 on the first one that is not what it
expects, and 2 if it cannot run (no server, or its namespaces already hold
keys: it clears them at the end). examples/namespace_demo.rs (and
pykv::client::demo) is the same demo in Rust; keep them alike.
"""

import json
import os
import sys
import time
from urllib.parse import quote

import requests

BASE_URL = os.environ.get("PYKV_URL", "http://127.0.0.1:8000").rstrip("/")
TIMEOUT = 10

# Every namespace the demo writes into, and how many keys it holds when the
# demo ends (app1 is cleared in the first part already).
NAMESPACES = {
    "app1": 0, "app2": 1,
    "tenant_acme": 2, "tenant_globex": 2,
    "dev": 2, "staging": 2, "prod": 2,
    "auth": 2, "payment": 2, "notification": 2, "analytics": 2,
    "webapp": 1, "mobileapp": 1, "api": 1,
}


class DemoError(Exception):
    """An answer that is not what the demo expects."""


def check(condition, what, response=None):
    if not condition:
        detail = f" [{response.status_code} {response.text}]" if response is not None else ""
        raise DemoError(what + detail)


def keys(n):
    return "1 key" if n == 1 else f"{n} keys"


def section(title):
    print(f"\n=== {title} ===")


def call(method, path, **kwargs):
    return requests.request(method, BASE_URL + path, timeout=TIMEOUT, **kwargs)


def set_key(ns, key, value, ttl=None):
    body = {"key": key, "value": value}
    if ttl is not None:
        body["ttl"] = ttl
    r = call("POST", f"/set?ns={ns}", json=body)
    note = f" (ttl {ttl} s)" if ttl is not None else ""
    print(f"  SET {ns}/{key} = {json.dumps(value)}{note}: {r.json().get('status', r.text)}")
    check(r.status_code == 200, f"SET {ns}/{key}", r)
    check(r.json() == {"status": "success", "key": key, "namespace": ns}, f"SET {ns}/{key}", r)


def set_all(ns, pairs):
    for key, value in pairs:
        set_key(ns, key, value)


def expect_value(ns, key, expected):
    r = call("GET", f"/get/{quote(key, safe='')}?ns={ns}")
    check(r.status_code == 200, f"GET {ns}/{key}", r)
    print(f"  GET {ns}/{key} -> {json.dumps(r.json()['value'])}")
    check(r.json() == {"key": key, "value": expected, "namespace": ns},
          f"GET {ns}/{key}: expected {expected!r}", r)


def expect_all(ns, pairs):
    for key, value in pairs:
        expect_value(ns, key, value)


def expect_missing(ns, key):
    r = call("GET", f"/get/{quote(key, safe='')}?ns={ns}")
    check(r.status_code == 404 and r.json() == {"detail": "Key not found"},
          f"GET {ns}/{key} should be gone", r)
    print(f"  GET {ns}/{key} -> 404 Key not found")


def expect_size(ns, expected):
    r = call("GET", f"/namespaces/{ns}/keys")
    check(r.status_code == 200, f"size of {ns}", r)
    print(f"  {ns} holds {keys(r.json()['total_keys'])}")
    check(r.json() == {"namespace": ns, "total_keys": expected}, f"{ns}: expected {expected} keys", r)


def clear(ns, expected):
    r = call("DELETE", f"/namespaces/{ns}")
    check(r.status_code == 200, f"clear {ns}", r)
    print(f"  cleared {ns}: {keys(r.json()['keys_deleted'])} deleted")
    check(r.json() == {"status": "cleared", "namespace": ns, "keys_deleted": expected},
          f"clear {ns}: expected {expected} keys deleted", r)


def namespaces():
    r = call("GET", "/namespaces")
    check(r.status_code == 200, "GET /namespaces", r)
    body = r.json()
    check(body["count"] == len(body["namespaces"]), "namespace count", r)
    return body["namespaces"]


def preflight():
    r = call("GET", "/health")
    check(r.status_code == 200 and r.json()["status"] == "healthy", "GET /health", r)
    print(f"PyKV at {BASE_URL}: {r.json()['status']}")
    busy = [ns for ns in namespaces() if ns in NAMESPACES]
    if busy:
        print(f"error: namespaces {busy} already hold keys; the demo writes into and clears "
              "them, so run it against a server without them", file=sys.stderr)
        sys.exit(2)


def basic_usage():
    section("1. Basic usage")
    set_key("app1", "user:123", "alice")
    set_key("app2", "user:123", "bob")
    expect_value("app1", "user:123", "alice")
    expect_value("app2", "user:123", "bob")
    listed = namespaces()
    print(f"  namespaces: {json.dumps(listed)}")
    check("app1" in listed and "app2" in listed, f"app1 and app2 listed in {listed}")
    clear("app1", 1)
    expect_missing("app1", "user:123")
    expect_value("app2", "user:123", "bob")


def multi_tenant():
    section("2. Multi-tenant SaaS")
    acme = [("config:theme", "dark"), ("user:count", "1500")]
    globex = [("config:theme", "light"), ("user:count", "3200")]
    set_all("tenant_acme", acme)
    set_all("tenant_globex", globex)
    print("  same keys, no conflicts:")
    expect_all("tenant_acme", acme)
    expect_all("tenant_globex", globex)
    expect_size("tenant_acme", 2)
    expect_size("tenant_globex", 2)


def environments():
    section("3. Environment separation")
    envs = {
        "dev": [("db:host", "localhost"), ("debug", "true")],
        "staging": [("db:host", "staging-db.example.com"), ("debug", "false")],
        "prod": [("db:host", "prod-db.example.com"), ("debug", "false")],
    }
    for ns, pairs in envs.items():
        set_all(ns, pairs)
    print("  each environment reads its own configuration:")
    for ns, pairs in envs.items():
        expect_all(ns, pairs)


def microservices():
    section("4. Microservices architecture")
    services = {
        "auth": [("session:user1", "token_abc"), ("refresh:user1", "refresh_xyz")],
        "payment": [("transaction:tx001", "pending"), ("balance:user1", "1000.00")],
        "notification": [("queue:email", "100"), ("queue:sms", "50")],
        "analytics": [("metric:page_views", "50000"), ("metric:conversions", "1250")],
    }
    for ns, pairs in services.items():
        set_all(ns, pairs)
    # Counters outlive a clear, so the check is on the change.
    hits_before = payment_hits()
    expect_value("payment", "balance:user1", "1000.00")
    check(payment_hits() == hits_before + 1, "the GET should count as one payment hit")
    r = call("GET", "/stats")
    check(r.status_code == 200, "GET /stats", r)
    print("  per-service statistics (GET /stats):")
    for ns in services:
        counters = r.json()["namespaces"].get(ns)
        check(counters is not None, f"{ns} missing from /stats", r)
        print(f"    {ns:<13} keys={counters['total_keys']} hits={counters['cache_hits']} "
              f"misses={counters['cache_misses']}")
        check(counters["total_keys"] == 2, f"{ns} should hold 2 keys", r)


def payment_hits():
    r = call("GET", "/stats?ns=payment")
    check(r.status_code == 200 and "namespace_stats" in r.json(), "GET /stats?ns=payment", r)
    return r.json()["namespace_stats"]["cache_hits"]


def sessions():
    section("5. Session storage with TTL")
    set_key("webapp", "session:alice", '{"user_id": "alice", "role": "admin"}', ttl=3600)
    set_key("mobileapp", "session:bob", '{"user_id": "bob", "role": "user"}', ttl=7200)
    set_key("api", "session:client_xyz", '{"client_id": "xyz", "scope": "read"}', ttl=1800)
    r = call("GET", "/get/session:alice?ns=webapp")
    check(r.status_code == 200, "GET webapp/session:alice", r)
    role = json.loads(r.json()["value"])["role"]
    print(f"  webapp/session:alice has role {role}")
    check(role == "admin", "session:alice should be an admin", r)
    # A session with a 1 s TTL is served at once, and no longer once its
    # second has passed.
    set_key("webapp", "session:temp", "short-lived", ttl=1)
    expect_value("webapp", "session:temp", "short-lived")
    print("  waiting 1.5 s for session:temp to expire...")
    time.sleep(1.5)
    expect_missing("webapp", "session:temp")
    expect_size("webapp", 1)


def cleanup():
    section("6. Clearing the demo's namespaces")
    for ns, keys in NAMESPACES.items():
        clear(ns, keys)
    left = namespaces()
    print(f"  namespaces left: {json.dumps(left)}")
    check(not any(ns in NAMESPACES for ns in left), f"demo namespaces still listed: {left}")


def main():
    try:
        preflight()
    except requests.ConnectionError:
        print(f"error: cannot connect to {BASE_URL}; is the server running? (set PYKV_URL)",
              file=sys.stderr)
        return 2
    try:
        basic_usage()
        multi_tenant()
        environments()
        microservices()
        sessions()
        cleanup()
    except (DemoError, requests.RequestException, ValueError, KeyError) as e:
        print(f"demo failed: {e}", file=sys.stderr)
        return 1
    print("\nAll checks passed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
