"""RedisAdapter's tag bookkeeping: deletes leave none behind, pruning and purging work in bounded steps.

Steady-state tests use the machine's Redis under their own prefix; those that
read server-wide command counts use a throwaway server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from redis.asyncio import Redis

from cachetier.adapters import redis_purge
from cachetier.adapters.redis import RedisAdapter
from cachetier.adapters.redis_keys import tag_index, tag_list
from cachetier.adapters.redis_scripts import PRUNE_MAX
from cachetier.protocols import L2Entry
from redis_fixtures import fixture_adapter, fixture_prefix, fixture_raw  # noqa: F401 (fixtures, requested by name)
from servers import RedisServer


async def test_delete_removes_the_tag_list_and_index_memberships(
    adapter: RedisAdapter, raw: Redis, prefix: str
) -> None:
    a, b = prefix + "a", prefix + "b"
    keys = [f"{prefix}{i}" for i in range(50)]
    await adapter.mset([L2Entry(key, b"v", 60, (a, b)) for key in keys])
    await adapter.set(prefix + "kept", b"v", 60, (a,))
    assert await asyncio.gather(*(adapter.delete(key) for key in keys)) == [True] * 50
    assert await raw.exists(*(tag_list(key) for key in keys)) == 0
    assert await raw.zrange(tag_index(a), 0, -1) == [(prefix + "kept").encode()]
    assert await raw.exists(tag_index(b)) == 0
    assert await adapter.delete(keys[0]) is False


async def test_a_key_written_untagged_after_a_delete_escapes_its_old_tag(adapter: RedisAdapter, prefix: str) -> None:
    await adapter.set(prefix + "k", b"tagged", 60, (prefix + "t",))
    await adapter.delete(prefix + "k")
    await adapter.set(prefix + "k", b"plain", 60)
    assert await adapter.invalidate_tags([prefix + "t"]) == 0
    assert await adapter.get(prefix + "k") == b"plain"


async def test_a_write_prunes_a_bounded_number_of_dead_index_members(
    adapter: RedisAdapter, raw: Redis, prefix: str
) -> None:
    tag = prefix + "t"
    await adapter.set(prefix + "long", b"v", 60, (tag,))  # keeps the index alive after the others die
    dead = 2 * PRUNE_MAX + 10
    # Members scored (by expiry) in the past, as keys that died leave them. Written directly: keys given
    # a short TTL through the adapter expired while a loaded machine was still writing the later ones,
    # whose writes then pruned them too, and the count below came out short.
    seconds, micros = await raw.time()
    expired_ms = seconds * 1000 + micros // 1000 - 1000
    await raw.zadd(tag_index(tag), {f"{prefix}{i}": expired_ms for i in range(dead)})
    await adapter.set(prefix + "new1", b"v", 60, (tag,))
    assert await raw.zcard(tag_index(tag)) == 2 + dead - PRUNE_MAX
    await adapter.set(prefix + "new2", b"v", 60, (tag,))
    await adapter.set(prefix + "new3", b"v", 60, (tag,))
    assert await raw.zcard(tag_index(tag)) == 4
    assert await adapter.invalidate_tags([tag]) == 4


async def _evalsha_calls(client: Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_invalidating_a_large_tag_runs_chunks_of_bounded_size() -> None:
    with RedisServer() as server:
        adapter, raw = RedisAdapter.from_url(server.url), Redis.from_url(server.url)
        try:
            keys = [f"big:{i}" for i in range(5 * redis_purge.CHUNK + 1)]
            for start in range(0, len(keys), 1000):
                await adapter.mset([L2Entry(key, b"v", 60, ("big:t",)) for key in keys[start : start + 1000]])
            await adapter.invalidate_tags(["big:warm-up"])  # loads the script
            before = await _evalsha_calls(raw)
            assert await adapter.invalidate_tags(["big:t"]) == len(keys)
            assert await _evalsha_calls(raw) - before == 6  # each script pops at most CHUNK members
            assert sorted(await raw.keys("*")) == [b"{c:leases}", b"{m:t:big:t}", b"{m:t:big:warm-up}"]
        finally:
            await adapter.close()
            await raw.aclose()


class PausedPurge:
    """Holds `adapter`'s invalidations after their first script, until `resume`."""

    def __init__(self, adapter: RedisAdapter, monkeypatch: pytest.MonkeyPatch) -> None:
        self.first_done = asyncio.Event()
        self._gate = asyncio.Event()
        real = redis_purge.run_script

        async def run_script(client: Redis, script: Any, keys: Sequence[str], args: Sequence[Any]) -> Any:
            result = await real(client, script, keys, args)
            if client is adapter.client:
                self.first_done.set()
                await self._gate.wait()
            return result

        monkeypatch.setattr(redis_purge, "run_script", run_script)

    def resume(self) -> None:
        self._gate.set()


async def test_an_invalidation_finishes_the_purges_of_its_tags_still_in_progress(
    adapter: RedisAdapter, redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = prefix + "t"
    keys = [f"{prefix}{i}" for i in range(100)]
    await adapter.mset([L2Entry(key, b"v", 60, (tag,)) for key in keys])
    slow = RedisAdapter.from_url(redis_url)
    slow.purge_chunk = 10
    paused = PausedPurge(slow, monkeypatch)
    try:
        first = asyncio.create_task(slow.invalidate_tags([tag]))
        await paused.first_done.wait()
        assert sum(value is not None for value in await adapter.mget(keys)) == 90
        await adapter.set(prefix + "later", b"v", 60, (tag,))  # written after the first call began
        # This call began after every key was written: it must not return before the other call's keys are gone.
        assert await adapter.invalidate_tags([tag]) == 91
        assert await adapter.mget([*keys, prefix + "later"]) == [None] * 101
        paused.resume()
        assert await first == 10
    finally:
        paused.resume()
        await slow.close()


async def test_a_purge_cut_short_is_finished_by_the_next_invalidation_of_its_tag(
    adapter: RedisAdapter, redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = prefix + "t"
    keys = [f"{prefix}{i}" for i in range(30)]
    await adapter.mset([L2Entry(key, b"v", 60, (tag,)) for key in keys])
    killed = RedisAdapter.from_url(redis_url)
    killed.purge_chunk = 10
    paused = PausedPurge(killed, monkeypatch)
    try:
        first = asyncio.create_task(killed.invalidate_tags([tag]))
        await paused.first_done.wait()
        first.cancel()  # as if the process died between two chunks
        with pytest.raises(asyncio.CancelledError):
            await first
    finally:
        await killed.close()
    assert sum(value is not None for value in await adapter.mget(keys)) == 20
    assert await adapter.invalidate_tags([tag]) == 20
    assert await adapter.mget(keys) == [None] * 30


async def test_a_lease_is_revoked_by_the_first_step_of_a_chunked_invalidation(
    adapter: RedisAdapter, redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = prefix + "t"
    await adapter.mset([L2Entry(f"{prefix}{i}", b"v", 60, (tag,)) for i in range(30)])
    token = (await adapter.get_or_lease(prefix + "loading", 30)).token
    assert token is not None
    slow = RedisAdapter.from_url(redis_url)
    slow.purge_chunk = 10
    paused = PausedPurge(slow, monkeypatch)
    try:
        invalidation = asyncio.create_task(slow.invalidate_tags([tag]))
        await paused.first_done.wait()
        assert await adapter.set_leased(prefix + "loading", b"old", 60, (tag,), token) is False
        paused.resume()
        assert await invalidation == 30
    finally:
        paused.resume()
        await slow.close()
    assert await adapter.get(prefix + "loading") is None


async def test_invalidating_several_tags_counts_a_key_carrying_both_once(adapter: RedisAdapter, prefix: str) -> None:
    a, b = prefix + "a", prefix + "b"
    adapter.purge_chunk = 3
    await adapter.mset([L2Entry(f"{prefix}{i}", b"v", 60, (a, b) if i % 2 else (a,)) for i in range(10)])
    await adapter.mset([L2Entry(f"{prefix}b{i}", b"v", 60, (b,)) for i in range(4)])
    assert await adapter.invalidate_tags([a, b, a]) == 14
    assert await adapter.invalidate_tags([a, b]) == 0
