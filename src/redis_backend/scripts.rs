//! The Lua scripts: each operation on a namespace is one script, run
//! atomically on the namespace's slot (see [`super::layout`]).
//!
//! Why scripts rather than MULTI/EXEC or several calls: a script reads and
//! writes in one round trip without another client slipping in between,
//! which is what keeps the index, the deadlines and the byte counter in
//! step with the data; and `Script::invoke_async` sends EVALSHA, loading
//! the script again after a failover (NOSCRIPT) by itself.
//!
//! Time is Redis's own (`TIME`): every PyKV node then agrees on when a key
//! expires, whatever their clocks. Redis 7 replicates a script's effects,
//! not the script, so reading the clock in a script is allowed.
//!
//! Every script is given the namespace's keys in this order:
//! KEYS[1] data, KEYS[2] index, KEYS[3] deadlines, KEYS[4] stats,
//! KEYS[5] watched (the change feed's marker), KEYS[6] feed (its stream),
//! KEYS[7] lru, KEYS[8] quota.
//!
//! # The change feed
//!
//! Every change a script makes is appended, by the same script, to the
//! namespace's stream (`publish`), so every PyKV node over this Redis
//! sees the same events with the same ids, in the order Redis applied
//! them. Only while the namespace is watched: the marker `watched`
//! (`EPOCH:RETAIN`, kept alive by the watchers, see `super::watch`) says
//! so, and a write to a namespace nobody watches pays one `GET` of a
//! missing key. Ids are `EPOCH-*`, which Redis numbers `EPOCH-1`,
//! `EPOCH-2`, ... (the marker's `open` entry is `EPOCH-0`): a gap in the
//! numbers is a trimmed event, which is how a watcher knows it fell behind.
//!
//! # Quotas
//!
//! A write that may grow a namespace calls `admit` before it writes
//! anything and `evict_over_quota` after: both run inside the write's
//! script, on the namespace's slot, so no interleaving of writers (from
//! any number of PyKV nodes) can take a namespace past its quota. The
//! quota is the one `PUT /quota` keeps in the namespace's `quota` hash,
//! else the node's quota file's, which such a script takes as its last
//! three ARGV: policy (`lru` or `noeviction`), max bytes, max keys (""
//! for none); see `quota_args` in ops.rs. A refusal is an error reply,
//! `PYKV_LIMIT scope|limit|` or `PYKV_TOO_LARGE scope|size|max|`, which
//! errors.rs turns into the engine's errors (507).
//!
//! LRU is exact here, not sampled as in the engine: `lru` is a sorted set
//! of key -> last access (ms, Redis's clock), written by every write and
//! by every read that finds its key, so evicting takes the first member
//! (O(log n)). Its cost: one ZADD per read and write, and a second sorted
//! set entry per key (README, "Running on Redis").

use std::sync::LazyLock;

use redis::Script;

/// Helpers every script starts with.
const PRELUDE: &str = r#"
local data, index, deadlines, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local watched, feed, lru, quota = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local feed_state = nil
-- Appends an event (field, value, ...) to the change feed if the
-- namespace is watched; trims it to about RETAIN events.
local function publish(...)
  if feed_state == nil then feed_state = redis.call('GET', watched) or false end
  if not feed_state then return end
  local epoch, retain = string.match(feed_state, '^(%d+):(%d+)$')
  redis.call('XADD', feed, 'MAXLEN', '~', retain, epoch .. '-*', ...)
end
local function publish_set(key, value)
  local deadline = redis.call('ZSCORE', deadlines, key)
  publish('op', 'set', 'key', key, 'value', value, 'exp', deadline or '')
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function fmt(n) return string.format('%.0f', n) end
local had_stats = redis.call('EXISTS', stats) == 1
-- 1 when this call created the namespace's stats: the caller then adds
-- the namespace to the registry.
local function created()
  if had_stats then return 0 end
  return redis.call('EXISTS', stats)
end
local function is_due(key, now)
  local deadline = redis.call('ZSCORE', deadlines, key)
  return deadline ~= false and tonumber(deadline) <= now
end
local function remove(key)
  local value = redis.call('HGET', data, key)
  if not value then return false end
  redis.call('HDEL', data, key)
  redis.call('ZREM', index, key)
  redis.call('ZREM', deadlines, key)
  redis.call('ZREM', lru, key)
  redis.call('HINCRBY', stats, 'bytes', -(#key + #value))
  return true
end
local function expire(key)
  if remove(key) then
    redis.call('HINCRBY', stats, 'expirations', 1)
    publish('op', 'expire', 'key', key)
  end
end
-- Removes at most `most` keys past their deadline: writes pay for
-- reaping a little at a time, never for a whole namespace.
local function reap(now, most)
  local due = redis.call('ZRANGEBYSCORE', deadlines, '-inf', fmt(now), 'LIMIT', 0, most)
  for _, key in ipairs(due) do expire(key) end
end
-- Stores `value` under `key` with a TTL in ms ('' for none, nil to keep
-- the key's deadline as a counter does), keeping the index, the deadlines
-- and the byte count in step: the one write of SET, SET_IF, INCR and BATCH.
local function store(key, value, ttl, now)
  local old = redis.call('HGET', data, key)
  if old then redis.call('HINCRBY', stats, 'bytes', -(#key + #old)) end
  redis.call('HSET', data, key, value)
  redis.call('ZADD', index, 0, key)
  redis.call('ZADD', lru, now, key)
  if ttl == '' then
    redis.call('ZREM', deadlines, key)
  elseif ttl then
    redis.call('ZADD', deadlines, fmt(now + tonumber(ttl)), key)
  end
  redis.call('HINCRBY', stats, 'bytes', #key + #value)
  publish_set(key, value)
end
-- Calls visit(key) for each live key of the index between the ZRANGEBYLEX
-- bounds `min` and `max`, in byte order, reading `page` keys at a time,
-- until visit returns true: LIST and EXPORT's walk.
local function each_live_key(min, max, page, now, visit)
  while true do
    local batch = redis.call('ZRANGEBYLEX', index, min, max, 'LIMIT', 0, page)
    if #batch == 0 then return end
    for _, key in ipairs(batch) do
      if not is_due(key, now) and visit(key) then return end
    end
    min = '(' .. batch[#batch]
  end
end
local function due_count(now)
  return redis.call('ZCOUNT', deadlines, '-inf', fmt(now))
end
-- The quota in force: policy, max bytes, max keys (nil: none).
local function quota_in_force()
  local n = #ARGV
  local kept = redis.call('HMGET', quota, 'set', 'max_bytes', 'max_keys')
  if kept[1] then return ARGV[n - 2], tonumber(kept[2]), tonumber(kept[3]) end
  return ARGV[n - 2], tonumber(ARGV[n - 1]), tonumber(ARGV[n])
end
local function used_bytes() return tonumber(redis.call('HGET', stats, 'bytes') or 0) end
local function scope()
  local name = string.match(data, '{ns:([^}]*)}')
  if name then return 'namespace "' .. name .. '"' end
  return 'the default namespace'
end
local function describe(max_bytes, max_keys)
  if max_bytes and max_keys then return fmt(max_bytes) .. ' bytes and ' .. fmt(max_keys) .. ' keys' end
  if max_bytes then return fmt(max_bytes) .. ' bytes' end
  return fmt(max_keys) .. ' keys'
end
-- The refusals of the quota, as errors.rs reads them.
local function too_large(size, max_bytes)
  return 'PYKV_TOO_LARGE ' .. scope() .. '|' .. size .. '|' .. fmt(max_bytes) .. '|'
end
local function at_limit(max_bytes, max_keys)
  return 'PYKV_LIMIT ' .. scope() .. '|' .. describe(max_bytes, max_keys) .. '|'
end
-- Refuses, before anything is written, a write of `value` under `key`
-- that the quota forbids: an entry larger than the namespace may hold
-- (any policy); under noeviction, any write that would take the
-- namespace past its quota (the engine's rule, check_limits).
local function admit(key, value)
  local policy, max_bytes, max_keys = quota_in_force()
  if not max_bytes and not max_keys then return end
  local size = #key + #value
  if max_bytes and size > max_bytes then error({err = too_large(size, max_bytes)}) end
  if policy ~= 'noeviction' then return end
  local old = redis.call('HGET', data, key)
  local bytes = size - (old and (#key + #old) or 0)
  local keys = old and 0 or 1
  if (max_bytes and used_bytes() + bytes > max_bytes)
      or (max_keys and redis.call('ZCARD', index) + keys > max_keys) then
    error({err = at_limit(max_bytes, max_keys)})
  end
end
-- The text of a refusal `admit` raised, caught by pcall (a table with
-- `err`, or its text, depending on how Redis passed it on).
local function refusal_text(refusal)
  if type(refusal) == 'table' then return tostring(refusal.err) end
  return tostring(refusal)
end
-- Under lru, evicts the least recently used keys other than `keep`
-- until the namespace is within its quota, at most `most` of them (nil:
-- as many as it takes). Returns how many it evicted.
local function evict_over_quota(keep, most)
  local policy, max_bytes, max_keys = quota_in_force()
  if policy ~= 'lru' then return 0 end
  local evicted = 0
  while (max_keys and redis.call('ZCARD', index) > max_keys)
      or (max_bytes and used_bytes() > max_bytes) do
    if most and evicted >= most then break end
    local oldest = redis.call('ZRANGE', lru, 0, 1)
    local victim = oldest[1]
    if victim == keep then victim = oldest[2] end
    if not victim then break end
    remove(victim)
    redis.call('HINCRBY', stats, 'evictions', 1)
    publish('op', 'evict', 'key', victim)
    evicted = evicted + 1
  end
  return evicted
end
"#;

/// ARGV: key, value, TTL in ms or "", then the quota arguments. Returns
/// created().
const SET: &str = r#"
local now = now_ms()
reap(now, 16)
local key, value, ttl = ARGV[1], ARGV[2], ARGV[3]
if is_due(key, now) then expire(key) end
admit(key, value)
store(key, value, ttl, now)
evict_over_quota(key)
return created()
"#;

/// ARGV: key. Returns {created(), found, value or ""}.
const GET: &str = r#"
local now = now_ms()
local key = ARGV[1]
local value = redis.call('HGET', data, key)
if value and is_due(key, now) then
  expire(key)
  value = false
end
if value then
  redis.call('HINCRBY', stats, 'hits', 1)
  redis.call('ZADD', lru, now, key)
  return {created(), 1, value}
end
redis.call('HINCRBY', stats, 'misses', 1)
return {created(), 0, ''}
"#;

/// ARGV: key. Returns {created(), deleted}.
const DELETE: &str = r#"
local now = now_ms()
reap(now, 16)
local key = ARGV[1]
if is_due(key, now) then
  expire(key)
  return {created(), 0}
end
local deleted = remove(key) and 1 or 0
if deleted == 1 then publish('op', 'delete', 'key', key) end
return {created(), deleted}
"#;

/// Returns {hits, misses, live keys, bytes, expirations, evictions}:
/// O(log n), the keys past their deadline counted as expired, not as keys.
const STATS: &str = r#"
local now = now_ms()
local due = due_count(now)
local s = redis.call('HMGET', stats, 'hits', 'misses', 'bytes', 'expirations', 'evictions')
local function n(x) return tonumber(x or 0) or 0 end
return {n(s[1]), n(s[2]), redis.call('ZCARD', index) - due, math.max(n(s[3]), 0), n(s[4]) + due, n(s[5])}
"#;

/// ARGV: min, max (ZRANGEBYLEX bounds), want. Returns up to `want` live
/// keys in byte order.
const LIST: &str = r#"
local now = now_ms()
local min, max, want = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
if want > 0 then
  each_live_key(min, max, want, now, function(key)
    out[#out + 1] = key
    return #out == want
  end)
end
return out
"#;

/// ARGV: the namespace's base name. Sets the namespace's keys aside under
/// a new number (RENAME is O(1)) and queues them for reclaiming; resets
/// the statistics. Returns the number of live keys it held.
const CLEAR: &str = r#"
local base = ARGV[1]
local live = redis.call('ZCARD', index) - due_count(now_ms())
redis.call('DEL', stats)
if live > 0 then publish('op', 'clear') end
if redis.call('EXISTS', data, index, deadlines, lru) == 0 then return live end
local old = base .. 'cleared:' .. redis.call('INCR', base .. 'clears') .. ':'
for _, name in ipairs({'data', 'index', 'deadlines', 'lru'}) do
  if redis.call('EXISTS', base .. name) == 1 then
    redis.call('RENAME', base .. name, old .. name)
  end
end
redis.call('RPUSH', base .. 'reclaim', old)
return live
"#;

/// ARGV: base, batch. Deletes at most `batch` keys of the oldest cleared
/// set; returns 0 once nothing is left to reclaim.
const RECLAIM: &str = r#"
local base, batch = ARGV[1], tonumber(ARGV[2])
local old = redis.call('LINDEX', base .. 'reclaim', 0)
if not old then return 0 end
local keys = redis.call('ZRANGE', old .. 'index', 0, batch - 1)
if #keys > 0 then
  redis.call('HDEL', old .. 'data', unpack(keys))
  redis.call('ZREM', old .. 'deadlines', unpack(keys))
  redis.call('ZREM', old .. 'lru', unpack(keys))
  redis.call('ZREM', old .. 'index', unpack(keys))
else
  redis.call('DEL', old .. 'data', old .. 'deadlines', old .. 'index', old .. 'lru')
  redis.call('LPOP', base .. 'reclaim')
end
return 1
"#;

/// Shared by the conditional scripts: whether the key's current value
/// meets ARGV's condition (`match:<16 hex>`, `differs:<16 hex>`,
/// `present`, `absent`, `never`); a key
/// past its deadline is expired first. Returns ok, and the current tag
/// ("" when absent): the first 16 hex digits of the value's SHA-1, as the
/// Rust side's `etag_of`.
const CONDITION: &str = r#"
local function current_tag(key, now)
  if is_due(key, now) then expire(key) end
  local value = redis.call('HGET', data, key)
  if not value then return '' end
  return string.sub(redis.sha1hex(value), 1, 16)
end
local function holds(condition, tag)
  if condition == 'present' then return tag ~= '' end
  if condition == 'absent' then return tag == '' end
  if condition == 'never' then return false end
  if string.sub(condition, 1, 8) == 'differs:' then return condition ~= 'differs:' .. tag end
  return tag ~= '' and condition == 'match:' .. tag
end
"#;

/// ARGV: key, value, TTL in ms or "", condition, then the quota
/// arguments. Returns {created(), ok, current tag}.
const SET_IF: &str = r#"
local now = now_ms()
reap(now, 16)
local key, value, ttl, condition = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local tag = current_tag(key, now)
if not holds(condition, tag) then return {created(), 0, tag} end
admit(key, value)
store(key, value, ttl, now)
evict_over_quota(key)
return {created(), 1, tag}
"#;

/// ARGV: key, condition. Returns {created(), ok, current tag, deleted}.
const DELETE_IF: &str = r#"
local now = now_ms()
reap(now, 16)
local key, condition = ARGV[1], ARGV[2]
local tag = current_tag(key, now)
if not holds(condition, tag) then return {created(), 0, tag, 0} end
local deleted = remove(key) and 1 or 0
if deleted == 1 then publish('op', 'delete', 'key', key) end
return {created(), 1, tag, deleted}
"#;

/// ARGV: key, by, TTL in ms or "", then the quota arguments. HINCRBY on the value does the 64-bit
/// arithmetic and its checks. Returns {created(), status, detail}: status
/// 1 and the sum; 0 and the current value (not an integer); -1 and the
/// current value (overflow).
const INCR: &str = r#"
local now = now_ms()
reap(now, 16)
local key, by, ttl = ARGV[1], ARGV[2], ARGV[3]
if is_due(key, now) then expire(key) end
local old = redis.call('HGET', data, key)
local ok, sum = pcall(redis.call, 'HINCRBY', data, key, by)
if not ok then
  local message = tostring(sum.err or sum)
  if string.find(message, 'overflow') then return {created(), -1, old} end
  return {created(), 0, old}
end
local value = tostring(sum)
-- The quota is checked against the old value, put back meanwhile (a
-- refusal then leaves it as it was).
if old then redis.call('HSET', data, key, old) else redis.call('HDEL', data, key) end
admit(key, value)
store(key, value, ttl ~= '' and ttl or nil, now)
evict_over_quota(key)
return {created(), 1, value}
"#;

/// ARGV: key. Returns {found, ms left or -1 for none}.
const TTL: &str = r#"
local now = now_ms()
local key = ARGV[1]
if is_due(key, now) then expire(key) end
if redis.call('HEXISTS', data, key) == 0 then return {0, -1} end
local deadline = redis.call('ZSCORE', deadlines, key)
if not deadline then return {1, -1} end
return {1, math.max(tonumber(deadline) - now, 0)}
"#;

/// ARGV: key, TTL in ms or "". Returns 1 when the key exists.
const EXPIRE: &str = r#"
local now = now_ms()
local key, ttl = ARGV[1], ARGV[2]
if is_due(key, now) then expire(key) end
if redis.call('HEXISTS', data, key) == 0 then return 0 end
if ttl == '' then
  redis.call('ZREM', deadlines, key)
else
  redis.call('ZADD', deadlines, fmt(now + tonumber(ttl)), key)
end
publish_set(key, redis.call('HGET', data, key))
return 1
"#;

/// ARGV: linger ms, retain, create ("1": create the feed if it does not
/// exist). Opens (or keeps alive) the namespace's change feed: the marker
/// and the stream live `linger` ms past the last call. Returns {epoch,
/// first id, last id}, or {} when the feed does not exist and was not to
/// be created.
const WATCH_OPEN: &str = r#"
local linger, retain, create = ARGV[1], ARGV[2], ARGV[3]
local state = redis.call('GET', watched)
if not state then
  if create ~= '1' then return {} end
  redis.call('DEL', feed)
  local epoch = fmt(now_ms())
  state = epoch .. ':' .. retain
  redis.call('XADD', feed, epoch .. '-0', 'op', 'open')
end
redis.call('SET', watched, state, 'PX', linger)
redis.call('PEXPIRE', feed, linger)
local epoch = string.match(state, '^(%d+):')
local first = redis.call('XRANGE', feed, '-', '+', 'COUNT', 1)
local last = redis.call('XREVRANGE', feed, '+', '-', 'COUNT', 1)
if #first == 0 then return {epoch, '', ''} end
return {epoch, first[1][1], last[1][1]}
"#;

/// ARGV: most. Removes at most `most` keys past their deadline (each an
/// `expire` event): watchers run it about once a second, so that expiry
/// events come near the deadline rather than at the next write.
const REAP: &str = r#"
reap(now_ms(), tonumber(ARGV[1]))
return 1
"#;

/// ARGV: min, max (ZRANGEBYLEX bounds), want, most bytes. Returns up to
/// `want` live keys in byte order, flat: key, value, deadline in ms or ""
/// for each; it stops early after the key that brings the keys and values
/// to `most bytes`. The page is read in one step, so each key comes with
/// the value and deadline it had together.
const EXPORT: &str = r#"
local now = now_ms()
local min, max, want, most = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out, found, bytes = {}, 0, 0
if want > 0 and most > 0 then
  each_live_key(min, max, want, now, function(key)
    local value = redis.call('HGET', data, key)
    if not value then return false end
    out[#out + 1] = key
    out[#out + 1] = value
    out[#out + 1] = redis.call('ZSCORE', deadlines, key) or ''
    found = found + 1
    bytes = bytes + #key + #value
    return found == want or bytes >= most
  end)
end
return out
"#;

/// ARGV: key, value, absolute deadline in ms or "", for each record in
/// turn, then the quota arguments. Stores each as SET does (quota
/// included), with the TTL that reaches its deadline on Redis's clock,
/// skipping those already past. A record the quota refuses ends the run
/// before anything of it is written: what came before it stays. Returns
/// {created(), records dealt with, records stored, the refusal or ""}.
const IMPORT: &str = r#"
local now = now_ms()
reap(now, 16)
local done, stored = 0, 0
for i = 1, #ARGV - 3, 3 do
  local key, value, deadline = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if deadline == '' or tonumber(deadline) > now then
    if is_due(key, now) then expire(key) end
    local admitted, refusal = pcall(admit, key, value)
    if not admitted then return {created(), done, stored, refusal_text(refusal)} end
    local ttl = ''
    if deadline ~= '' then ttl = fmt(tonumber(deadline) - now) end
    store(key, value, ttl, now)
    evict_over_quota(key)
    stored = stored + 1
  end
  done = done + 1
end
return {created(), done, stored, ''}
"#;

/// Returns {kept, max bytes, max keys, used bytes, used keys}: kept is 1
/// when `PUT /quota` set the namespace's quota (-1: no limit), else the
/// node's quota file rules.
const QUOTA: &str = r#"
local kept = redis.call('HMGET', quota, 'set', 'max_bytes', 'max_keys')
local function n(x) return tonumber(x) or -1 end
return {kept[1] and 1 or 0, n(kept[2]), n(kept[3]), math.max(used_bytes(), 0), redis.call('ZCARD', index)}
"#;

/// ARGV: max bytes, max keys ("" for none), then the quota arguments,
/// and `most`, the evictions allowed in this call. Keeps the namespace's
/// quota, then evicts (under lru) at most `most` keys. Returns {used
/// bytes, used keys, 1 when more evictions are needed}.
const SET_QUOTA: &str = r#"
redis.call('HSET', quota, 'set', 1, 'max_bytes', ARGV[1], 'max_keys', ARGV[2])
local most = tonumber(ARGV[3])
local more = evict_over_quota(nil, most) == most and 1 or 0
return {math.max(used_bytes(), 0), redis.call('ZCARD', index), more}
"#;

/// A batch (`POST /batch`), one script for the whole of it: one round trip
/// on the namespace's slot, and nothing of another client between its
/// ops. ARGV: "1" for a transaction, "0" for ops each on their own; then
/// five per op: kind (get, set, delete, incr), key, the value (set) or the
/// increment (incr), the TTL in ms or "" (set), the condition or "".
///
/// Each op is worked out against the keys as the ops before it left them
/// (`overlay`, in a transaction) before anything is written; ops on their
/// own are written at once. A transaction writes only once every op has
/// been worked out, so an op that fails leaves nothing written.
/// Increments are summed by HINCRBY on a scratch hash in the namespace's
/// slot, deleted at once: exact in 64 bits (Lua's numbers are doubles)
/// and checked, without touching the key.
///
/// Quotas: an op on its own is admitted as SET admits a write (code
/// `refused` and the refusal's text when it is not); a transaction is
/// admitted whole before anything is written, each write counted on top
/// of those before it, and fails at the first write the quota refuses.
/// Under lru, evictions follow the writes. Every change is published to
/// the change feed as its single-key script would.
///
/// Returns strings: created(), then 0 and a code and a text per op
/// (value + JSON text, missing, stored, deleted, counted + sum), or, for a
/// transaction that failed, the 1-based index of the op that failed and
/// its code and text (condition + current tag, not_integer + current
/// value, overflow + current value). Ops on their own may fail with
/// those codes too, each alone.
const BATCH: &str = r#"
local now = now_ms()
reap(now, 16)
local atomic = ARGV[1] == '1'
local scratch = string.sub(data, 1, #data - 4) .. 'scratch'
local overlay = {}
local function read(key)
  local value = overlay[key]
  if value ~= nil then return value end
  if is_due(key, now) then expire(key) end
  return redis.call('HGET', data, key)
end
local function add(value, by)
  redis.call('HSET', scratch, 'n', value or '0')
  local ok, err = pcall(redis.call, 'HINCRBY', scratch, 'n', by)
  local sum = redis.call('HGET', scratch, 'n')
  redis.call('DEL', scratch)
  if ok then return 'counted', sum end
  if string.find(tostring(err.err or err), 'overflow') then return 'overflow', value end
  return 'not_integer', value
end
-- An op's code and text, and the key's new value (nil: unchanged,
-- false: removed).
local function work_out(kind, key, arg, condition)
  local value = read(key)
  if condition ~= '' then
    local tag = value and string.sub(redis.sha1hex(value), 1, 16) or ''
    if not holds(condition, tag) then return 'condition', tag end
  end
  if kind == 'get' then
    if value then return 'value', value end
    return 'missing', ''
  elseif kind == 'set' then
    return 'stored', '', arg
  elseif kind == 'delete' then
    if value then return 'deleted', '', false end
    return 'missing', ''
  end
  local code, text = add(value, arg)
  if code == 'counted' then return code, text, text end
  return code, text
end
-- Writes an op's new value; an increment keeps the key's deadline.
local function write(kind, key, new, ttl)
  if kind == 'get' then
    redis.call('HINCRBY', stats, new and 'hits' or 'misses', 1)
    if new then redis.call('ZADD', lru, 'XX', now, key) end
  elseif new == false then
    remove(key)
    publish('op', 'delete', 'key', key)
  elseif kind == 'set' then
    store(key, new, ttl, now)
  elseif new ~= nil then
    store(key, new, nil, now)
  end
end
-- Whether a transaction's writes fit the quota, each counted on top of
-- the ones before it: nil, or the index of the first that does not and
-- the refusal, as `admit` would raise it.
local function admit_all(writes)
  local policy, max_bytes, max_keys = quota_in_force()
  if not max_bytes and not max_keys then return nil end
  local bytes, count, now_value = used_bytes(), redis.call('ZCARD', index), {}
  for i, w in ipairs(writes) do
    local kind, key, new = w[1], w[2], w[3]
    if kind ~= 'get' and new ~= nil then
      local old = now_value[key]
      if old == nil then old = redis.call('HGET', data, key) end
      local old_size = old and (#key + #old) or 0
      if new == false then
        bytes, count = bytes - old_size, count - (old and 1 or 0)
      else
        local size = #key + #new
        if max_bytes and size > max_bytes then return w[5], too_large(size, max_bytes) end
        bytes, count = bytes + size - old_size, count + (old and 0 or 1)
        if policy == 'noeviction' and ((max_bytes and bytes > max_bytes) or (max_keys and count > max_keys)) then
          return w[5], at_limit(max_bytes, max_keys)
        end
      end
      now_value[key] = new
    end
  end
  return nil
end
local out, writes = {'', '0'}, {}
for i = 0, (#ARGV - 4) / 5 - 1 do
  local kind, key, arg, ttl, condition = ARGV[2 + 5 * i], ARGV[3 + 5 * i], ARGV[4 + 5 * i], ARGV[5 + 5 * i], ARGV[6 + 5 * i]
  local code, text, new = work_out(kind, key, arg, condition)
  local failed = code == 'condition' or code == 'not_integer' or code == 'overflow'
  if atomic and failed then return {tostring(created()), tostring(i + 1), code, text or ''} end
  if kind == 'get' then new = (code == 'value') end
  if atomic then
    if kind ~= 'get' and new ~= nil then overlay[key] = new end
    writes[#writes + 1] = {kind, key, new, ttl, i + 1}
  elseif not failed then
    local admitted, refusal = true, nil
    if kind ~= 'get' and new then admitted, refusal = pcall(admit, key, new) end
    if admitted then
      write(kind, key, new, ttl)
      if kind ~= 'get' and new then evict_over_quota(key) end
    else
      code, text = 'refused', refusal_text(refusal)
    end
  end
  out[#out + 1] = code
  out[#out + 1] = text or ''
end
local refused_at, refusal = admit_all(writes)
if refused_at then return {tostring(created()), tostring(refused_at), 'refused', refusal} end
local last_written = nil
for _, w in ipairs(writes) do
  write(w[1], w[2], w[3], w[4])
  if w[1] ~= 'get' and w[3] then last_written = w[2] end
end
if last_written then evict_over_quota(last_written) end
out[1] = tostring(created())
return out
"#;

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

pub static SET_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(SET));
pub static GET_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(GET));
pub static DELETE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(DELETE));
pub static STATS_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(STATS));
pub static LIST_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(LIST));
pub static CLEAR_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(CLEAR));
pub static RECLAIM_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(RECLAIM));
pub static SET_IF_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(&format!("{CONDITION}{SET_IF}")));
pub static DELETE_IF_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(&format!("{CONDITION}{DELETE_IF}")));
pub static BATCH_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(&format!("{CONDITION}{BATCH}")));
pub static INCR_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(INCR));
pub static TTL_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(TTL));
pub static QUOTA_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(QUOTA));
pub static SET_QUOTA_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(SET_QUOTA));
pub static EXPIRE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(EXPIRE));
pub static WATCH_OPEN_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(WATCH_OPEN));
pub static REAP_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(REAP));
pub static EXPORT_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(EXPORT));
pub static IMPORT_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(IMPORT));
