"""Removing many keys from a cluster: tag invalidation's pop-and-purge, and `clear` (the order is argued in
`cachetier.adapters.redis_cluster`).

Both end with scripts per slot (at most `PURGE_CHUNK` keys each), pipelined: one
round trip per node. With change feeds, the last script sent to each node also
writes a fence key in its slot, and the call returns once every feed has seen
its fence (or `redis_tracking`'s fence wait ran out).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterError, RedisClusterException, ResponseError

from cachetier.adapters import redis_cluster_scripts as scripts
from cachetier.adapters.redis_cluster_batch import Call, run_scripts
from cachetier.adapters.redis_cluster_calls import PER_SLOT, Layout, glob_escape, triples
from cachetier.adapters.redis_cluster_feed import ClusterFeed, NodeFeed
from cachetier.adapters.redis_cluster_names import TAG_INDEX, TAG_MARK, internal, parse_internal, slot_of
from cachetier.adapters.redis_tracking import FENCE_MARK, FENCE_TTL_MS

PURGE_CHUNK: Final = 300  # keys per script: a longer script holds its node up longer
_SCAN_COUNT: Final = 1000


def _identity(key: str) -> str:
    return key


def _fences(
    feeds: Sequence[ClusterFeed], chunks: Sequence[tuple[ClusterNode | None, list[str]]]
) -> dict[int, list[tuple[NodeFeed, str]]]:
    """Position of each node's last chunk -> the fences (feed, key) its script writes, in its first key's slot."""
    last: dict[NodeFeed, int] = {}
    for feed in feeds:
        for position, (_, chunk) in enumerate(chunks):
            node_feed = feed.feed_for_slot(slot_of(chunk[0]))
            if node_feed is not None:
                last[node_feed] = position
    fences: dict[int, list[tuple[NodeFeed, str]]] = {}
    for node_feed, position in last.items():
        key = node_feed.open_fence(slot_of(chunks[position][1][0]))
        if key is not None:
            fences.setdefault(position, []).append((node_feed, key))
    return fences


async def _purge(
    client: RedisCluster,
    script: scripts.Script,
    keys: dict[str, None],
    tags: Sequence[str],
    feeds: Sequence[ClusterFeed],
    layout: Layout,
) -> int:
    chunks = layout.groups(keys, _identity, PURGE_CHUNK)
    fences = _fences(feeds, chunks)
    calls: list[Call] = []
    for position, (node, chunk) in enumerate(chunks):
        fence_keys = [key for _, key in fences.get(position, ())]
        args = [len(fence_keys), FENCE_TTL_MS, *tags]
        calls.append(layout.call(script, [*triples(chunk), *fence_keys], args, node))
    opened = [fence for chunk_fences in fences.values() for fence in chunk_fences]
    try:
        removed = sum(int(count) for count in await run_scripts(client, calls))
    except BaseException:
        for node_feed, key in opened:
            node_feed.abandon_fence(key)
        raise
    for node_feed, key in opened:
        await node_feed.pass_fence(key, written=True)
    return removed


async def invalidate(
    client: RedisCluster, tags: Sequence[str], mark: int, mark_ms: int, feeds: Sequence[ClusterFeed], layout: Layout
) -> int:
    """Pop every tag's index (marking the tag with `mark`), then purge the keys found; count values removed."""
    calls: list[Call] = [
        Call(scripts.INVALIDATE_TAG, [internal(TAG_INDEX, tag), internal(TAG_MARK, tag)], [mark, mark_ms])
        for tag in tags
    ]
    popped = await run_scripts(client, calls)
    keys = dict.fromkeys(member.decode() for members in popped for member in members)
    try:
        return await _purge(client, scripts.PURGE, keys, tags, feeds, layout)
    except (ResponseError, RedisClusterException, ClusterError):
        if layout is PER_SLOT:
            raise
        # A slot moving between nodes refuses cross-slot scripts: purge per slot (a purge may repeat).
        return await _purge(client, scripts.PURGE, keys, tags, feeds, PER_SLOT)


async def clear(client: RedisCluster, prefix: str, feeds: Sequence[ClusterFeed], layout: Layout) -> int:
    """Remove every entry under `prefix` with its tag list and lease (SCAN on every primary); count entries."""
    escaped = glob_escape(prefix)
    keys: dict[str, None] = {}
    async for name in client.scan_iter(match=escaped + "*", count=_SCAN_COUNT):
        text = name.decode()
        if parse_internal(text) is None and FENCE_MARK not in text:
            keys[text] = None
    async for name in client.scan_iter(match="{*}\x00[kl]" + escaped + "*", count=_SCAN_COUNT):
        parsed = parse_internal(name.decode())
        if parsed is not None and parsed[1].startswith(prefix):
            keys[parsed[1]] = None
    try:
        removed = await _purge(client, scripts.UNLINK_ENTRIES, keys, (), (), layout)
    except (ResponseError, RedisClusterException, ClusterError):
        if layout is PER_SLOT:
            raise
        removed = await _purge(client, scripts.UNLINK_ENTRIES, keys, (), (), PER_SLOT)
    for feed in feeds:
        await feed.pass_fences()
    return removed
