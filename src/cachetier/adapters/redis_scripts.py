"""Lua sources of `RedisAdapter`'s writes, and how they are run (the design is in `cachetier.adapters.redis`).

Each script runs atomically on the server and touches only the keys passed in
KEYS. Every one that changes a key also deletes the key's lease (``{l:<key>}``):
a loader that read its data before the change returned must not store it after
(`cachetier.protocols.LeasingAdapter`). Lease grants and the chunked tag purge
are in `redis_lease_scripts` and `redis_purge`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

PRUNE_MAX: Final = 1_000  # dead index members one write removes: one write must not hold the server up

# Server time in ms: every score and expiry comes from one clock (the server's),
# never from client clocks that may disagree.
NOW: Final = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# write_entry: stores `value` at `key` for `ttl` ms with exactly `new_tags` (index keys
# `new_indexes`); `index_of` maps every tag the caller passed (new, or possibly stored
# now) to its index key. Returns 0, or the key's stored tag list when it names a tag
# missing from `index_of`, having changed nothing: a script may touch only KEYS, so the
# caller retries with those indexes.
# write_from_keys: the same, with KEYS = value key, tag-list key, lease key, then the index
# keys of the tags ARGV[4..3 + n] (the first ARGV[3] of them new), ARGV = value, ttl ms,
# number of new tags, tags...
WRITE_FUNCTIONS: Final = (
    NOW
    + f"""
local function prune(index, now)
  -- Members are scored by expiry, so the dead ones are the lowest ranks; a bounded number
  -- go per write (ZCOUNT is O(log n)), and the index's own TTL bounds what stays.
  local dead = redis.call('ZCOUNT', index, '-inf', '(' .. now)
  if dead > 0 then redis.call('ZREMRANGEBYRANK', index, 0, math.min(dead, {PRUNE_MAX}) - 1) end
end

local function write_entry(key, tag_list, lease, value, ttl, new_tags, new_indexes, index_of)
  local old = redis.call('SMEMBERS', tag_list)
  for _, tag in ipairs(old) do
    if not index_of[tag] then return old end
  end
  redis.call('SET', key, value, 'PX', ttl)
  redis.call('DEL', lease)
  local is_new = {{}}
  for _, tag in ipairs(new_tags) do is_new[tag] = true end
  for _, tag in ipairs(old) do
    if not is_new[tag] then redis.call('ZREM', index_of[tag], key) end
  end
  if #old > 0 then redis.call('DEL', tag_list) end
  if #new_tags == 0 then return 0 end
  local now = now_ms()
  for _, index in ipairs(new_indexes) do
    prune(index, now)
    redis.call('ZADD', index, now + ttl, key)
    if redis.call('PTTL', index) < ttl then redis.call('PEXPIRE', index, ttl) end
  end
  redis.call('SADD', tag_list, unpack(new_tags))
  redis.call('PEXPIRE', tag_list, ttl)
  return 0
end

local function write_from_keys(n)
  local new_count = tonumber(ARGV[3])
  local index_of, new_tags, new_indexes = {{}}, {{}}, {{}}
  for i = 1, n do
    index_of[ARGV[i + 3]] = KEYS[i + 3]
    if i <= new_count then
      new_tags[i] = ARGV[i + 3]
      new_indexes[i] = KEYS[i + 3]
    end
  end
  return write_entry(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]), new_tags, new_indexes, index_of)
end
"""
)

# KEYS and ARGV as for write_from_keys. Returns 0, or the stored tag list to retry with.
WRITE: Final = WRITE_FUNCTIONS + "return write_from_keys(#ARGV - 3)\n"

# KEYS: each entry's value key, tag-list key and lease key. ARGV: each entry's value and ttl ms.
# The common untagged writes, one or many, without WRITE's tag bookkeeping. Writes
# every entry whose key carries no tags now and returns the (1-based) positions of
# the others, unwritten: the caller writes those with WRITE, which also takes the
# key out of its old tags' indexes.
SET_UNTAGGED: Final = """
local skipped = {}
for i = 1, #KEYS, 3 do
  local entry = (i + 2) / 3
  if redis.call('EXISTS', KEYS[i + 1]) == 1 then
    skipped[#skipped + 1] = entry
  else
    redis.call('SET', KEYS[i], ARGV[2 * entry - 1], 'PX', ARGV[2 * entry])
    redis.call('DEL', KEYS[i + 2])
  end
end
return skipped
"""

# KEYS: value key, its tag-list key, its lease key, then the index keys of the tags in ARGV[2..].
# ARGV: ttl ms, tags...
# Returns 1 (TTL reset), 0 (no such key), or the key's tag list to retry with, as in WRITE.
EXPIRE: Final = (
    NOW
    + """
local key, tag_list = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[1])
redis.call('DEL', KEYS[3])
if redis.call('EXISTS', key) == 0 then return 0 end
local index_of = {}
for i = 4, #KEYS do index_of[ARGV[i - 2]] = KEYS[i] end
local tags = redis.call('SMEMBERS', tag_list)
for _, tag in ipairs(tags) do
  if not index_of[tag] then return tags end
end
redis.call('PEXPIRE', key, ttl)
if #tags == 0 then return 1 end
local expires = now_ms() + ttl
for _, tag in ipairs(tags) do
  local index = index_of[tag]
  -- XX: a live key is always in its tags' indexes; never resurrect a pruned member.
  redis.call('ZADD', index, 'XX', expires, key)
  if redis.call('PTTL', index) < ttl then redis.call('PEXPIRE', index, ttl) end
end
redis.call('PEXPIRE', tag_list, ttl)
return 1
"""
)

# KEYS: value key, its tag-list key, its lease key, then the index keys of the tags in ARGV.
# Removes the key, its lease, its tag list and its memberships in its tags' indexes.
# Returns 1 (a key was removed), 0 (none), or the key's tag list to retry with, as in WRITE.
DELETE: Final = """
local key, tag_list = KEYS[1], KEYS[2]
local index_of = {}
for i = 4, #KEYS do index_of[ARGV[i - 3]] = KEYS[i] end
local tags = redis.call('SMEMBERS', tag_list)
for _, tag in ipairs(tags) do
  if not index_of[tag] then return tags end
end
redis.call('DEL', KEYS[3])
for _, tag in ipairs(tags) do redis.call('ZREM', index_of[tag], key) end
if #tags > 0 then redis.call('DEL', tag_list) end
return redis.call('UNLINK', key)
"""


# KEYS: the counter's key, its lease key. ARGV: step, ttl ms for a new counter.
# Returns the new value as text: a Lua number is exact only up to 2^53, a counter to 2^63.
# An error (not an integer, overflow) aborts before anything is written.
INCR: Final = """
redis.call('SET', KEYS[1], 0, 'PX', ARGV[2], 'NX')
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return redis.call('GET', KEYS[1])
"""


async def run_script(client: Redis, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """EVALSHA `script`, loading it first when the server lost it (restart, SCRIPT FLUSH).

    Not `script(keys, args)`: redis-py's `AsyncScript.__call__` runs an import
    statement on every call, measured at about 15 µs of a 125 µs round trip here.
    """
    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        await client.script_load(script.script)
        return await client.evalsha(script.sha, len(keys), *keys, *args)
