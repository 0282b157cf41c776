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
//! KEYS[1] data, KEYS[2] index, KEYS[3] deadlines, KEYS[4] stats.

use std::sync::LazyLock;

use redis::Script;

/// Helpers every script starts with.
const PRELUDE: &str = r#"
local data, index, deadlines, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
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
  redis.call('HINCRBY', stats, 'bytes', -(#key + #value))
  return true
end
local function expire(key)
  if remove(key) then redis.call('HINCRBY', stats, 'expirations', 1) end
end
-- Removes at most `most` keys past their deadline: writes pay for
-- reaping a little at a time, never for a whole namespace.
local function reap(now, most)
  local due = redis.call('ZRANGEBYSCORE', deadlines, '-inf', fmt(now), 'LIMIT', 0, most)
  for _, key in ipairs(due) do expire(key) end
end
-- Stores `value` under `key` with a TTL in ms ('' for none), keeping the
-- index, the deadlines and the byte count in step: SET and SET_IF's write.
local function store(key, value, ttl, now)
  local old = redis.call('HGET', data, key)
  if old then redis.call('HINCRBY', stats, 'bytes', -(#key + #old)) end
  redis.call('HSET', data, key, value)
  redis.call('ZADD', index, 0, key)
  if ttl == '' then
    redis.call('ZREM', deadlines, key)
  else
    redis.call('ZADD', deadlines, fmt(now + tonumber(ttl)), key)
  end
  redis.call('HINCRBY', stats, 'bytes', #key + #value)
end
local function due_count(now)
  return redis.call('ZCOUNT', deadlines, '-inf', fmt(now))
end
"#;

/// ARGV: key, value, TTL in ms or "". Returns created().
const SET: &str = r#"
local now = now_ms()
reap(now, 16)
local key, value, ttl = ARGV[1], ARGV[2], ARGV[3]
if is_due(key, now) then expire(key) end
store(key, value, ttl, now)
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
return {created(), deleted}
"#;

/// Returns {hits, misses, live keys, bytes, expirations}: O(log n), the
/// keys past their deadline counted as expired, not as keys.
const STATS: &str = r#"
local now = now_ms()
local due = due_count(now)
local s = redis.call('HMGET', stats, 'hits', 'misses', 'bytes', 'expirations')
local function n(x) return tonumber(x or 0) or 0 end
return {n(s[1]), n(s[2]), redis.call('ZCARD', index) - due, math.max(n(s[3]), 0), n(s[4]) + due}
"#;

/// ARGV: min, max (ZRANGEBYLEX bounds), want. Returns up to `want` live
/// keys in byte order.
const LIST: &str = r#"
local now = now_ms()
local min, max, want = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
while #out < want do
  local batch = redis.call('ZRANGEBYLEX', index, min, max, 'LIMIT', 0, want)
  if #batch == 0 then break end
  for _, key in ipairs(batch) do
    if not is_due(key, now) then
      out[#out + 1] = key
      if #out == want then break end
    end
  end
  min = '(' .. batch[#batch]
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
if redis.call('EXISTS', data, index, deadlines) == 0 then return live end
local old = base .. 'cleared:' .. redis.call('INCR', base .. 'clears') .. ':'
for _, name in ipairs({'data', 'index', 'deadlines'}) do
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
  redis.call('ZREM', old .. 'index', unpack(keys))
else
  redis.call('DEL', old .. 'data', old .. 'deadlines', old .. 'index')
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

/// ARGV: key, value, TTL in ms or "", condition. Returns {created(), ok,
/// current tag}.
const SET_IF: &str = r#"
local now = now_ms()
reap(now, 16)
local key, value, ttl, condition = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local tag = current_tag(key, now)
if not holds(condition, tag) then return {created(), 0, tag} end
store(key, value, ttl, now)
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
return {created(), 1, tag, deleted}
"#;

/// ARGV: key, by, TTL in ms or "". HINCRBY on the value does the 64-bit
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
if old then
  redis.call('HINCRBY', stats, 'bytes', #value - #old)
else
  redis.call('ZADD', index, 0, key)
  redis.call('HINCRBY', stats, 'bytes', #key + #value)
end
if ttl ~= '' then redis.call('ZADD', deadlines, fmt(now + tonumber(ttl)), key) end
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
return 1
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
  elseif new == false then
    remove(key)
  elseif kind == 'set' then
    store(key, new, ttl, now)
  elseif new ~= nil then
    local old = redis.call('HGET', data, key)
    if old then
      redis.call('HINCRBY', stats, 'bytes', #new - #old)
    else
      redis.call('ZADD', index, 0, key)
      redis.call('HINCRBY', stats, 'bytes', #key + #new)
    end
    redis.call('HSET', data, key, new)
  end
end
local out, writes = {'', '0'}, {}
for i = 0, (#ARGV - 1) / 5 - 1 do
  local kind, key, arg, ttl, condition = ARGV[2 + 5 * i], ARGV[3 + 5 * i], ARGV[4 + 5 * i], ARGV[5 + 5 * i], ARGV[6 + 5 * i]
  local code, text, new = work_out(kind, key, arg, condition)
  local failed = code == 'condition' or code == 'not_integer' or code == 'overflow'
  if atomic and failed then return {tostring(created()), tostring(i + 1), code, text or ''} end
  if kind == 'get' then new = (code == 'value') end
  if atomic then
    if kind ~= 'get' and new ~= nil then overlay[key] = new end
    writes[#writes + 1] = {kind, key, new, ttl}
  elseif not failed then
    write(kind, key, new, ttl)
  end
  out[#out + 1] = code
  out[#out + 1] = text or ''
end
for _, w in ipairs(writes) do write(w[1], w[2], w[3], w[4]) end
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
pub static EXPIRE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(EXPIRE));
