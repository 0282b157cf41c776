"""The "Python Client Example" of NAMESPACES.md, run against a live PyKV.

The requests calls are the seed's, unchanged; only BASE_URL comes from
$PYKV_URL (default http://127.0.0.1:8000), and asserts check what the example
prints and gets. Exits non-zero (AssertionError) on any disagreement.
"""

import os

import requests

BASE_URL = os.environ.get("PYKV_URL", "http://127.0.0.1:8000")

# ---- the seed's example ----------------------------------------------------

# Set with namespace
set_response = requests.post(f"{BASE_URL}/set?ns=app1", json={
    "key": "user:123",
    "value": "alice"
})

# Get with namespace
response = requests.get(f"{BASE_URL}/get/user:123?ns=app1")
print(response.json()["value"])  # alice
get_response = response

# List namespaces
response = requests.get(f"{BASE_URL}/namespaces")
print(response.json()["namespaces"])  # ['app1', 'app2', ...]
list_response = response

# Clear namespace
clear_response = requests.delete(f"{BASE_URL}/namespaces/app1")

# ---- checks ----------------------------------------------------------------

assert set_response.status_code == 200, (set_response.status_code, set_response.text)
assert set_response.json() == {
    "status": "success", "key": "user:123", "namespace": "app1",
}, set_response.text

assert get_response.status_code == 200, (get_response.status_code, get_response.text)
assert get_response.json()["value"] == "alice", get_response.text
assert get_response.json() == {
    "key": "user:123", "value": "alice", "namespace": "app1",
}, get_response.text

assert list_response.status_code == 200, (list_response.status_code, list_response.text)
assert "app1" in list_response.json()["namespaces"], list_response.text
assert list_response.json()["count"] == len(list_response.json()["namespaces"]), list_response.text

assert clear_response.status_code == 200, (clear_response.status_code, clear_response.text)
assert clear_response.json() == {
    "status": "cleared", "namespace": "app1", "keys_deleted": 1,
}, clear_response.text

# The clear worked: the key is gone and app1 is no longer listed.
after = requests.get(f"{BASE_URL}/get/user:123?ns=app1")
assert after.status_code == 404, (after.status_code, after.text)
assert after.json() == {"detail": "Key not found"}, after.text
after = requests.get(f"{BASE_URL}/namespaces")
assert after.status_code == 200, (after.status_code, after.text)
assert "app1" not in after.json()["namespaces"], after.text
after = requests.get(f"{BASE_URL}/namespaces/app1/keys")
assert after.json() == {"namespace": "app1", "total_keys": 0}, after.text

print("seed client example: OK")
