"""A plain set, and a delete, go through the change feed's tracker (NOLOOP), so its own feed never hears of them.

What must still hold: every other writer's change to the key is reported,
including one the server merges with ours into one notification, and a set
whose tracker connection is gone still lands (through the pool).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection

from cachetier import CacheConfig, create_cache
from cachetier.adapters import redis_tracking
from cachetier.adapters.redis import RedisAdapter
from cachetier.adapters.redis_keys import lease, tag_index, tag_list
from cachetier.adapters.redis_quiet import take_over
from cachetier.adapters.redis_tracking import InvalidationFeed
from servers import RedisServer

BUSY_SCRIPT = """
local start = redis.call('TIME')
repeat
  local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + (now[2] - start[2]) >= tonumber(ARGV[1])
return 1
"""


class Subscribed:
    """An adapter subscribed to a fresh prefix, recording what its feed reports and how many echoes it checks."""

    def __init__(self, url: str) -> None:
        self.prefix = f"quiet-{uuid.uuid4().hex[:12]}:"
        self.adapter = RedisAdapter.from_url(url)
        self.reported: list[Sequence[str] | None] = []
        self.echo_checks = 0
        self._news = asyncio.Event()

    def _record(self, keys: Sequence[str] | None) -> None:
        self.reported.append(keys)
        self._news.set()

    async def start(self) -> InvalidationFeed:
        self.unsubscribe = await self.adapter.subscribe_invalidations(self.prefix, self._record)
        feed = self.adapter._feeds[0]
        check = feed._report_unless_ours

        async def counted(ours: dict[str, bytes]) -> Any:
            self.echo_checks += 1
            return await check(ours)

        feed._report_unless_ours = counted  # type: ignore[method-assign]
        return feed

    def keys_reported(self) -> set[str]:
        return {key for keys in self.reported if keys is not None for key in keys}

    async def wait_for(self, key: str) -> None:
        """Until the feed reports `key`; at most 2 s."""
        async with asyncio.timeout(2):
            while key not in self.keys_reported():
                self._news.clear()
                await self._news.wait()

    async def close(self) -> None:
        await self.adapter.clear(self.prefix)
        await self.unsubscribe()
        await self.adapter.close()


@pytest.fixture
async def subscribed(redis_url: str) -> AsyncIterator[Subscribed]:
    watcher = Subscribed(redis_url)
    await watcher.start()
    yield watcher
    await watcher.close()


async def test_plain_sets_are_neither_echoed_nor_checked(subscribed: Subscribed, redis_url: str) -> None:
    for i in range(30):
        await subscribed.adapter.set(f"{subscribed.prefix}k{i}", b"v", 60)
    # Notifications come in the order of the changes: once a later foreign write is
    # reported, an echo of ours would have arrived before it.
    async with Redis.from_url(redis_url) as raw:
        await raw.set(f"{subscribed.prefix}marker", b"x", px=60_000)
    await subscribed.wait_for(f"{subscribed.prefix}marker")
    assert subscribed.keys_reported() == {f"{subscribed.prefix}marker"}
    assert subscribed.echo_checks == 0
    assert await subscribed.adapter.get(f"{subscribed.prefix}k29") == b"v"


async def test_another_writer_after_a_quiet_set_is_reported(subscribed: Subscribed, redis_url: str) -> None:
    key = f"{subscribed.prefix}shared"
    other = RedisAdapter.from_url(redis_url)
    try:
        await subscribed.adapter.set(key, b"ours", 60)
        await other.set(key, b"theirs", 60)  # another process's quiet set: quiet only for its own feed
        await subscribed.wait_for(key)
    finally:
        await other.close()


async def test_a_quiet_set_leaves_the_tags_the_key_had(subscribed: Subscribed) -> None:
    key = f"{subscribed.prefix}tagged"
    await subscribed.adapter.set(key, b"old", 60, ["t1"])
    await subscribed.adapter.set(key, b"new", 60)  # untagged: through the tracker, then WRITE leaves t1
    await subscribed.adapter.invalidate_tags(["t1"])
    assert await subscribed.adapter.get(key) == b"new"


async def test_a_set_whose_tracker_was_killed_still_lands(subscribed: Subscribed, redis_url: str) -> None:
    async with Redis.from_url(redis_url) as admin:
        # Kill the tracker from the server side; the next set may find it gone before the feed does.
        clients = await admin.client_list()
        for client in clients:
            if client.get("name") == "cachetier-feed-tracker":
                await admin.client_kill_filter(_id=client["id"])
    for i in range(20):
        await subscribed.adapter.set(f"{subscribed.prefix}after-kill{i}", b"v", 60)
        assert await subscribed.adapter.get(f"{subscribed.prefix}after-kill{i}") == b"v"


async def test_a_foreign_write_merged_with_ours_into_one_notification_is_reported() -> None:
    """Both writes arrive while the server is busy, so it runs them in one turn and sends one notification.

    NOLOOP drops the key only if our write was the later one; whichever order the
    server took, a key whose final value is not ours must be reported. Runs on a
    server of its own, which a script keeps busy.
    """
    with RedisServer() as server:
        watcher = Subscribed(server.url)
        await watcher.start()
        busy = Redis.from_url(server.url)
        theirs = Redis.from_url(server.url)
        merged_and_foreign_last = 0
        try:
            for trial in range(20):
                key = f"{watcher.prefix}k{trial}"
                blocker = asyncio.ensure_future(busy.eval(BUSY_SCRIPT, 0, 30_000))
                await asyncio.sleep(0.005)  # the script runs; what follows queues up behind it
                ours = asyncio.ensure_future(watcher.adapter.set(key, b"ours", 60))
                await asyncio.sleep(0.001)
                await theirs.set(key, b"theirs", px=60_000)
                await ours
                await blocker
                if await theirs.get(key) == b"theirs":
                    merged_and_foreign_last += 1
                    await watcher.wait_for(key)
        finally:
            await busy.aclose()
            await theirs.aclose()
            await watcher.close()
    assert merged_and_foreign_last > 0  # the case this test exists for came up


async def test_without_a_quiet_channel_sets_go_through_the_pool_and_their_echoes_are_checked(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What happens without hiredis, or over a connection class without asyncio streams.
    monkeypatch.setattr(redis_tracking, "take_over", lambda connection: None)
    watcher = Subscribed(redis_url)
    await watcher.start()
    try:
        for i in range(5):
            await watcher.adapter.set(f"{watcher.prefix}k{i}", b"v", 60)
        async with Redis.from_url(redis_url) as raw:
            await raw.set(f"{watcher.prefix}marker", b"x", px=60_000)
        await watcher.wait_for(f"{watcher.prefix}marker")
        await asyncio.sleep(0.05)  # the echo checks (2 ms apart) finish
        assert watcher.echo_checks > 0
        assert watcher.keys_reported() == {f"{watcher.prefix}marker"}
    finally:
        await watcher.close()


def test_a_connection_without_asyncio_streams_gets_no_quiet_channel() -> None:
    assert take_over(Connection()) is None  # not connected: no streams to take over


async def test_deletes_are_neither_echoed_nor_checked(subscribed: Subscribed, redis_url: str) -> None:
    for i in range(10):
        await subscribed.adapter.set(f"{subscribed.prefix}k{i}", b"v", 60)
    assert [await subscribed.adapter.delete(f"{subscribed.prefix}k{i}") for i in range(10)] == [True] * 10
    assert await subscribed.adapter.delete(f"{subscribed.prefix}k0") is False
    async with Redis.from_url(redis_url) as raw:
        await raw.set(f"{subscribed.prefix}marker", b"x", px=60_000)
    await subscribed.wait_for(f"{subscribed.prefix}marker")
    assert subscribed.keys_reported() == {f"{subscribed.prefix}marker"}
    assert subscribed.echo_checks == 0


async def test_a_quiet_delete_of_a_tagged_key_leaves_nothing_of_it(subscribed: Subscribed, redis_url: str) -> None:
    key, tag = f"{subscribed.prefix}tagged", f"{subscribed.prefix}t"
    await subscribed.adapter.set(key, b"v", 60, [tag])
    assert await subscribed.adapter.delete(key) is True
    async with Redis.from_url(redis_url) as raw:
        assert await raw.exists(key, tag_list(key), lease(key)) == 0
        assert await raw.zscore(tag_index(tag), key) is None


async def test_a_storm_of_concurrent_sets_and_deletes_loses_none(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # One MULTI per call on the tracker, 20,000 at once, took past the 1 s timeout and dropped 7,559 sets;
    # a timeout per call also fired for replies already in the socket while the loop was busy with the rest.
    namespace = f"quiet-storm-{uuid.uuid4().hex[:8]}"
    config = CacheConfig(adapter="redis", redis_url=redis_url, namespace=namespace)
    async with create_cache(config) as cache, Redis.from_url(redis_url) as raw:
        count = 20_000
        try:
            stored = await asyncio.gather(*(cache.set(f"k{i}", i) for i in range(count)))
            assert sum(stored) == count
            assert len([key async for key in raw.scan_iter(match=f"{namespace}:k*", count=5000)]) == count
            await asyncio.gather(*(cache.delete(f"k{i}") for i in range(count)))
            # (Not their return values: a reply that a loop this busy reads past redis-py's timeout gets
            # the command retried, and the repeated delete reports the key already gone.)
            assert [key async for key in raw.scan_iter(match=f"{namespace}:k*", count=5000)] == []
            assert not [record for record in caplog.records if "failed" in record.getMessage()]
        finally:
            await cache.clear()
