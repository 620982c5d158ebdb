"""How the manager uses an adapter's change feed (the feed itself is tested on real Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from cachetier import MISS, CacheConfig, create_with_config
from cachetier.adapters.memory import MemoryAdapter


class FeedingAdapter(MemoryAdapter):
    """A memory adapter with a change feed the test drives by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.on_change: Callable[[Sequence[str] | None], None] | None = None
        self.during_set: Callable[[], None] | None = None

    async def subscribe_invalidations(
        self, prefix: str, on_change: Callable[[Sequence[str] | None], None]
    ) -> Callable[[], Awaitable[None]]:
        self.on_change = on_change

        async def unsubscribe() -> None:
            self.on_change = None

        return unsubscribe

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        await super().set(key, value, ttl, tags)
        if self.during_set is not None:
            self.during_set()


async def test_remote_change_drops_the_l1_copy() -> None:
    adapter = FeedingAdapter()
    async with create_with_config(adapter=adapter, namespace="f") as cache:
        await cache.set("k", "mine")
        assert cache.get_local("k") == "mine"
        assert adapter.on_change is not None
        adapter.on_change(["f:k"])
        assert cache.get_local("k") is MISS
        adapter.on_change(None)
    assert adapter.on_change is None  # close() unsubscribed


async def test_change_landing_during_our_write_keeps_l1_out_of_the_race() -> None:
    adapter = FeedingAdapter()
    async with create_with_config(adapter=adapter, namespace="f") as cache:
        await cache.set("other", 1)
        assert adapter.on_change is not None
        feed = adapter.on_change
        adapter.during_set = lambda: feed(["f:k"])  # another process wrote k right after us
        await cache.set("k", "maybe overwritten")
        assert cache.get_local("k") is MISS  # the next read asks L2, which holds the winner


async def test_change_feed_can_be_turned_off() -> None:
    adapter = FeedingAdapter()
    async with create_with_config(CacheConfig(l1_change_feed=False), adapter=adapter) as cache:
        await cache.set("k", 1)
        assert adapter.on_change is None


async def test_close_releases_the_backend_even_when_unsubscribing_fails() -> None:
    closed: list[bool] = []

    class BrokenFeedAdapter(FeedingAdapter):
        async def subscribe_invalidations(
            self, prefix: str, on_change: Callable[[Sequence[str] | None], None]
        ) -> Callable[[], Awaitable[None]]:
            async def unsubscribe() -> None:
                raise ConnectionError("connection reset")

            return unsubscribe

        async def close(self) -> None:
            closed.append(True)
            await super().close()

    cache = create_with_config(adapter=BrokenFeedAdapter(), namespace="f")
    await cache.set("k", 1)
    await cache.close()  # a backend fault: logged, not raised
    assert closed == [True]


async def test_reads_racing_the_first_subscription_wait_for_it_before_filling_l1() -> None:
    subscribed = asyncio.Event()

    class SlowFeedAdapter(FeedingAdapter):
        async def subscribe_invalidations(
            self, prefix: str, on_change: Callable[[Sequence[str] | None], None]
        ) -> Callable[[], Awaitable[None]]:
            await subscribed.wait()  # the feed is being set up (a connection, CLIENT TRACKING)
            return await super().subscribe_invalidations(prefix, on_change)

    adapter = SlowFeedAdapter()
    other_process = create_with_config(CacheConfig(l1_change_feed=False), adapter=adapter, namespace="f")
    cache = create_with_config(adapter=adapter, namespace="f")  # not started: the first get subscribes
    try:
        await other_process.set("k", "old")
        first = asyncio.create_task(cache.get("k"))  # starts subscribing
        await asyncio.sleep(0.01)
        second = asyncio.create_task(cache.get("k"))
        await asyncio.sleep(0.01)
        await other_process.set("k", "new")  # the feed is not up yet: nobody reports this
        subscribed.set()
        await asyncio.gather(first, second)
        assert cache.get_local("k") in (MISS, "new")
        assert await cache.get("k") == "new"
    finally:
        await cache.close()
        await other_process.close()


async def test_close_during_the_first_subscription_still_unsubscribes() -> None:
    subscribed = asyncio.Event()

    class SlowFeedAdapter(FeedingAdapter):
        async def subscribe_invalidations(
            self, prefix: str, on_change: Callable[[Sequence[str] | None], None]
        ) -> Callable[[], Awaitable[None]]:
            await subscribed.wait()
            return await super().subscribe_invalidations(prefix, on_change)

    adapter = SlowFeedAdapter()
    cache = create_with_config(adapter=adapter, namespace="f")
    reading = asyncio.create_task(cache.get("k"))
    await asyncio.sleep(0.01)
    closing = asyncio.create_task(cache.close())
    await asyncio.sleep(0.01)
    subscribed.set()
    await closing
    await asyncio.sleep(0.01)
    assert adapter.on_change is None  # the feed that came up during close() was left
    reading.cancel()
    await asyncio.gather(reading, return_exceptions=True)
