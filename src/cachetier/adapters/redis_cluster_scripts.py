"""Lua sources of `RedisClusterAdapter` (the protocol they implement is in `cachetier.adapters.redis_cluster`).

Every script touches one hash slot only: a key with its companions (value, tag
list, lease; ``KEYS`` in triples), or a tag's index and mark, or the lease clock.
A script is atomic on its node; ordering across slots is the adapter's.
"""

from __future__ import annotations

import hashlib
from typing import Final, NamedTuple


class Script(NamedTuple):
    source: str
    sha: str


def _script(source: str) -> Script:
    return Script(source, hashlib.sha1(source.encode()).hexdigest())


_NOW_MS: Final = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# KEYS: the clock. ARGV: how many tokens to take.
# The clock never runs behind the clock node's time in µs: should a failover lose
# the last increments, the promoted replica's clock has moved past them (a
# failover takes at least the node timeout). Returns the highest token taken.
CLOCK: Final = _script("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local top = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now) + tonumber(ARGV[1])
top = string.format('%.0f', top)
redis.call('SET', KEYS[1], top)
return top
""")

# KEYS: (value, tag list, lease) per entry. ARGV: (value, ttl ms) per entry.
# Untagged writes: store, drop the old tags, revoke the lease (or a writer's ticket).
SET_PLAIN: Final = _script("""
for i = 1, #KEYS, 3 do
  local j = (i - 1) / 3 * 2 + 1
  redis.call('SET', KEYS[i], ARGV[j], 'PX', ARGV[j + 1])
  redis.call('DEL', KEYS[i + 1], KEYS[i + 2])
end
return 0
""")

# KEYS: a tag's index and mark. ARGV: lease token (0: no check), slack ms, then (ttl ms, key) pairs.
# Refuses (0) when the tag was invalidated after the token was drawn. Otherwise adds
# the keys scored by their latest possible expiry on this node's clock: the value is
# written later, on another node, but no later than `slack` after now (its ticket or
# lease dies by then). GT: a score never drops below an earlier write's.
INDEX_ADD: Final = _script(
    _NOW_MS
    + """
local token = tonumber(ARGV[1])
if token > 0 then
  local mark = redis.call('GET', KEYS[2])
  if mark and tonumber(mark) > token then return 0 end
end
local index, now, slack, longest = KEYS[1], now_ms(), tonumber(ARGV[2]), 0
redis.call('ZREMRANGEBYSCORE', index, '-inf', '(' .. now)
for i = 3, #ARGV, 2 do
  local ttl = tonumber(ARGV[i]) + slack
  redis.call('ZADD', index, 'GT', now + ttl, ARGV[i + 1])
  if ttl > longest then longest = ttl end
end
if redis.call('PTTL', index) < longest then redis.call('PEXPIRE', index, longest) end
return 1
"""
)

# KEYS: (value, tag list, lease) per entry.
# ARGV per entry: ticket or lease token, value, ttl ms, '1' to delete the value on a
# lost ticket, tag count, tags. Stores while the lease slot still holds the ticket
# (nothing revoked it since the tags' indexes took the key); returns 1/0 per entry.
WRITE: Final = _script("""
local results, a = {}, 1
for i = 1, #KEYS, 3 do
  local n = tonumber(ARGV[a + 4])
  if redis.call('GET', KEYS[i + 2]) == ARGV[a] then
    redis.call('SET', KEYS[i], ARGV[a + 1], 'PX', ARGV[a + 2])
    redis.call('DEL', KEYS[i + 1], KEYS[i + 2])
    if n > 0 then
      redis.call('SADD', KEYS[i + 1], unpack(ARGV, a + 5, a + 4 + n))
      redis.call('PEXPIRE', KEYS[i + 1], ARGV[a + 2])
    end
    results[#results + 1] = 1
  else
    -- A plain write whose ticket was revoked (a delete, an invalidation, a newer
    -- write) returns all the same, so the value it replaced must not outlive it.
    if ARGV[a + 3] == '1' then redis.call('DEL', KEYS[i], KEYS[i + 1]) end
    results[#results + 1] = 0
  end
  a = a + 5 + n
end
return results
""")

# KEYS: values to read. Returns them in order (nil where absent): MGET, for the per-node variant.
GET_MANY: Final = _script("""
local values = {}
for i = 1, #KEYS do values[i] = redis.call('GET', KEYS[i]) end
return values
""")

# KEYS: value, lease. ARGV: token, lease ttl ms.
# The value; or 0 when another lease or ticket is held; or 1 when the lease is now ours
# (also when a retried call finds its own token).
GRANT: Final = _script("""
local value = redis.call('GET', KEYS[1])
if value then return value end
local held = redis.call('GET', KEYS[2])
if held == ARGV[1] then return 1 end
if held then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return 1
""")

# KEYS: leases of the keys being written. ARGV: ticket ttl ms, then one ticket per key.
# (Revokes whatever lease or ticket was held.)
GRANT_TICKETS: Final = _script("""
for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ARGV[1]) end
return 0
""")

# KEYS: a key's lease. ARGV: token. Gives the lease up if it is still this token's.
RELEASE: Final = _script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
""")

# KEYS: (value, tag list, lease) per entry, then ARGV[1] change-feed fence keys.
# ARGV: fence count, fence ttl ms. Removes the entries, then writes the fences (whose
# notifications follow the removals'); returns how many values were live.
UNLINK_ENTRIES: Final = _script("""
local fences = tonumber(ARGV[1])
local removed = 0
for i = 1, #KEYS - fences, 3 do
  removed = removed + redis.call('UNLINK', KEYS[i])
  redis.call('DEL', KEYS[i + 1], KEYS[i + 2])
end
for i = #KEYS - fences + 1, #KEYS do redis.call('SET', KEYS[i], '', 'PX', ARGV[2]) end
return removed
""")

# KEYS: value, tag list, lease. ARGV: ticket, ticket ttl ms, ttl ms.
# 0: no such key (its lease revoked). 1: done (no tags). Else the tags, with the
# ticket set: the caller raises the tags' index scores, then calls EXPIRE_END.
EXPIRE_BEGIN: Final = _script("""
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[3])
  return 0
end
local tags = redis.call('SMEMBERS', KEYS[2])
if #tags == 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  redis.call('DEL', KEYS[3])
  return 1
end
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
return tags
""")

# KEYS: value, tag list, lease. ARGV: ticket, ttl ms.
# A lost ticket means a write, delete or invalidation came after EXPIRE_BEGIN: this
# expire is ordered before it, and has nothing left to do.
EXPIRE_END: Final = _script("""
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 1 end
redis.call('DEL', KEYS[3])
if redis.call('PEXPIRE', KEYS[1], ARGV[2]) == 0 then return 0 end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
""")

# KEYS: value, lease. ARGV: step, ttl ms for a new counter.
INCR: Final = _script("""
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[1], '0', 'NX', 'PX', ARGV[2])
return redis.call('INCRBY', KEYS[1], ARGV[1])
""")

# KEYS: a tag's index and mark. ARGV: mark (a fresh clock value), mark ttl ms.
# Takes the index's live members and the index itself in one step, and marks the
# tag so that leases drawn before now can no longer store a value carrying it.
INVALIDATE_TAG: Final = _script(
    _NOW_MS
    + """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], now_ms(), '+inf')
redis.call('UNLINK', KEYS[1])
local mark = redis.call('GET', KEYS[2])
if not mark or tonumber(mark) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
end
return members
"""
)

# KEYS: (value, tag list, lease) per key taken from the indexes, then ARGV[1] fence keys.
# ARGV: fence count, fence ttl ms, the invalidated tags.
# Revokes every lease and ticket (a write in flight added the key to an index before
# the pop, and must not store now); removes values whose tag list names an
# invalidated tag (an index may still list a key re-written without that tag).
# Returns how many values were removed.
PURGE: Final = _script("""
local fences = tonumber(ARGV[1])
local removed = 0
for i = 1, #KEYS - fences, 3 do
  redis.call('DEL', KEYS[i + 2])
  for t = 3, #ARGV do
    if redis.call('SISMEMBER', KEYS[i + 1], ARGV[t]) == 1 then
      removed = removed + redis.call('UNLINK', KEYS[i])
      redis.call('DEL', KEYS[i + 1])
      break
    end
  end
end
for i = #KEYS - fences + 1, #KEYS do redis.call('SET', KEYS[i], '', 'PX', ARGV[2]) end
return removed
""")

ALL: Final = (
    CLOCK, SET_PLAIN, INDEX_ADD, WRITE, GRANT, GRANT_TICKETS, RELEASE, UNLINK_ENTRIES,
    EXPIRE_BEGIN, EXPIRE_END, INCR, INVALIDATE_TAG, PURGE,
)  # fmt: skip


def _cross_slot(script: Script) -> Script:
    # Redis 7 lets a script flagged so touch keys of several slots, all on its node, so a
    # batch costs one command per node instead of one per slot. Keys declared in KEYS must
    # still share a slot, so the names come in ARGV ([name count, names..., arguments...])
    # and the body sees them as KEYS and ARGV again. A name whose slot this node does not
    # serve (a slot being moved) fails the script before it writes anything.
    prologue = """#!lua flags=allow-cross-slot-keys
local count, names, rest = tonumber(ARGV[1]), {}, {}
for i = 2, count + 1 do names[#names + 1] = ARGV[i] end
for i = count + 2, #ARGV do rest[#rest + 1] = ARGV[i] end
local KEYS, ARGV = names, rest
"""
    return _script(prologue + script.source)


CROSS_SLOT: Final = {
    script: _cross_slot(script) for script in (GET_MANY, SET_PLAIN, GRANT_TICKETS, WRITE, UNLINK_ENTRIES, PURGE)
}
"""Per-node variants of the scripts whose entries are independent of each other."""
