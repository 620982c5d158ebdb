"""Tag invalidation on Redis in bounded chunks, so a tag of 100k keys never holds the server up.

One script would be atomic, but it blocks every other client for as long as it
runs (287 ms for 100k keys on an idle machine). Instead, the first script of an
`invalidate_tags` call:

1. writes each tag's revocation mark (`redis_lease_scripts`), so no load that
   began before the call can store under the tag afterwards;
2. RENAMEs each tag's index ``{t:<tag>}`` to a doomed index of this call
   (O(1)) and lists it in the tag's purge set ``{d:<tag>}``; writes that come
   later go to a fresh index and are not this call's business;

then it and every following script take at most `CHUNK` members of the doomed
indexes listed in the tags' purge sets, UNLINK them and their tag lists, and
say whether any are left. The call returns when none are: every key written
with one of the tags before the call began was in the index it renamed, or in
the doomed index of an earlier call still purging (listed in the same purge set,
so this call finishes that one's work too). A key rewritten while it waits in a
doomed index is removed as well (over-invalidation: a spurious miss). The script
that finds nothing left writes the change feed's fence keys, after every deletion.

A process killed mid-purge leaves its doomed index listed: the tag's next
invalidation removes its members. Scripts here touch keys they read from the
purge sets, which a standalone or Sentinel-managed server allows but a cluster does not.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Final

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from cachetier.adapters import redis_keys
from cachetier.adapters.redis_lease_scripts import TOKENS
from cachetier.adapters.redis_scripts import run_script

CHUNK: Final = 250  # members per script: about 1 ms of server time on a busy 2-core machine (3-5 µs per key)

# KEYS: the token counter; for each of ARGV[1] tags its index, purge set, mark and this
# call's doomed index; then change-feed fence keys.
# ARGV: number of tags, 1 on the call's first script (else 0), members per script,
# fallback mark ttl ms, fence ttl ms, the text before and after a key in its tag list's name.
# Returns {members removed that were live, 1 when nothing is left to purge (else 0)}.
INVALIDATE: Final = (
    TOKENS
    + """
local tags, first = tonumber(ARGV[1]), ARGV[2] == '1'
local budget, open, close = tonumber(ARGV[3]), ARGV[6], ARGV[7]
local purge_sets = {}
for i = 0, tags - 1 do
  local index, purge_set, mark_key, doomed = KEYS[2 + 4 * i], KEYS[3 + 4 * i], KEYS[4 + 4 * i], KEYS[5 + 4 * i]
  purge_sets[#purge_sets + 1] = purge_set
  if first then
    mark(KEYS[1], mark_key, ARGV[4])
    -- A doomed index that exists already means this script ran before (a retried reply):
    -- the index holds only writes made since, which this call need not remove.
    if redis.call('EXISTS', index) == 1 and redis.call('EXISTS', doomed) == 0 then
      redis.call('RENAME', index, doomed)
      redis.call('SADD', purge_set, doomed)
      local left = redis.call('PTTL', doomed)
      if redis.call('PTTL', purge_set) < left then redis.call('PEXPIRE', purge_set, left) end
    end
  end
end
local removed = 0
for _, purge_set in ipairs(purge_sets) do
  for _, doomed in ipairs(redis.call('SMEMBERS', purge_set)) do
    while true do
      if budget == 0 then return {removed, 0} end
      -- ZRANGE + ZREMRANGEBYRANK: half the server time of ZPOPMIN, which returns scores too.
      local keys = redis.call('ZRANGE', doomed, 0, budget - 1)
      if #keys == 0 then
        redis.call('SREM', purge_set, doomed)
        break
      end
      redis.call('ZREMRANGEBYRANK', doomed, 0, #keys - 1)
      local lists = {}
      for i, key in ipairs(keys) do lists[i] = open .. key .. close end
      budget = budget - #keys
      removed = removed + redis.call('UNLINK', unpack(keys))
      redis.call('UNLINK', unpack(lists))
    end
  end
end
for i = 2 + 4 * tags, #KEYS do redis.call('SET', KEYS[i], '', 'PX', ARGV[5]) end
return {removed, 1}
"""
)


async def invalidate(
    client: Redis,
    script: AsyncScript,
    tags: Sequence[str],
    fence_keys: Sequence[str],
    *,
    fence_ttl_ms: int,
    mark_ttl_ms: int,
    chunk: int = CHUNK,
) -> int:
    """Remove every key written with one of `tags` before the call; return how many were live.

    Raises what the client raises; a call cut short leaves the rest to the
    tags' next invalidation (see the module docstring).
    """
    purge_id = uuid.uuid4().hex
    keys = [redis_keys.LEASE_COUNTER]
    for tag in dict.fromkeys(tags):
        keys += [
            redis_keys.tag_index(tag),
            redis_keys.purges(tag),
            redis_keys.tag_mark(tag),
            redis_keys.doomed_index(tag, purge_id),
        ]
    keys += fence_keys
    count = (len(keys) - 1 - len(fence_keys)) // 4
    removed, first = 0, "1"
    affixes = (redis_keys.TAG_LIST_OPEN, redis_keys.TAG_LIST_CLOSE)
    while True:
        arguments = [count, first, chunk, mark_ttl_ms, fence_ttl_ms, *affixes]
        live, done = await run_script(client, script, keys, arguments)
        removed += int(live)
        if done:
            return removed
        first = "0"
