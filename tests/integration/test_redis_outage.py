"""The manager on a Redis that dies mid-run and comes back: it keeps answering, then recovers."""

from __future__ import annotations

import asyncio
import time

from cachetier import CacheConfig, create_with_config
from cachetier.adapters.redis import RedisAdapter
from servers import RedisServer


async def test_manager_keeps_answering_while_redis_is_down_and_recovers_after_restart() -> None:
    with RedisServer() as server:
        config = CacheConfig(namespace="outage", failure_threshold=2, recovery_timeout=0.3, redis_socket_timeout=0.5)
        adapter = RedisAdapter.from_url(server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        other_process = RedisAdapter.from_url(server.url)
        async with create_with_config(config, adapter=adapter) as cache:
            await cache.set("kept", "before", tags=["users"])
            assert await cache.is_healthy()

            server.stop()
            started = time.monotonic()
            assert await cache.get("kept") == "before"  # L1 still serves
            assert await cache.get("never-cached", lambda: "loaded") == "loaded"
            await cache.set("dropped-write", "v2")  # L2 is gone: kept in L1, counted as dropped
            assert await cache.invalidate_by_tag("users") >= 1
            assert await cache.increment("counter") is None
            assert not await cache.is_healthy()
            for _ in range(20):  # an open circuit answers at once
                await cache.get("absent")
            assert time.monotonic() - started < 5
            stats = await cache.get_stats()
            assert stats.l2.errors >= 2
            assert stats.l2.circuit in {"open", "half-open"}
            assert stats.l2.dropped_writes == 2  # the set, and the loaded value
            health = stats.to_dict()["l2"]
            assert health["healthy"] is False

            server.restart()
            await asyncio.sleep(0.4)
            deadline = time.monotonic() + 10
            while not await cache.is_healthy():
                assert time.monotonic() < deadline, "manager did not reconnect"
                await asyncio.sleep(0.2)
            await cache.set("after", "works")
            assert await other_process.get("outage:after") is not None
            assert await cache.increment("counter") == 1
            assert (await cache.get_stats()).l2.circuit == "closed"
        await other_process.close()


async def test_invalidation_during_outage_is_applied_when_redis_returns() -> None:
    with RedisServer() as server:
        config = CacheConfig(namespace="replay", failure_threshold=1, recovery_timeout=0.2)
        adapter = RedisAdapter.from_url(server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        async with create_with_config(config, adapter=adapter) as cache:
            await cache.set("user:1", "old", tags=["users"])
            server.pause()  # hung, not dead: the data survives
            await cache.invalidate_by_tag("users")
            await cache.delete("user:1")
            server.resume()
            await asyncio.sleep(0.3)
            reader = create_with_config(config, adapter=RedisAdapter.from_url(server.url))
            try:
                assert await cache.is_healthy()  # replays the missed invalidations first
                assert await reader.get("user:1") is None
            finally:
                await reader.close()
