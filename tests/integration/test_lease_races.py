"""The races leases close, made deterministic: a loader's value must never land over a newer change.

Two managers on one backend stand for two processes (separate adapters and
connections on Redis, PostgreSQL and SQLite; one shared dict for memory). The
loader of one is held while the other writes, deletes, invalidates or clears;
each test then checks that neither process reads the loader's older value.
Every test here failed before leases: the loaded value was stored over the
other process's change, since nothing in that process saw it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from cachetier import CacheConfig, CacheManager, L2Adapter, create_with_config
from cachetier.adapters.memory import MemoryAdapter

Pair = tuple[CacheManager, CacheManager]


def _adapter_factory(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], L2Adapter]:
    if kind == "memory":
        shared = MemoryAdapter()
        return lambda: shared
    if kind == "sqlite":
        from cachetier.adapters.sqlite import SQLiteAdapter

        return lambda: SQLiteAdapter(tmp_path / "shared.db")
    if kind == "redis":
        from cachetier.adapters.redis import RedisAdapter

        url = request.getfixturevalue("redis_url")
        return lambda: RedisAdapter.from_config(CacheConfig(redis_url=url))
    from cachetier.adapters.postgres import PostgresAdapter

    dsn = request.getfixturevalue("postgres_dsn")
    return lambda: PostgresAdapter.from_config(CacheConfig(database_url=dsn), table_name="lease_races")


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
async def pair(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Pair]:
    build = _adapter_factory(request.param, request, tmp_path)
    namespace = f"races{uuid.uuid4().hex[:10]}"
    first = await create_with_config(adapter=build(), namespace=namespace).start()
    second = await create_with_config(adapter=build(), namespace=namespace).start()
    try:
        yield first, second
    finally:
        await first.clear()
        await second.close()
        await first.close()


class HeldLoader:
    """A loader that reads "the database" and then waits until the test lets it return."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> str:
        self.started.set()
        await self.release.wait()
        return self.value


async def _race(pair: Pair, change: Callable[[CacheManager], Awaitable[object]], tags: list[str]) -> str:
    reader, writer = pair
    loader = HeldLoader("read before the change")
    load = asyncio.create_task(reader.get("k", loader, tags=tags))
    await loader.started.wait()
    await change(writer)  # returns before the loaded value is stored
    loader.release.set()
    assert await load == "read before the change"  # the caller still gets what it loaded
    return loader.value


async def _assert_nobody_reads(pair: Pair, stale: str) -> None:
    for cache in pair:
        assert await cache.get("k") != stale
        assert await cache.get("k", lambda: "fresh") != stale


async def test_a_write_in_another_process_is_not_overwritten_by_a_load(pair: Pair) -> None:
    stale = await _race(pair, lambda other: other.set("k", "newer"), [])
    await _assert_nobody_reads(pair, stale)
    assert await pair[0].get("k") == "newer"
    assert await pair[1].get("k") == "newer"


async def test_a_delete_in_another_process_is_not_undone_by_a_load(pair: Pair) -> None:
    stale = await _race(pair, lambda other: other.delete("k"), [])
    await _assert_nobody_reads(pair, stale)


async def test_a_tag_invalidation_in_another_process_is_not_undone_by_a_load(pair: Pair) -> None:
    stale = await _race(pair, lambda other: other.invalidate_by_tag("users"), ["users"])
    await _assert_nobody_reads(pair, stale)


async def test_a_clear_in_another_process_is_not_undone_by_a_load(pair: Pair) -> None:
    stale = await _race(pair, lambda other: other.clear(), [])
    await _assert_nobody_reads(pair, stale)


async def test_an_unrelated_invalidation_does_not_stop_the_load_being_stored(pair: Pair) -> None:
    loaded = await _race(pair, lambda other: other.invalidate_by_tag("posts"), ["users"])
    assert await pair[1].get("k") == loaded


async def test_concurrent_misses_in_two_processes_run_one_loader(pair: Pair) -> None:
    calls: list[int] = []

    async def slow() -> str:
        calls.append(1)
        await asyncio.sleep(0.2)
        return "loaded"

    results = await asyncio.gather(*(cache.get("k", slow) for cache in pair for _ in range(10)))
    assert results == ["loaded"] * 20
    assert len(calls) == 1


async def test_a_load_overtaken_by_an_unrelated_change_still_stores_and_frees_its_lease(pair: Pair) -> None:
    reader, other = pair
    loader = HeldLoader("loaded")
    load = asyncio.create_task(reader.get("k", loader, tags=["users"]))
    await loader.started.wait()
    await reader.invalidate_by_tag("posts")  # moves this process's generation, touches nothing of "k"
    loader.release.set()
    assert await load == "loaded"
    # Had the lease been left unredeemed, `other` would wait lease_wait (2 s) and load for itself.
    assert await asyncio.wait_for(other.get("k", lambda: "loaded again"), 1.0) == "loaded"
