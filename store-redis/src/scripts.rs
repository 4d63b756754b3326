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

/// Helpers shared by the scripts; a macro so it can be `concat!`ed.
macro_rules! prelude {
    () => {
        r#"
local function now()
  local t = redis.call('TIME')
  local s, us = tonumber(t[1]), tonumber(t[2])
  return s * 1000 + math.floor(us / 1000), s * 1000000 + us
end
local function num(n)
  return string.format('%.0f', n)
end
local function parse(v)
  return string.match(v, '^v1|([hc])|(%d+)|(%d+)|(%d+)|(%d+)|(%x+)|(.+)$')
end
local function next_generation(gen_key, floor)
  local last = redis.call('GET', gen_key)
  if last then
    local l = tonumber(string.match(last, '^(%d+)'))
    if l and l >= floor then floor = l + 1 end
  end
  return floor
end
local function extend(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end
local function remember_generation(gen_key, g, ms)
  redis.call('SET', gen_key, g, 'KEEPTTL')
  extend(gen_key, ms)
end
local function index(idx, member, expires_ms, ttl_ms)
  redis.call('ZADD', idx, expires_ms, member)
  extend(idx, ttl_ms)
end
"#
    };
}

/// KEYS lease, gen, idx; ARGV ip, ttl ms, call token, app id, generation
/// memory ms. Returns the new value, or nil when the key is taken.
const RESERVE: &str = concat!(
    prelude!(),
    r#"
local current = redis.call('GET', KEYS[1])
if current then
  local _, _, _, _, _, token = parse(current)
  if token == ARGV[3] then return current end
  return false
end
local now_ms, now_us = now()
local ttl = tonumber(ARGV[2])
local g = num(next_generation(KEYS[2], now_us))
local value = 'v1|h|' .. g .. '|' .. g .. '|' .. num(now_ms) .. '|' .. num(now_ms + ttl)
  .. '|' .. ARGV[3] .. '|' .. ARGV[4]
if not redis.call('SET', KEYS[1], value, 'NX', 'PX', ttl) then return false end
remember_generation(KEYS[2], g, ttl + tonumber(ARGV[5]))
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. num(now_ms))
index(KEYS[3], ARGV[1], now_ms + ttl, ttl)
return value
"#
);

/// KEYS lease, gen, idx; ARGV ip, grant generation, generation, call token.
/// Returns 1 when released (now or by an earlier attempt of this call).
const RELEASE: &str = concat!(
    prelude!(),
    r#"
local current = redis.call('GET', KEYS[1])
if current then
  local state, grant, g = parse(current)
  if state == 'h' and grant == ARGV[2] and g == ARGV[3] then
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[3], ARGV[1])
    redis.call('SET', KEYS[2], g .. '|' .. ARGV[4], 'XX', 'KEEPTTL')
    return 1
  end
  return 0
end
if redis.call('GET', KEYS[2]) == ARGV[3] .. '|' .. ARGV[4] then return 1 end
return 0
"#
);

/// KEYS lease, gen, idx; ARGV ip, grant generation, generation, call token,
/// cooldown ms, generation memory ms. Returns the cooldown value, or nil
/// when the lease is no longer held.
const COOLDOWN: &str = concat!(
    prelude!(),
    r#"
local current = redis.call('GET', KEYS[1])
if not current then return false end
local state, grant, g, _, _, token, app = parse(current)
if state == 'c' and grant == ARGV[2] and token == ARGV[4] then return current end
if state ~= 'h' or grant ~= ARGV[2] or g ~= ARGV[3] then return false end
local now_ms, now_us = now()
local cooldown = tonumber(ARGV[5])
local floor = tonumber(g) + 1
if now_us > floor then floor = now_us end
local ng = num(next_generation(KEYS[2], floor))
local value = 'v1|c|' .. grant .. '|' .. ng .. '|' .. num(now_ms) .. '|' .. num(now_ms + cooldown)
  .. '|' .. ARGV[4] .. '|' .. app
redis.call('SET', KEYS[1], value, 'PX', cooldown)
remember_generation(KEYS[2], ng, cooldown + tonumber(ARGV[6]))
index(KEYS[3], ARGV[1], now_ms + cooldown, cooldown)
return value
"#
);

/// KEYS lease, gen, idx; ARGV ip, grant generation, generation, ttl ms,
/// generation memory ms. Returns the renewed value, or nil when the lease is
/// no longer held.
const RENEW: &str = concat!(
    prelude!(),
    r#"
local current = redis.call('GET', KEYS[1])
if not current then return false end
local state, grant, g, reserved, _, token, app = parse(current)
if state ~= 'h' or grant ~= ARGV[2] or g ~= ARGV[3] then return false end
local now_ms = now()
local ttl = tonumber(ARGV[4])
local value = 'v1|h|' .. grant .. '|' .. g .. '|' .. reserved .. '|' .. num(now_ms + ttl)
  .. '|' .. token .. '|' .. app
redis.call('SET', KEYS[1], value, 'PX', ttl)
extend(KEYS[2], ttl + tonumber(ARGV[5]))
index(KEYS[3], ARGV[1], now_ms + ttl, ttl)
return value
"#
);

/// KEYS lease, gen, idx; ARGV ip, grant generation, call token. Releases the
/// held or cooling grant with that grant generation. Returns 1 when released
/// (now or by an earlier attempt of this call).
const RELEASE_BY_ID: &str = concat!(
    prelude!(),
    r#"
local current = redis.call('GET', KEYS[1])
if current then
  local _, grant, g = parse(current)
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
"#
);

/// KEYS idx. Drops index entries whose lease has expired and returns the
/// remaining members (IPs).
const LIST_INDEX: &str = concat!(
    prelude!(),
    r#"
local now_ms = now()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. num(now_ms))
return redis.call('ZRANGE', KEYS[1], 0, -1)
"#
);

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
