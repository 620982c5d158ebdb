"""Lua sources of `RedisAdapter`'s leases (`cachetier.protocols.LeasingAdapter`, names in `redis_keys`).

A miss takes a token from the counter and holds ``{l:<key>}`` for the lease's TTL,
in the same script as the read. Writes, deletes and expiries delete the lease
(`redis_scripts`). Tag invalidations and clears cannot know which keys a load in
flight will store, so they leave marks holding the counter at that time; a
leased store is refused when a mark on one of its tags, on its key's namespace,
or the global mark, is not older than its token. A mark lives as long as the
longest lease ever granted (recorded in the counter), so it outlives every lease
that was granted before it.

Tokens are kept as decimal text and formatted with ``%d``: a Lua number passed
to `redis.call` is formatted with 14 significant digits, too few for a token.
"""

from __future__ import annotations

from typing import Final

from cachetier.adapters.redis_scripts import WRITE_FUNCTIONS

# last_token(counter, bump): the counter after adding `bump` (0: read it). A counter
# that went missing (a new server, FLUSHDB, eviction) restarts at the server's time in
# µs, above every token it gave before (unless it gave more than one per µs), so an old
# lease can never pass for a new one. 1.8e15 is far below 2^53, where Lua numbers stop being exact.
# mark(counter, name, fallback ms): writes the mark `name`, living as long as the longest
# lease (`fallback` when the counter has lost that figure).
TOKENS: Final = """
local function last_token(counter, bump)
  local token = redis.call('HINCRBY', counter, 'token', bump)
  if token == bump then
    local t = redis.call('TIME')
    token = tonumber(t[1]) * 1000000 + tonumber(t[2]) + bump
    redis.call('HSET', counter, 'token', string.format('%d', token))
  end
  return token
end

local function mark(counter, name, fallback)
  local token = last_token(counter, 0)
  local ttl = tonumber(redis.call('HGET', counter, 'longest') or fallback)
  redis.call('SET', name, string.format('%d', token), 'PX', ttl)
end
"""

# KEYS: value key, its lease key, the token counter. ARGV: lease ttl ms.
# Returns the value (bulk), a new token (integer > 0), or 0 when another client holds the lease.
GET_OR_LEASE: Final = (
    TOKENS
    + """
local value = redis.call('GET', KEYS[1])
if value then return value end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local ttl = tonumber(ARGV[1])
local token = last_token(KEYS[3], 1)
redis.call('SET', KEYS[2], string.format('%d', token), 'PX', ttl)
local longest = redis.call('HGET', KEYS[3], 'longest')
if not longest or tonumber(longest) < ttl then redis.call('HSET', KEYS[3], 'longest', ttl) end
return token
"""
)

# KEYS: as WRITE's (value key, tag-list key, lease key, n index keys), then the marks to
# check: the key's namespace mark, the global mark, and the new tags' marks.
# ARGV: as WRITE's (value, ttl ms, number of new tags, n tags), then the token.
# Returns 0 (stored, lease released), -1 (refused: the lease is not this token's, or a
# mark revoked it, then released), or the stored tag list to retry with, as WRITE.
SET_LEASED: Final = (
    WRITE_FUNCTIONS
    + """
local n = #ARGV - 4
local token = ARGV[#ARGV]
if redis.call('GET', KEYS[3]) ~= token then return -1 end
local number = tonumber(token)
for i = n + 4, #KEYS do
  local revoked = redis.call('GET', KEYS[i])
  if revoked and tonumber(revoked) >= number then
    redis.call('DEL', KEYS[3])
    return -1
  end
end
return write_from_keys(n)
"""
)

# KEYS: the token counter, the mark to write. ARGV: fallback mark ttl ms.
MARK: Final = TOKENS + "mark(KEYS[1], KEYS[2], ARGV[1])\nreturn 0\n"
