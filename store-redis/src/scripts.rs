//! The Lua scripts: every lease operation is one script, so it is atomic and
//! one round trip.
//!
//! Each lease script declares exactly the three keys of its reservation key
//! (`KEYS[1]` lease, `KEYS[2]` generation, `KEYS[3]` domain index), which
//! share one hash tag, so the scripts run unchanged on Redis Cluster.
//! [`redis::Script`] calls them by hash (`EVALSHA`) and loads them once on
//! `NOSCRIPT`.
//!
//! **Retries.** The cluster client resends a command whose connection dropped
//! before the reply arrived, so a script may run twice for one call. Every
//! write therefore carries a random call token and recognises its own
//! earlier write: a reserve finds its token in the value and returns the
//! lease, a release or operator release finds `<generation>|<token>` left in
//! the generation key, a cooldown finds its token in the cooldown value;
//! renew is idempotent as it is.
//!
//! **Generations** are the server's clock in microseconds (`TIME`), or one
//! more than the last generation issued for the key if that is larger. The
//! generation key keeps that last value for a while after the lease is gone
//! (see `RedisStoreBuilder::generation_memory`); the clock keeps
//! generations increasing even after it has expired or been evicted, as long
//! as the server clock does not step back further than that memory.

use std::sync::LazyLock;

use redis::Script;

// The scripts are written flat, without helper functions: Redis runs the
// whole chunk on every call, and each `local function` would be a closure
// allocated per call.
//
// Value fields, as `string.match` captures them with
// '^v1|([hc])|(%d+)|(%d+)|(%d+)|(%d+)|(%x+)|(.+)$':
// state, grant generation, generation, reserved ms, expires ms, token, app id.
// Numbers are written with '%.0f': Lua numbers are doubles, exact for these
// integers (microsecond clocks stay below 2^53 until the year 2255).

/// KEYS lease, gen, idx; ARGV ip, ttl ms, call token, app id, generation
/// memory ms. Returns the new value, or nil when the key is taken.
const RESERVE: &str = r#"
local current = redis.call('GET', KEYS[1])
if current then
  -- A retry of this very call whose first attempt won: hand the lease back.
  if string.match(current, '^v1|h|%d+|%d+|%d+|%d+|(%x+)|') == ARGV[3] then return current end
  return false
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local g = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = redis.call('GET', KEYS[2])
if last then
  local l = tonumber(string.match(last, '^%d+'))
  if l and l >= g then g = l + 1 end
end
g = string.format('%.0f', g)
local ttl = tonumber(ARGV[2])
local expires = now_ms + ttl
local value = 'v1|h|' .. g .. '|' .. g .. '|' .. string.format('%.0f', now_ms) .. '|'
  .. string.format('%.0f', expires) .. '|' .. ARGV[3] .. '|' .. ARGV[4]
if not redis.call('SET', KEYS[1], value, 'NX', 'PX', ttl) then return false end
redis.call('SET', KEYS[2], g, 'PX', ttl + tonumber(ARGV[5]))
-- Drop index entries of leases that expired unreleased; one reserve in 8
-- (by the clock) is enough to keep the index bounded, and listing prunes too.
if now_ms % 8 == 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. string.format('%.0f', now_ms))
end
redis.call('ZADD', KEYS[3], expires, ARGV[1])
-- The index must outlive its longest lease; doubling the TTL when it is
-- extended spares the PEXPIRE on most reserves that follow.
if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl * 2) end
return value
"#;

/// KEYS lease, gen, idx; ARGV ip, grant generation, generation, call token.
/// Returns 1 when released (now or by an earlier attempt of this call).
const RELEASE: &str = r#"
local current = redis.call('GET', KEYS[1])
if current then
  local grant, g = string.match(current, '^v1|h|(%d+)|(%d+)|')
  if grant == ARGV[2] and g == ARGV[3] then
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[3], ARGV[1])
    -- Tombstone: lets a retry of this call see that it already released.
    redis.call('SET', KEYS[2], g .. '|' .. ARGV[4], 'XX', 'KEEPTTL')
    return 1
  end
  return 0
end
if redis.call('GET', KEYS[2]) == ARGV[3] .. '|' .. ARGV[4] then return 1 end
return 0
"#;

/// KEYS lease, gen, idx; ARGV ip, grant generation, generation, call token,
/// cooldown ms, generation memory ms. Returns the cooldown value, or nil
/// when the lease is no longer held.
const COOLDOWN: &str = r#"
local current = redis.call('GET', KEYS[1])
if not current then return false end
local state, grant, g, _, _, token, app =
  string.match(current, '^v1|([hc])|(%d+)|(%d+)|(%d+)|(%d+)|(%x+)|(.+)$')
-- A retry of this very call whose first attempt cooled the lease down.
if state == 'c' and grant == ARGV[2] and token == ARGV[4] then return current end
if state ~= 'h' or grant ~= ARGV[2] or g ~= ARGV[3] then return false end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ng = tonumber(t[1]) * 1000000 + tonumber(t[2])
if ng <= tonumber(g) then ng = tonumber(g) + 1 end
local last = redis.call('GET', KEYS[2])
if last then
  local l = tonumber(string.match(last, '^%d+'))
  if l and l >= ng then ng = l + 1 end
end
ng = string.format('%.0f', ng)
local cooldown = tonumber(ARGV[5])
local expires = now_ms + cooldown
local value = 'v1|c|' .. grant .. '|' .. ng .. '|' .. string.format('%.0f', now_ms) .. '|'
  .. string.format('%.0f', expires) .. '|' .. ARGV[4] .. '|' .. app
redis.call('SET', KEYS[1], value, 'PX', cooldown)
redis.call('SET', KEYS[2], ng, 'PX', cooldown + tonumber(ARGV[6]))
redis.call('ZADD', KEYS[3], expires, ARGV[1])
if redis.call('PTTL', KEYS[3]) < cooldown then redis.call('PEXPIRE', KEYS[3], cooldown * 2) end
return value
"#;

/// KEYS lease, gen, idx; ARGV ip, grant generation, generation, ttl ms,
/// generation memory ms. Returns the renewed value, or nil when the lease is
/// no longer held.
const RENEW: &str = r#"
local current = redis.call('GET', KEYS[1])
if not current then return false end
local grant, g, reserved, token, app =
  string.match(current, '^v1|h|(%d+)|(%d+)|(%d+)|%d+|(%x+)|(.+)$')
if grant ~= ARGV[2] or g ~= ARGV[3] then return false end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
local expires = now_ms + ttl
local value = 'v1|h|' .. grant .. '|' .. g .. '|' .. reserved .. '|'
  .. string.format('%.0f', expires) .. '|' .. token .. '|' .. app
redis.call('SET', KEYS[1], value, 'PX', ttl)
local keep = ttl + tonumber(ARGV[5])
if redis.call('PTTL', KEYS[2]) < keep then redis.call('PEXPIRE', KEYS[2], keep) end
redis.call('ZADD', KEYS[3], expires, ARGV[1])
if redis.call('PTTL', KEYS[3]) < ttl then redis.call('PEXPIRE', KEYS[3], ttl * 2) end
return value
"#;

/// KEYS lease, gen, idx; ARGV ip, grant generation, call token. Releases the
/// held or cooling grant with that grant generation. Returns 1 when released
/// (now or by an earlier attempt of this call).
const RELEASE_BY_ID: &str = r#"
local current = redis.call('GET', KEYS[1])
if current then
  local grant, g = string.match(current, '^v1|[hc]|(%d+)|(%d+)|')
  if grant == ARGV[2] then
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[3], ARGV[1])
    redis.call('SET', KEYS[2], g .. '|' .. ARGV[3], 'XX', 'KEEPTTL')
    return 1
  end
  return 0
end
local mark = redis.call('GET', KEYS[2])
if mark and string.match(mark, '|(%x+)$') == ARGV[3] then return 1 end
return 0
"#;

/// KEYS idx. Drops index entries whose lease has expired and returns the
/// remaining members (IPs).
const LIST_INDEX: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now_ms))
return redis.call('ZRANGE', KEYS[1], 0, -1)
"#;

/// The compiled scripts (hashed once per process).
pub(crate) struct Scripts {
    pub(crate) reserve: Script,
    pub(crate) release: Script,
    pub(crate) cooldown: Script,
    pub(crate) renew: Script,
    pub(crate) release_by_id: Script,
    pub(crate) list_index: Script,
}

/// The scripts, shared by every store of the process.
pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    reserve: Script::new(RESERVE),
    release: Script::new(RELEASE),
    cooldown: Script::new(COOLDOWN),
    renew: Script::new(RENEW),
    release_by_id: Script::new(RELEASE_BY_ID),
    list_index: Script::new(LIST_INDEX),
});
