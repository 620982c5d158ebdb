"""Lua sources of `RedisAdapter`'s atomic operations (the design is in `cachetier.adapters.redis`).

Each script runs atomically on the server. `WRITE` and `EXPIRE` touch only the
keys passed in KEYS; `INVALIDATE` also deletes the members it reads from the
tag indexes, which a standalone or Sentinel-managed server allows but a cluster
does not (see the module docstring of `cachetier.adapters.redis`).
"""

from __future__ import annotations

from typing import Final

# Server time in ms: every score and expiry comes from one clock (the server's),
# never from client clocks that may disagree.
_NOW: Final = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# KEYS: value key, its tag-list key, then the index keys of the tags in ARGV[4..]
#       (the first ARGV[3] of them are the new tags; the rest are tags the key may carry now).
# ARGV: value, ttl ms, number of new tags, tags...
# Returns 0, or the key's current tag list when it names a tag whose index key is
# not in KEYS (the caller retries with those index keys: a script may only touch KEYS).
WRITE: Final = (
    _NOW
    + """
local key, tag_list = KEYS[1], KEYS[2]
local ttl, new_count = tonumber(ARGV[2]), tonumber(ARGV[3])
local index_of, is_new = {}, {}
for i = 3, #KEYS do index_of[ARGV[i + 1]] = KEYS[i] end
for i = 1, new_count do is_new[ARGV[i + 3]] = true end
local old = redis.call('SMEMBERS', tag_list)
for _, tag in ipairs(old) do
  if not index_of[tag] then return old end
end
redis.call('SET', key, ARGV[1], 'PX', ttl)
for _, tag in ipairs(old) do
  if not is_new[tag] then redis.call('ZREM', index_of[tag], key) end
end
if #old > 0 then redis.call('DEL', tag_list) end
if new_count == 0 then return 0 end
local now = now_ms()
for i = 1, new_count do
  local index = KEYS[i + 2]
  -- Members are scored by expiry, so pruning the dead ones keeps the index bounded.
  redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. now)
  redis.call('ZADD', index, now + ttl, key)
  if redis.call('PTTL', index) < ttl then redis.call('PEXPIRE', index, ttl) end
end
redis.call('SADD', tag_list, unpack(ARGV, 4, 3 + new_count))
redis.call('PEXPIRE', tag_list, ttl)
return 0
"""
)

# KEYS: each entry's value key and its tag-list key. ARGV: each entry's value and ttl ms.
# The common untagged writes, one or many, without WRITE's tag bookkeeping. Writes
# every entry whose key carries no tags now and returns the (1-based) positions of
# the others, unwritten: the caller writes those with WRITE, which also takes the
# key out of its old tags' indexes.
SET_UNTAGGED: Final = """
local skipped = {}
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i + 1]) == 1 then
    skipped[#skipped + 1] = (i + 1) / 2
  else
    redis.call('SET', KEYS[i], ARGV[i], 'PX', ARGV[i + 1])
  end
end
return skipped
"""

# KEYS: value key, its tag-list key, then the index keys of the tags in ARGV[2..].
# ARGV: ttl ms, tags...
# Returns 1 (TTL reset), 0 (no such key), or the key's tag list to retry with, as in WRITE.
EXPIRE: Final = (
    _NOW
    + """
local key, tag_list = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[1])
if redis.call('EXISTS', key) == 0 then return 0 end
local index_of = {}
for i = 3, #KEYS do index_of[ARGV[i - 1]] = KEYS[i] end
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

# KEYS: tag index keys, then ARGV[3] change-feed fence keys.
# ARGV: the text before and after a key in its tag-list key's name, the number of fence keys.
# Deletes every member (each once), its tag list and the indexes; then writes each
# fence key (for ARGV[4] ms), whose notification follows those of the deletions;
# returns how many members were live.
INVALIDATE: Final = """
local seen, batch, removed = {}, {}, 0
local fences = tonumber(ARGV[3])
local function flush()
  if #batch == 0 then return end
  removed = removed + redis.call('UNLINK', unpack(batch))
  for i, key in ipairs(batch) do batch[i] = ARGV[1] .. key .. ARGV[2] end
  redis.call('UNLINK', unpack(batch))
  batch = {}
end
for i = 1, #KEYS - fences do
  local index = KEYS[i]
  for _, key in ipairs(redis.call('ZRANGE', index, 0, -1)) do
    if not seen[key] then
      seen[key] = true
      batch[#batch + 1] = key
      if #batch == 500 then flush() end
    end
  end
  redis.call('UNLINK', index)
end
flush()
for i = #KEYS - fences + 1, #KEYS do redis.call('SET', KEYS[i], '', 'PX', ARGV[4]) end
return removed
"""
