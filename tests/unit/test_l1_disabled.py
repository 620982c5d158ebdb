"""`l1_enabled=False`: every read goes to L2 and nothing is kept in process."""

from __future__ import annotations

from cachetier import CacheConfig, create_with_config
from cachetier.adapters.memory import MemoryAdapter


async def test_disabled_l1_serves_every_read_from_l2() -> None:
    async with create_with_config(adapter=MemoryAdapter(), namespace="unit", l1_enabled=False) as cache:
        await cache.set("user:1", {"id": 1})
        await cache.mset({"user:2": 2, "user:3": 3})
        assert await cache.get("user:1") == {"id": 1}
        assert await cache.mget(["user:2", "user:3"]) == {"user:2": 2, "user:3": 3}
        stats = await cache.get_stats()
        assert stats.l1.entries == 0
        assert stats.l1.hits == 0
        assert stats.l2.hits == 3


async def test_disabled_l1_still_runs_a_missing_keys_loader_once() -> None:
    calls = 0

    def load() -> str:
        nonlocal calls
        calls += 1
        return "value"

    async with create_with_config(adapter=MemoryAdapter(), namespace="unit", l1_enabled=False) as cache:
        assert await cache.get("k", load) == "value"
        assert await cache.get("k", load) == "value"
        assert calls == 1


def test_l1_enabled_is_read_from_the_environment() -> None:
    assert CacheConfig.from_env({"CACHE_L1_ENABLED": "false"}).l1_enabled is False
    assert CacheConfig().l1_enabled is True
