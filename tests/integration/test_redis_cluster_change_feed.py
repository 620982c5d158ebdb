"""The change feed on Redis Cluster: client tracking on every primary. Two managers ("processes") share
a namespace, each with its own adapter; what one changes leaves the other's L1 within a short wait."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from cachetier import CacheConfig, CacheManager, create_with_config
from cachetier.adapters.redis_cluster import RedisClusterAdapter
from cachetier.sentinel import MISS
from cluster_servers import RedisClusterServers

DROP_WAIT = 1.0  # seconds another process's change may take to leave this process's L1
KEYS = [f"user:{i}" for i in range(12)]  # spread over the three primaries


async def eventually(check: Callable[[], Any], within: float = DROP_WAIT) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not true within {within} s"
        await asyncio.sleep(0.005)


@pytest.fixture
async def processes(redis_cluster: RedisClusterServers) -> AsyncIterator[tuple[CacheManager, CacheManager]]:
    namespace = f"feed-{uuid.uuid4().hex[:12]}"
    a, b = (
        create_with_config(CacheConfig(namespace=namespace), l2=RedisClusterAdapter.from_url(redis_cluster.url))
        for _ in range(2)
    )
    await a.start()
    await b.start()
    yield a, b
    await b.clear()
    await a.close()
    await b.close()


async def cached_in_l1(cache: CacheManager, key: str, expected: Any) -> None:
    """Read until L1 holds it (a read that overlaps the feed's report of the write does not fill L1)."""
    deadline = time.monotonic() + DROP_WAIT
    while cache.get_local(key) != expected:
        assert time.monotonic() < deadline, f"{key!r} never reached L1"
        assert await cache.get(key) == expected


async def test_the_feed_tracks_every_primary(
    processes: tuple[CacheManager, CacheManager], redis_cluster: RedisClusterServers
) -> None:
    a, _ = processes
    adapter = a._l2.adapter
    assert isinstance(adapter, RedisClusterAdapter)
    ports = {int(name.rsplit(":", 1)[1]) for feed in adapter._feeds for name in feed.feeds}
    assert ports == set(redis_cluster.primary_ports())


async def test_values_set_by_another_process_replace_the_l1_copies(
    processes: tuple[CacheManager, CacheManager],
) -> None:
    a, b = processes
    for key in KEYS:
        await b.set(key, "old")
        await cached_in_l1(a, key, "old")
    await b.mset({key: "new" for key in KEYS})
    await eventually(lambda: all(a.get_local(key) is MISS for key in KEYS))
    assert await a.mget(KEYS) == {key: "new" for key in KEYS}


async def test_a_key_deleted_by_another_process_leaves_the_l1(processes: tuple[CacheManager, CacheManager]) -> None:
    a, b = processes
    await b.set("gone", "v")
    await cached_in_l1(a, "gone", "v")
    assert await b.delete("gone")
    await eventually(lambda: a.get_local("gone") is MISS)


async def test_a_tag_invalidated_by_another_process_empties_the_l1_of_its_keys_on_every_shard(
    processes: tuple[CacheManager, CacheManager],
) -> None:
    a, b = processes
    for key in KEYS:
        await b.set(key, key, tags=["users"])
        await cached_in_l1(a, key, key)
    await b.set("page", "kept", tags=["pages"])
    await cached_in_l1(a, "page", "kept")

    assert await b.invalidate_by_tag("users") == len(KEYS)

    await eventually(lambda: all(a.get_local(key) is MISS for key in KEYS))
    assert a.get_local("page") == "kept"


async def test_this_process_keeps_the_l1_copies_of_its_own_writes(
    processes: tuple[CacheManager, CacheManager],
) -> None:
    a, b = processes
    await a.mset({key: 1 for key in KEYS})
    await a.set("tagged", 2, tags=["t"])
    await b.set("theirs", "x")
    await asyncio.sleep(0.2)  # long enough for every echo to arrive and be checked
    assert all(a.get_local(key) == 1 for key in KEYS)
    assert a.get_local("tagged") == 2


def slow_loader(value: Any) -> Callable[[], Any]:
    async def load() -> Any:
        await asyncio.sleep(0.05)
        return value

    return load


@pytest.mark.parametrize("change", ["delete", "invalidate_by_tag", "clear"])
async def test_a_load_right_after_our_own_removal_is_stored(
    processes: tuple[CacheManager, CacheManager], change: str
) -> None:
    a, b = processes
    for key in KEYS:
        await a.set(key, "old", tags=["t"])
    if change == "delete":
        await a.delete(KEYS[-1])
    elif change == "invalidate_by_tag":
        await a.invalidate_by_tag("t")
    else:
        await a.clear()
    # The removal's echoes must not count as another process's change that the load may predate.
    assert await a.get(KEYS[-1], slow_loader("new")) == "new"
    assert a.get_local(KEYS[-1]) == "new"
    assert await b.get(KEYS[-1]) == "new"
