"""RedisClusterAdapter on a real 6-node cluster (3 primaries, 3 replicas) started for the session."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

from cachetier.adapters import redis_cluster
from cachetier.adapters import redis_cluster_scripts as scripts
from cachetier.adapters.redis_cluster import RedisClusterAdapter
from cachetier.protocols import L2Adapter, L2Entry
from cachetier.testing import L2ContractSuite
from cluster_servers import RedisClusterServers


@pytest.fixture
def prefix() -> str:
    return f"cluster-test-{uuid.uuid4().hex[:12]}:"


class TestRedisClusterAdapterContract(L2ContractSuite):
    @pytest.fixture
    async def adapter(self, redis_cluster: RedisClusterServers, prefix: str) -> AsyncIterator[L2Adapter]:
        adapter = RedisClusterAdapter.from_url(redis_cluster.url)
        yield adapter
        await adapter.clear(prefix)
        await adapter.close()


@pytest.fixture
async def adapter(redis_cluster: RedisClusterServers, prefix: str) -> AsyncIterator[RedisClusterAdapter]:
    adapter = RedisClusterAdapter.from_url(redis_cluster.url)
    yield adapter
    await adapter.clear(prefix)
    await adapter.close()


async def test_mget_and_mset_cover_keys_on_every_primary(adapter: RedisClusterAdapter, prefix: str) -> None:
    keys = [f"{prefix}{i}" for i in range(300)]
    await adapter.ping()  # discovers the slot map
    assert len({adapter.client.get_node_from_key(key).name for key in keys}) == 3
    await adapter.mset(
        [L2Entry(key, key.encode(), 60, (prefix + "all",) if i % 2 else ()) for i, key in enumerate(keys)]
    )
    assert await adapter.mget([*keys, prefix + "absent"]) == [key.encode() for key in keys] + [None]
    assert await adapter.invalidate_tags([prefix + "all"]) == 150
    assert sum(value is not None for value in await adapter.mget(keys)) == 150
    assert await adapter.clear(prefix) == 150


async def test_keys_and_tags_holding_braces_keep_their_companions_in_their_slot(
    adapter: RedisClusterAdapter, prefix: str
) -> None:
    keys = [prefix + "{user:1}:a", prefix + "{user:1}:b", prefix + "a}b{", prefix + "{}x", prefix + "}"]
    tag = prefix + "{t}"
    for key in keys:
        await adapter.set(key, b"v", 60, (tag, prefix + "other}"))
    assert await adapter.expire(keys[2], 60) is True
    assert await adapter.invalidate_tags([tag]) == len(keys)
    assert await adapter.mget(keys) == [None] * len(keys)


async def _during_first_write_step(monkeypatch: pytest.MonkeyPatch, action: Callable[[], Awaitable[object]]) -> None:
    """Run `action` once, right before the adapter's next WRITE step (after the tag indexes took the key)."""
    original = redis_cluster.run_scripts
    done = False

    async def run_scripts(client: Any, calls: Sequence[Any]) -> list[Any]:
        nonlocal done
        if not done and any(call.script is scripts.WRITE for call in calls):
            done = True
            await action()
        return await original(client, calls)

    monkeypatch.setattr(redis_cluster, "run_scripts", run_scripts)


async def test_tagged_write_overtaken_by_an_invalidation_leaves_no_value_behind(
    adapter: RedisClusterAdapter, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race: the key joined the tag's index, the invalidation took the index and
    # purged, then the value arrives. Stored now, it would carry the tag but be in no
    # index, so no later invalidation could remove it; and the older untagged value
    # must not outlive a write that returned either.
    key, tag = prefix + "k", prefix + "t"
    await adapter.set(key, b"older, untagged", 60)
    await _during_first_write_step(monkeypatch, lambda: adapter.invalidate_tags([tag]))
    await adapter.set(key, b"newer", 60, (tag,))
    assert await adapter.get(key) is None
    await adapter.set(key, b"again", 60, (tag,))  # the next write is not held up by anything left over
    assert await adapter.invalidate_tags([tag]) == 1


async def test_leased_store_overtaken_by_an_invalidation_is_refused(
    adapter: RedisClusterAdapter, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, tag = prefix + "k", prefix + "t"
    token = (await adapter.get_or_lease(key, 30)).token
    assert token is not None
    await _during_first_write_step(monkeypatch, lambda: adapter.invalidate_tags([tag]))
    assert await adapter.set_leased(key, b"loaded before the invalidation", 60, (tag,), token) is False
    assert await adapter.get(key) is None


async def test_lease_from_another_process_is_refused_after_an_invalidation_it_did_not_see(
    redis_cluster: RedisClusterServers, adapter: RedisClusterAdapter, prefix: str
) -> None:
    key, tag = prefix + "k", prefix + "t"
    other = RedisClusterAdapter.from_url(redis_cluster.url)
    try:
        token = (await adapter.get_or_lease(key, 30)).token
        assert token is not None
        await other.invalidate_tags([tag])  # this adapter's token block predates it
        assert await adapter.set_leased(key, b"stale", 60, (tag,), token) is False
        fresh = (await adapter.get_or_lease(key, 30)).token  # the refusal dropped the old block
        assert fresh is not None
        assert await adapter.set_leased(key, b"fresh", 60, (tag,), fresh) is True
    finally:
        await other.close()


async def test_concurrent_tagged_writes_and_invalidations_leave_no_tagged_value_behind(
    adapter: RedisClusterAdapter, prefix: str
) -> None:
    keys, tag = [f"{prefix}{i}" for i in range(40)], prefix + "t"

    async def writer(key: str) -> None:
        for round_ in range(5):
            await adapter.set(key, str(round_).encode(), 60, (tag,))

    async def invalidator() -> None:
        for _ in range(10):
            await adapter.invalidate_tags([tag])
            await asyncio.sleep(0)

    await asyncio.gather(*(writer(key) for key in keys), invalidator())
    await adapter.invalidate_tags([tag])
    assert await adapter.mget(keys) == [None] * len(keys)


async def test_batches_fall_back_to_one_script_per_slot_when_a_node_refuses_a_cross_slot_script(
    adapter: RedisClusterAdapter, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a node does while one of the batch's slots is being moved to another node.
    source = "return redis.error_reply('TRYAGAIN slot moving')"
    refusing = scripts.Script(source, hashlib.sha1(source.encode()).hexdigest())
    await adapter.ping()
    for script in (scripts.WRITE, scripts.SET_PLAIN, scripts.GRANT_TICKETS, scripts.PURGE):
        monkeypatch.setitem(scripts.CROSS_SLOT, script, refusing)
    keys = [f"{prefix}{i}" for i in range(60)]
    await adapter.mset([L2Entry(key, b"v", 60, (prefix + "t",) if i % 2 else ()) for i, key in enumerate(keys)])
    assert await adapter.mget(keys) == [b"v"] * len(keys)
    assert await adapter.invalidate_tags([prefix + "t"]) == 30


async def test_concurrent_gets_are_batched_and_each_gets_its_own_value(
    adapter: RedisClusterAdapter, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [f"{prefix}{i}" for i in range(200)]
    await adapter.mset([L2Entry(key, key.encode(), 60) for key in keys[::2]])
    batches: list[int] = []
    read_many = redis_cluster.read_many

    async def counted(client: Any, layout: Any, batch: Sequence[str]) -> list[bytes | None]:
        batches.append(len(batch))
        return await read_many(client, layout, batch)

    monkeypatch.setattr(redis_cluster, "read_many", counted)
    values = await asyncio.gather(*(adapter.get(key) for key in keys))
    assert values == [key.encode() if i % 2 == 0 else None for i, key in enumerate(keys)]
    assert sum(batches) >= 100  # most went out in batches, not one command each
    assert len(batches) < 20
