"""`l1_enabled=False`: every read goes to L2 and nothing is kept in process."""

from __future__ import annotations

import datetime as dt

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


async def test_disabled_l1_reads_every_stored_form_and_treats_unreadable_bytes_as_a_miss() -> None:
    adapter = MemoryAdapter()
    async with create_with_config(adapter=adapter, namespace="unit", l1_enabled=False) as cache:
        await cache.increment("hits", 3)
        await cache.set("big", "x" * 20_000, compress=True)
        await cache.set("when", {"at": dt.datetime(2026, 11, 24, 9, 30)})
        await cache.set("tagged", [1, 2], tags=["t"])
        await adapter.set("unit:junk", b"\x01\x00\x01 not a frame", 60)
        assert await cache.get("hits") == 3
        assert await cache.get("big") == "x" * 20_000
        assert await cache.get("when") == {"at": dt.datetime(2026, 11, 24, 9, 30)}
        assert await cache.get("tagged") == [1, 2]
        assert await cache.get("junk", default="missed") == "missed"
        everything = ["hits", "big", "when", "tagged", "junk"]
        assert await cache.mget(everything) == {
            "hits": 3,
            "big": "x" * 20_000,
            "when": {"at": dt.datetime(2026, 11, 24, 9, 30)},
            "tagged": [1, 2],
        }
        await cache.invalidate_by_tag("t")
        assert await cache.get("tagged") is None
