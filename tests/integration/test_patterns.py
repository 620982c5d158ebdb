"""`CachePatterns` over a real manager (memory L2): what callers and the system of record see."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cachetier import CacheManager, InvalidTTLError, create_with_config
from cachetier.adapters.memory import MemoryAdapter
from cachetier.integrations.patterns import CachePatterns


@pytest.fixture
async def cache() -> AsyncIterator[CacheManager]:
    manager = create_with_config(adapter=MemoryAdapter(), namespace="patterns")
    try:
        yield manager
    finally:
        await manager.close()


@pytest.fixture
async def patterns(cache: CacheManager) -> AsyncIterator[CachePatterns]:
    async with CachePatterns(cache) as value:
        yield value


class Source:
    """A system of record that counts reads and writes."""

    def __init__(self, value: Any = "v1") -> None:
        self.value = value
        self.reads = 0
        self.writes: list[Any] = []

    async def read(self) -> Any:
        self.reads += 1
        return self.value

    async def write(self, value: Any) -> None:
        self.writes.append(value)
        self.value = value


async def test_cache_aside_handle_loads_once_and_invalidates(patterns: CachePatterns) -> None:
    source = Source()
    handle = patterns.cache_aside("item", source.read, ttl=60, tags=["items"])
    assert await handle.get() == "v1"
    assert await handle.get() == "v1"
    assert source.reads == 1
    assert await handle.invalidate() is True
    source.value = "v2"
    assert await handle.get() == "v2"


async def test_read_through_loads_on_miss_once_and_honours_tags(patterns: CachePatterns, cache: CacheManager) -> None:
    source = Source()
    results = await asyncio.gather(*(patterns.read_through("item", source.read, tags=["items"]) for _ in range(5)))
    assert results == ["v1"] * 5
    assert source.reads == 1
    await cache.invalidate_by_tag("items")
    source.value = "v2"
    assert await patterns.read_through("item", source.read) == "v2"


async def test_write_through_writes_the_record_then_the_cache(patterns: CachePatterns, cache: CacheManager) -> None:
    source = Source()
    assert await patterns.write_through("item", "v2", source.write, ttl=60) == "v2"
    assert source.writes == ["v2"]
    assert await cache.get("item") == "v2"
    assert await patterns.read_through("item", source.read) == "v2"
    assert source.reads == 0


async def test_write_through_accepts_a_sync_writer(patterns: CachePatterns, cache: CacheManager) -> None:
    written: list[int] = []
    await patterns.write_through("n", 5, written.append)
    assert written == [5]
    assert await cache.get("n") == 5


async def test_a_failing_write_leaves_the_cache_untouched(patterns: CachePatterns, cache: CacheManager) -> None:
    await cache.set("item", "old")

    async def failing(value: str) -> None:
        raise ConnectionError("database down")

    with pytest.raises(ConnectionError, match="database down"):
        await patterns.write_through("item", "new", failing)
    assert await cache.get("item") == "old"


async def test_refresh_ahead_serves_the_cached_value_and_reloads_in_the_background(patterns: CachePatterns) -> None:
    source = Source()
    assert await patterns.refresh_ahead("hot", source.read, ttl=0.5, refresh_ratio=0.4) == "v1"
    assert await patterns.refresh_ahead("hot", source.read, ttl=0.5, refresh_ratio=0.4) == "v1"
    assert source.reads == 1

    source.value = "v2"
    await asyncio.sleep(0.25)  # past 0.4 * 0.5 s, before expiry
    stale = await asyncio.gather(
        *(patterns.refresh_ahead("hot", source.read, ttl=0.5, refresh_ratio=0.4) for _ in range(5))
    )
    assert stale == ["v1"] * 5  # nobody waits for the reload
    await patterns.wait_idle()
    assert source.reads == 2  # one background reload for five stale reads
    assert await patterns.refresh_ahead("hot", source.read, ttl=0.5, refresh_ratio=0.4) == "v2"
    assert source.reads == 2


async def test_a_failed_background_reload_is_counted_and_the_old_value_served(patterns: CachePatterns) -> None:
    calls = 0

    async def loader() -> str:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise ConnectionError("origin down")
        return "v1"

    assert await patterns.refresh_ahead("hot", loader, ttl=5, refresh_ratio=0.01) == "v1"
    await asyncio.sleep(0.06)
    assert await patterns.refresh_ahead("hot", loader, ttl=5, refresh_ratio=0.01) == "v1"
    await patterns.wait_idle()
    assert patterns.refresh_failures == 1
    assert await patterns.refresh_ahead("hot", loader, ttl=5, refresh_ratio=0.01) == "v1"
    await patterns.wait_idle()


async def test_a_background_reload_does_not_resurrect_an_invalidated_entry(
    patterns: CachePatterns, cache: CacheManager
) -> None:
    release = asyncio.Event()
    loads = 0

    async def loader() -> str:
        nonlocal loads
        loads += 1
        if loads > 1:
            await release.wait()
        return f"v{loads}"

    assert await patterns.refresh_ahead("hot", loader, ttl=5, refresh_ratio=0.01, tags=["hot"]) == "v1"
    await asyncio.sleep(0.06)
    assert await patterns.refresh_ahead("hot", loader, ttl=5, refresh_ratio=0.01, tags=["hot"]) == "v1"
    await asyncio.sleep(0)  # the background reload is now waiting in the loader
    assert await cache.invalidate_by_tag("hot") == 1
    release.set()
    await patterns.wait_idle()
    assert not await cache.exists("hot")


async def test_refresh_ahead_replaces_a_value_written_by_other_code(
    patterns: CachePatterns, cache: CacheManager
) -> None:
    source = Source("fresh")
    await cache.set("hot", "plain value")
    assert await patterns.refresh_ahead("hot", source.read, ttl=5) == "fresh"
    assert await patterns.refresh_ahead("hot", source.read, ttl=5) == "fresh"
    assert source.reads == 1


@pytest.mark.parametrize(("ttl", "ratio"), [(0, 0.8), (-1, 0.8), (10, 0), (10, 1.5)])
async def test_refresh_ahead_rejects_bad_ttl_or_ratio(patterns: CachePatterns, ttl: float, ratio: float) -> None:
    with pytest.raises(InvalidTTLError):
        await patterns.refresh_ahead("k", Source().read, ttl, refresh_ratio=ratio)
