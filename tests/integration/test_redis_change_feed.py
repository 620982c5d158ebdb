"""The Redis change feed: two managers ("processes") share a namespace, each with its own
adapter; what one changes in Redis leaves the other's L1 within a short bounded wait.

Steady-state tests use the machine's Redis under their own namespace; faults
(restart, killed connections, a hung server, FLUSHDB, ACLs) use throwaway servers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from redis.asyncio import Redis

from cachetier import CacheConfig, CacheManager, create_with_config
from cachetier.adapters.redis import RedisAdapter
from cachetier.errors import BackendError
from cachetier.sentinel import MISS
from servers import RedisServer

DROP_WAIT = 1.0  # seconds another process's change may take to leave this process's L1


async def eventually(check: Callable[[], Any], within: float = DROP_WAIT) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not true within {within} s"
        await asyncio.sleep(0.005)


def manager(url: str, namespace: str, **options: Any) -> CacheManager:
    return create_with_config(CacheConfig(namespace=namespace), adapter=RedisAdapter.from_url(url, **options))


@pytest.fixture
def namespace() -> str:
    return f"feed-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def processes(redis_url: str, namespace: str) -> AsyncIterator[tuple[CacheManager, CacheManager]]:
    a, b = manager(redis_url, namespace), manager(redis_url, namespace)
    yield a, b
    await b.clear()
    await a.close()
    await b.close()


async def cached_in_l1(cache: CacheManager, key: str, expected: Any) -> None:
    assert await cache.get(key) == expected
    assert await cache.get(key) == expected
    assert cache.get_local(key) == expected


async def test_a_value_set_by_another_process_replaces_the_l1_copy(
    processes: tuple[CacheManager, CacheManager],
) -> None:
    a, b = processes
    await b.set("user:1", {"name": "old"})
    await cached_in_l1(a, "user:1", {"name": "old"})

    await b.set("user:1", {"name": "new"})

    await eventually(lambda: a.get_local("user:1") is MISS)
    assert await a.get("user:1") == {"name": "new"}


async def test_a_key_deleted_by_another_process_leaves_the_l1(processes: tuple[CacheManager, CacheManager]) -> None:
    a, b = processes
    await b.set("user:1", "v")
    await cached_in_l1(a, "user:1", "v")

    assert await b.delete("user:1")

    await eventually(lambda: a.get_local("user:1") is MISS)
    assert await a.get("user:1") is None


async def test_a_tag_invalidated_by_another_process_empties_the_l1_of_its_keys(
    processes: tuple[CacheManager, CacheManager],
) -> None:
    a, b = processes
    await b.set("user:1", "one", tags=["users"])
    await b.set("user:2", "two", tags=["users"])
    await b.set("page", "kept", tags=["pages"])
    for key, value in {"user:1": "one", "user:2": "two", "page": "kept"}.items():
        await cached_in_l1(a, key, value)

    assert await b.invalidate_by_tag("users") == 2

    await eventually(lambda: a.get_local("user:1") is MISS and a.get_local("user:2") is MISS)
    assert await a.get("user:1") is None
    assert a.get_local("page") == "kept"


async def test_an_expired_key_is_not_served_from_l1(processes: tuple[CacheManager, CacheManager]) -> None:
    a, b = processes
    await b.set("session", "s", ttl=0.2)
    await cached_in_l1(a, "session", "s")

    await asyncio.sleep(0.2)

    await eventually(lambda: a.get_local("session") is MISS)
    assert await a.get("session") is None


async def test_this_process_keeps_the_l1_copy_of_its_own_write(
    processes: tuple[CacheManager, CacheManager],
) -> None:
    a, b = processes
    await a.set("mine", "v1")
    await a.mset({"batch:1": 1, "batch:2": 2})
    await b.set("theirs", "x")
    await asyncio.sleep(0.2)  # long enough for every echo to arrive and be checked

    assert a.get_local("mine") == "v1"
    assert a.get_local("batch:1") == 1
    assert a.get_local("batch:2") == 2


def slow_loader(value: Any) -> Callable[[], Any]:
    """A loader that takes long enough for the echo of a change made just before it to arrive."""

    async def load() -> Any:
        await asyncio.sleep(0.05)
        return value

    return load


@pytest.mark.parametrize("change", ["delete", "invalidate_by_tag", "clear"])
async def test_a_load_right_after_our_own_removal_is_stored(
    processes: tuple[CacheManager, CacheManager], change: str
) -> None:
    a, b = processes
    await a.set("k", "old", tags=["t"])
    if change == "delete":
        await a.delete("k")
    elif change == "invalidate_by_tag":
        await a.invalidate_by_tag("t")
    else:
        await a.clear()
    # The removal's echo must not count as another process's change that the load may predate.
    assert await a.get("k", slow_loader("new")) == "new"
    assert a.get_local("k") == "new"
    assert await b.get("k") == "new"


async def test_a_load_right_after_an_invalidation_purged_in_many_chunks_is_stored(
    redis_url: str, namespace: str
) -> None:
    adapter = RedisAdapter.from_url(redis_url)
    adapter.purge_chunk = 2  # the fence must follow the last chunk's deletions, not the first's
    a, b = create_with_config(CacheConfig(namespace=namespace), adapter=adapter), manager(redis_url, namespace)
    try:
        await a.mset({f"k{i}": i for i in range(20)}, tags=["t"])
        for i in range(20):
            await cached_in_l1(b, f"k{i}", i)
        assert await a.invalidate_by_tag("t") == 20
        await eventually(lambda: all(b.get_local(f"k{i}") is MISS for i in range(20)))
        assert await a.get("k19", slow_loader("new")) == "new"
        assert a.get_local("k19") == "new"
        assert await b.get("k19") == "new"
    finally:
        await a.clear()
        await a.close()
        await b.close()


async def test_writing_a_key_twice_does_not_report_the_second_echo(
    processes: tuple[CacheManager, CacheManager],
) -> None:
    a, b = processes
    await a.set("twice", 1)
    await a.set("twice", 2)
    assert await a.get("other", slow_loader("loaded")) == "loaded"
    assert await b.get("other") == "loaded"  # no echo of "twice" made the load's store look stale
    assert a.get_local("twice") == 2


async def test_fence_keys_are_neither_entries_nor_reported(
    processes: tuple[CacheManager, CacheManager], redis_url: str, namespace: str
) -> None:
    a, b = processes
    await a.mset({"x": 1, "y": 2}, tags=["t"])
    await b.set("z", 3)
    await cached_in_l1(b, "z", 3)
    await a.invalidate_by_tag("t")  # writes a fence key under the namespace, which expires by itself
    assert b.get_local("z") == 3
    raw = Redis.from_url(redis_url)
    try:
        fences = await raw.keys(f"{namespace}:\x00fence*")
        assert fences
        assert all(0 < ttl <= 1000 for ttl in [await raw.pttl(key) for key in fences])
    finally:
        await raw.aclose()
    assert await a.clear() == 1


async def test_concurrent_writes_by_two_processes_leave_no_l1_copy_that_differs_from_l2(
    processes: tuple[CacheManager, CacheManager], redis_url: str, namespace: str
) -> None:
    a, b = processes
    async with create_with_config(
        CacheConfig(namespace=namespace, l1_enabled=False), adapter=RedisAdapter.from_url(redis_url)
    ) as l2_only:
        for round_ in range(50):
            await asyncio.gather(a.set("contended", f"a{round_}"), b.set("contended", f"b{round_}"))
            stored = await l2_only.get("contended")
            for cache in (a, b):
                await eventually(lambda: cache.get_local("contended") in (MISS, stored))  # noqa: B023


async def test_only_data_keys_under_the_prefix_are_reported(redis_url: str, namespace: str) -> None:
    prefix = namespace + ":"
    seen: list[Sequence[str] | None] = []
    listening, writer = RedisAdapter.from_url(redis_url), RedisAdapter.from_url(redis_url)
    unsubscribe = await listening.subscribe_invalidations(prefix, seen.append)
    try:
        await writer.set(prefix + "k", b"v", 60, (prefix + "tag",))
        await writer.set(namespace + "-other:k", b"v", 60, (prefix + "tag",))
        await writer.invalidate_tags([prefix + "tag"])
        await eventually(lambda: sum(len(keys or ()) for keys in seen) >= 2)
        await asyncio.sleep(0.05)
        assert None not in seen
        assert [key for keys in seen for key in keys or ()] == [prefix + "k", prefix + "k"]
    finally:
        await unsubscribe()
        await unsubscribe()  # idempotent
        await writer.clear(prefix)
        await writer.clear(namespace + "-other:")
        await listening.close()
        await writer.close()


async def test_flushdb_reports_that_every_copy_is_suspect() -> None:
    seen: list[Sequence[str] | None] = []
    with RedisServer() as server:
        adapter = RedisAdapter.from_url(server.url)
        unsubscribe = await adapter.subscribe_invalidations("ns:", seen.append)
        await adapter.client.flushdb()
        await eventually(lambda: None in seen)
        await unsubscribe()
        await adapter.close()


async def test_after_a_server_restart_l1_is_emptied_and_the_feed_works_again(namespace: str) -> None:
    with RedisServer() as server:
        a, b = manager(server.url, namespace), manager(server.url, namespace)
        await b.set("k", "before")
        await cached_in_l1(a, "k", "before")

        server.restart()

        await eventually(lambda: a.get_local("k") is MISS, within=10)  # the flush comes once the feed is back
        await b.set("k", "after")
        await cached_in_l1(a, "k", "after")
        await b.set("k", "later")
        await eventually(lambda: a.get_local("k") is MISS)
        assert await a.get("k") == "later"
        await a.close()
        await b.close()


@pytest.mark.parametrize("role", ["listener", "tracker"])
async def test_a_killed_feed_connection_is_replaced_and_l1_emptied(namespace: str, role: str) -> None:
    with RedisServer() as server:
        a, b = manager(server.url, namespace), manager(server.url, namespace)
        admin = Redis.from_url(server.url)
        await b.set("k", "v1")
        await cached_in_l1(a, "k", "v1")

        killed = await admin.client_kill_filter(_type="normal" if role == "tracker" else "pubsub")
        assert killed >= 1

        await eventually(lambda: a.get_local("k") is MISS)
        await cached_in_l1(a, "k", "v1")
        await b.set("k", "v2")
        await eventually(lambda: a.get_local("k") is MISS)
        await admin.aclose()
        await a.close()
        await b.close()


@pytest.mark.slow
async def test_a_hung_server_is_noticed_and_l1_emptied_when_it_answers_again(namespace: str) -> None:
    with RedisServer() as server:
        a, b = manager(server.url, namespace, socket_timeout=0.3), manager(server.url, namespace)
        await b.set("k", "v1")
        await cached_in_l1(a, "k", "v1")

        server.pause()
        await asyncio.sleep(3)  # over two silent PING intervals: the feed counts as lost
        server.resume()

        await eventually(lambda: a.get_local("k") is MISS, within=5)
        await a.close()
        await b.close()


async def test_close_leaves_no_feed_task_or_connection(namespace: str) -> None:
    with RedisServer() as server:
        a = manager(server.url, namespace)
        await a.set("k", "v")
        admin = Redis.from_url(server.url)
        names = [client["name"] for client in await admin.client_list()]
        assert sorted(name for name in names if name.startswith("cachetier-feed")) == [
            "cachetier-feed-listener",
            "cachetier-feed-tracker",
        ]

        await a.close()

        assert not [task for task in asyncio.all_tasks() if task.get_name().startswith("cachetier-redis-feed")]
        deadline = time.monotonic() + DROP_WAIT
        while any(client["name"].startswith("cachetier-feed") for client in await admin.client_list()):
            assert time.monotonic() < deadline, "the server still lists feed connections"
            await asyncio.sleep(0.01)
        await admin.aclose()


async def test_a_server_refusing_tracking_leaves_the_manager_working_without_a_feed(namespace: str) -> None:
    with RedisServer("--user", "limited", "on", ">pw", "~*", "&*", "+@all", "-client") as server:
        url = server.url.replace("redis://", "redis://limited:pw@")
        adapter = RedisAdapter.from_url(url)
        with pytest.raises(BackendError, match="refused client tracking"):
            await adapter.subscribe_invalidations("ns:", lambda keys: None)
        await adapter.close()
        async with manager(url, namespace) as cache:
            await cache.set("k", "v")
            assert await cache.get("k") == "v"


async def test_unsubscribing_leaves_nothing_behind_in_the_adapter(redis_url: str, namespace: str) -> None:
    adapter = RedisAdapter.from_url(redis_url)
    closers = len(adapter._closers)
    for _ in range(3):
        unsubscribe = await adapter.subscribe_invalidations(namespace + ":", lambda keys: None)
        await unsubscribe()
    assert len(adapter._closers) == closers  # each subscription held its feed until the adapter closed
    await adapter.close()
