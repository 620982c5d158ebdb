"""Concurrent writes on Redis go out batched: none is dropped on a healthy server, each caller gets its own outcome."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from cachetier import CacheConfig, CacheManager
from cachetier.adapters.redis import RedisAdapter
from cachetier.adapters.redis_keys import tag_list
from cachetier.errors import BackendError, NotAnIntegerError
from cachetier.protocols import L2Entry
from redis_fixtures import fixture_adapter, fixture_prefix  # noqa: F401 (fixtures, requested by name)
from servers import RedisServer


# 10,000: on a busy 2-core machine, unbatched writes were dropped from about 5,000 on (0-4,786 of
# 5,000 across runs; 6,337 and 7,687 of 10,000), each waiting past the pool's 1 s for one of its
# 64 connections. Writes now share pipelines (runs of untagged ones, one script): few connections.
@pytest.mark.parametrize("writers", [1_000, 10_000])
async def test_concurrent_sets_through_the_manager_are_never_dropped_on_a_healthy_server(
    redis_url: str, writers: int
) -> None:
    config = CacheConfig(namespace=f"batch-{uuid.uuid4().hex[:12]}", l1_enabled=False, redis_url=redis_url)
    cache = CacheManager(RedisAdapter.from_config(config), config)
    reader = Redis.from_url(redis_url)
    try:
        await asyncio.gather(*(cache.set(f"k{i}", i) for i in range(writers)))
        assert (await cache.get_stats()).l2.dropped_writes == 0
        assert await cache.mget([f"k{i}" for i in range(writers)]) == {f"k{i}": i for i in range(writers)}
        stored = await reader.mget([f"{config.namespace}:k{i}" for i in range(writers)])
        assert None not in stored
    finally:
        await cache.clear()
        await cache.close()
        await reader.aclose()


async def test_concurrent_msets_through_the_manager_are_never_dropped_on_a_healthy_server(redis_url: str) -> None:
    config = CacheConfig(namespace=f"batch-{uuid.uuid4().hex[:12]}", l1_enabled=False, redis_url=redis_url)
    cache = CacheManager(RedisAdapter.from_config(config), config)
    try:
        await asyncio.gather(
            *(cache.mset({f"a{i}": i, f"b{i}": -i}, tags=["t"] if i % 2 else None) for i in range(3_000))
        )
        assert (await cache.get_stats()).l2.dropped_writes == 0
        expected = {f"{name}{i}": sign * i for i in range(3_000) for name, sign in (("a", 1), ("b", -1))}
        assert await cache.mget(list(expected)) == expected
        assert await cache.invalidate_by_tag("t") == 3_000
    finally:
        await cache.clear()
        await cache.close()


async def test_joined_untagged_writes_move_keys_that_had_tags_out_of_their_indexes(
    adapter: RedisAdapter, prefix: str
) -> None:
    tag = prefix + "t"
    await adapter.mset([L2Entry(f"{prefix}{i}", b"tagged", 60, (tag,)) for i in range(0, 600, 3)])
    await asyncio.gather(
        *(adapter.set(f"{prefix}{i}", str(i).encode(), 60) for i in range(300)),
        *(  # msets of 30 joined with the sets: each learns which of its own entries had tags
            adapter.mset([L2Entry(f"{prefix}{i}", str(i).encode(), 60) for i in range(start, start + 30)])
            for start in range(300, 600, 30)
        ),
    )
    assert await adapter.invalidate_tags([tag]) == 0
    assert await adapter.mget([f"{prefix}{i}" for i in range(600)]) == [str(i).encode() for i in range(600)]


async def test_a_write_that_fails_in_a_batch_fails_only_its_own_caller(
    adapter: RedisAdapter, redis_url: str, prefix: str
) -> None:
    async with Redis.from_url(redis_url) as raw:
        await raw.set(tag_list(prefix + "bad"), b"not a set", ex=60)  # WRONGTYPE for the write's SMEMBERS
    keys = [f"{prefix}{i}" for i in range(200)]
    results = await asyncio.gather(
        *(adapter.set(key, b"v", 60, (prefix + "t",) if n % 2 else ()) for n, key in enumerate(keys)),
        adapter.set(prefix + "bad", b"v", 60),
        *(adapter.delete(key) for key in keys[:10]),
        return_exceptions=True,
    )
    assert [type(result) for result in results if result is not None and not isinstance(result, bool)] == [BackendError]
    assert results[200] is not None
    assert await adapter.mget(keys[10:]) == [b"v"] * 190


async def test_batched_writes_reload_scripts_the_server_lost() -> None:
    with RedisServer() as server:
        adapter = RedisAdapter.from_url(server.url)
        try:
            await adapter.set("warm", b"v", 60)
            async with Redis.from_url(server.url) as raw:
                await raw.script_flush()
            await asyncio.gather(
                *(adapter.set(f"k{i}", b"v", 60, ("t",) if i % 2 else ()) for i in range(100)),
                *(adapter.get_or_lease(f"missing{i}", 30) for i in range(10)),
            )
            assert await adapter.mget([f"k{i}" for i in range(100)]) == [b"v"] * 100
            assert await adapter.invalidate_tags(["t"]) == 50
        finally:
            await adapter.close()


async def test_concurrent_increments_are_batched_and_none_is_lost(adapter: RedisAdapter, prefix: str) -> None:
    results = await asyncio.gather(*(adapter.incr(prefix + f"n{i % 10}", 1, 60) for i in range(10_000)))
    assert sorted(results) == sorted(list(range(1, 1_001)) * 10)
    assert await adapter.mget([prefix + f"n{i}" for i in range(10)]) == [b"1000"] * 10


async def test_incr_is_exact_past_2_to_the_53_and_refuses_to_overflow(
    adapter: RedisAdapter, redis_url: str, prefix: str
) -> None:
    assert await adapter.incr(prefix + "big", 2**60 + 1, 60) == 2**60 + 1
    assert await adapter.incr(prefix + "big", 2, 60) == 2**60 + 3
    async with Redis.from_url(redis_url) as raw:
        await raw.set(prefix + "max", str(2**63 - 1), ex=60)
    with pytest.raises(NotAnIntegerError):
        await adapter.incr(prefix + "max", 1, 60)
    assert await adapter.get(prefix + "max") == str(2**63 - 1).encode()
