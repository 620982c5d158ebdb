"""Policy of CacheManager over the in-process memory adapter (no I/O)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from cachetier import (
    MAX_KEY_BYTES,
    CacheConfig,
    CacheManager,
    InvalidKeyError,
    InvalidTagError,
    InvalidTTLError,
    NotAnIntegerError,
    SerializationError,
    create_with_config,
)
from cachetier.adapters.memory import MemoryAdapter
from cachetier.protocols import L2Entry
from cachetier.sentinel import MISS


@pytest.fixture
async def cache() -> AsyncIterator[CacheManager]:
    async with create_with_config(adapter=MemoryAdapter(), namespace="unit") as manager:
        yield manager


async def test_set_then_get_returns_value(cache: CacheManager) -> None:
    await cache.set("user:1", {"name": "John", "born": dt.date(1990, 1, 2)}, ttl=60)
    assert await cache.get("user:1") == {"name": "John", "born": dt.date(1990, 1, 2)}


async def test_get_of_missing_key_returns_default(cache: CacheManager) -> None:
    assert await cache.get("absent") is None
    assert await cache.get("absent", default="fallback") == "fallback"


async def test_cached_none_is_returned_not_treated_as_miss(cache: CacheManager) -> None:
    await cache.set("nothing", None)
    calls = 0

    def loader() -> str:
        nonlocal calls
        calls += 1
        return "loaded"

    assert await cache.get("nothing", loader) is None
    assert calls == 0


async def test_loader_runs_only_on_miss_and_result_is_stored(cache: CacheManager) -> None:
    calls = 0

    async def loader() -> int:
        nonlocal calls
        calls += 1
        return 42

    assert await cache.get("answer", loader, ttl=60) == 42
    assert await cache.get("answer", loader, ttl=60) == 42
    assert calls == 1


async def test_concurrent_misses_run_loader_once(cache: CacheManager) -> None:
    calls = 0

    async def loader() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "value"

    results = await asyncio.gather(*(cache.get("hot", loader) for _ in range(100)))
    assert results == ["value"] * 100
    assert calls == 1


async def test_loader_exception_reaches_every_waiter_and_nothing_is_stored(cache: CacheManager) -> None:
    async def loader() -> str:
        await asyncio.sleep(0.02)
        raise RuntimeError("database down")

    results = await asyncio.gather(*(cache.get("bad", loader) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(result, RuntimeError) for result in results)
    assert await cache.exists("bad") is False


async def test_loader_result_is_not_stored_when_invalidated_during_load(cache: CacheManager) -> None:
    started = asyncio.Event()

    async def loader() -> str:
        started.set()
        await asyncio.sleep(0.05)
        return "computed before the delete"

    task = asyncio.create_task(cache.get("k", loader))
    await started.wait()
    await cache.delete("k")
    assert await task == "computed before the delete"
    assert await cache.get("k") is None


async def test_delete_removes_from_both_tiers(cache: CacheManager) -> None:
    await cache.set("k", 1)
    assert await cache.delete("k") is True
    assert await cache.get("k") is None
    assert await cache.delete("k") is False


async def test_invalidate_by_tag_removes_entries_from_l1_and_l2(cache: CacheManager) -> None:
    await cache.set("u1", 1, tags=["users"])
    await cache.set("u2", 2, tags=["users", "admins"])
    await cache.set("p1", 3, tags=["posts"])
    assert await cache.invalidate_by_tag("users") == 2
    assert await cache.mget(["u1", "u2", "p1"]) == {"p1": 3}
    assert await cache.invalidate_by_tags(["posts", "admins"]) == 1


async def test_tags_belong_to_the_cache_whatever_namespace_the_key_is_under(cache: CacheManager) -> None:
    await cache.set("a", 1, tags=["t"])
    await cache.set("a", 2, tags=["t"], namespace="other")
    await cache.set("b", 3, tags=["kept"], namespace="other")
    assert await cache.invalidate_by_tag("t") == 2
    assert await cache.get("a") is None
    assert await cache.get("a", namespace="other") is None
    assert await cache.get("b", namespace="other") == 3


async def test_a_value_reads_back_the_same_from_l1_and_l2() -> None:
    adapter = MemoryAdapter()
    async with (
        create_with_config(adapter=adapter, namespace="same") as writer,
        create_with_config(adapter=adapter, namespace="same") as reader,
    ):
        assert await writer.set("p", (1, 2)) is True
        assert await writer.get("p") == await reader.get("p") == [1, 2]
        assert await writer.get("q", lambda: (1, 2)) == [1, 2]  # the loader's caller too
        assert await writer.get("q") == await reader.get("q") == [1, 2]
        await writer.mset({"m": (3, 4)})
        assert await writer.mget(["m"]) == await reader.mget(["m"]) == {"m": [3, 4]}


async def test_mset_takes_the_seeds_entries(cache: CacheManager) -> None:
    assert await cache.mset([{"key": "a", "value": 1, "options": {"ttl": 60, "tags": ["t"]}}, {"key": "b", "value": 2}])
    assert await cache.mget(["a", "b"]) == {"a": 1, "b": 2}
    assert await cache.invalidate_by_tag("t") == 1


async def test_l2_hit_fills_l1_with_the_entry_tags() -> None:
    adapter = MemoryAdapter()
    writer = create_with_config(adapter=adapter, namespace="w")
    await writer.set("k", "v", tags=["t"])
    reader = create_with_config(adapter=adapter, namespace="w")
    try:
        assert await reader.get("k") == "v"
        assert (await reader.get_stats()).l1.entries == 1
        await adapter.set("w:k", b"\x01junk", 60)  # L2 changes behind the reader's back
        assert await reader.invalidate_by_tag("t") >= 1
        assert await reader.get("k") is None
    finally:
        await reader.close()
        await writer.close()


async def test_mget_returns_only_hits_and_mset_accepts_tuples_with_options(cache: CacheManager) -> None:
    await cache.mset([("a", 1), ("b", 2, {"ttl": 60, "tags": ["t"]})], ttl=30)
    await cache.mset({"c": 3})
    assert await cache.mget(["a", "b", "c", "d"]) == {"a": 1, "b": 2, "c": 3}
    assert await cache.invalidate_by_tag("t") == 1


async def test_increment_and_decrement_are_integer_counters(cache: CacheManager) -> None:
    assert await cache.increment("n") == 1
    assert await cache.increment("n", by=5) == 6
    assert await cache.decrement("n", by=2) == 4
    assert await cache.get("n") == 4
    await cache.set("s", "text")
    with pytest.raises(NotAnIntegerError):
        await cache.increment("s")


async def test_expire_changes_ttl_and_reports_absent_keys(cache: CacheManager) -> None:
    await cache.set("k", 1, ttl=60)
    assert await cache.expire("k", 0.1) is True
    await asyncio.sleep(0.2)
    assert await cache.get("k") is None
    assert await cache.expire("absent", 5) is False


async def test_entry_expires_from_both_tiers_after_ttl(cache: CacheManager) -> None:
    await cache.set("k", 1, ttl=0.1)
    assert await cache.get("k") == 1
    await asyncio.sleep(0.2)
    assert await cache.get("k") is None


async def test_clear_removes_only_own_namespace(cache: CacheManager) -> None:
    await cache.set("a", 1)
    await cache.set("a", 2, namespace="keep")
    await cache.clear()
    assert await cache.get("a") is None
    assert await cache.get("a", namespace="keep") == 2


async def test_refresh_reloads_even_when_cached(cache: CacheManager) -> None:
    await cache.set("k", "old")
    assert await cache.refresh("k", lambda: "new") == "new"
    assert await cache.get("k") == "new"


async def test_cache_aside_handle_gets_refreshes_and_invalidates(cache: CacheManager) -> None:
    version = 0

    async def load() -> int:
        nonlocal version
        version += 1
        return version

    handle = cache.cache_aside("profile", load, ttl=60, tags=["users"])
    assert await handle.get() == 1
    assert await handle.get() == 1
    assert await handle.refresh() == 2
    assert await handle.invalidate() is True
    assert await handle.get() == 3


@pytest.mark.parametrize(
    "key", ["", "nul\x00byte", 123, None, b"bytes", "x" * (MAX_KEY_BYTES + 1), "é" * (MAX_KEY_BYTES // 2 + 1)]
)
async def test_invalid_keys_raise_invalid_key_error(cache: CacheManager, key: Any) -> None:
    with pytest.raises(InvalidKeyError):
        await cache.set(key, 1)
    with pytest.raises(InvalidKeyError):
        await cache.get(key)


async def test_get_with_an_unknown_keyword_raises_type_error(cache: CacheManager) -> None:
    await cache.set("k", 1)
    with pytest.raises(TypeError, match="unexpected keyword argument 'nmespace'"):
        await cache.get("k", nmespace="other")  # type: ignore[call-overload]


@pytest.mark.parametrize("ttl", [0, -1, float("inf"), float("nan"), "60", True, 1e20])
async def test_invalid_ttls_raise_invalid_ttl_error(cache: CacheManager, ttl: Any) -> None:
    with pytest.raises(InvalidTTLError):
        await cache.set("k", 1, ttl=ttl)


async def test_invalid_tags_raise_invalid_tag_error(cache: CacheManager) -> None:
    with pytest.raises(InvalidTagError):
        await cache.set("k", 1, tags="users")  # a str, not a list of tags
    with pytest.raises(InvalidTagError):
        await cache.set("k", 1, tags=[""])


async def test_unencodable_value_raises_and_stores_nothing(cache: CacheManager) -> None:
    with pytest.raises(SerializationError):
        await cache.set("k", object())
    assert await cache.exists("k") is False


async def test_stats_have_the_documented_shape(cache: CacheManager) -> None:
    await cache.set("k", 1)
    await cache.get("k")
    await cache.get("absent")
    stats = (await cache.get_stats()).to_dict()
    assert stats["adapter"] == "memory"
    assert set(stats["l1"]) == {"entries", "hits", "requests", "hit_rate"}
    assert set(stats["l2"]) == {"healthy", "latency_ms", "stats"}
    assert {"total_entries", "hit_rate", "memory_usage"} <= set(stats["combined"])
    assert stats["l1"]["hits"] == 1
    assert stats["l1"]["requests"] == 2


async def test_closed_cache_refuses_calls() -> None:
    cache = create_with_config(adapter=MemoryAdapter())
    await cache.close()
    await cache.close()
    with pytest.raises(Exception, match="closed"):
        await cache.set("k", 1)


async def test_compression_round_trips_large_values() -> None:
    async with create_with_config(CacheConfig(enable_compression=True), adapter=MemoryAdapter()) as cache:
        await cache.set("big", "y" * 50_000)
        assert await cache.get("big") == "y" * 50_000


async def test_increment_by_a_non_integer_raises_a_cache_error(cache: CacheManager) -> None:
    with pytest.raises(NotAnIntegerError):
        await cache.increment("n", "1")  # type: ignore[arg-type]
    with pytest.raises(NotAnIntegerError):
        await cache.increment("n", 1.5)  # type: ignore[arg-type]


async def test_mget_of_a_full_l1_copies_keys_it_saw_lately_not_first_sightings() -> None:
    config = CacheConfig(namespace="unit", max_memory_entries=10)
    async with create_with_config(config, adapter=MemoryAdapter()) as cache:
        await cache.mset({"k0": 0, "k1": 1})
        await cache.mset({f"filler{i}": i for i in range(30)})  # L1 keeps 10 fillers; its ghost list, 10 more
        assert await cache.mget(["k0", "k1"]) == {"k0": 0, "k1": 1}  # not seen lately: only remembered
        assert [cache.get_local(key) for key in ("k0", "k1")] == [MISS, MISS]
        assert await cache.mget(["k0", "k1"]) == {"k0": 0, "k1": 1}  # seen lately: copied to L1
        assert [cache.get_local(key) for key in ("k0", "k1")] == [0, 1]


class _ReplyLost(MemoryAdapter):
    """Applies a change, then never answers: the call is cancelled with its change already made."""

    hang = False

    async def _after(self) -> None:
        if self.hang:
            await asyncio.Event().wait()

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        await super().set(key, value, ttl, tags)
        await self._after()

    async def mset(self, entries: Sequence[L2Entry]) -> None:
        await super().mset(entries)
        await self._after()

    async def delete(self, key: str) -> bool:
        removed = await super().delete(key)
        await self._after()
        return removed

    async def invalidate_tags(self, tags: Sequence[str]) -> int:
        removed = await super().invalidate_tags(tags)
        await self._after()
        return removed


@pytest.mark.parametrize("change", ["set", "mset", "delete", "invalidate_by_tag"])
async def test_a_change_cancelled_after_it_reached_l2_leaves_no_older_l1_copy(change: str) -> None:
    adapter = _ReplyLost()
    async with create_with_config(adapter=adapter, namespace="unit") as cache:
        await cache.set("k", "old", tags=["t"])
        assert await cache.get("k") == "old"  # in L1
        adapter.hang = True
        call = {
            "set": lambda: cache.set("k", "new"),
            "mset": lambda: cache.mset({"k": "new"}),
            "delete": lambda: cache.delete("k"),
            "invalidate_by_tag": lambda: cache.invalidate_by_tag("t"),
        }[change]
        task = asyncio.ensure_future(call())
        await asyncio.sleep(0.01)  # L2 has the change; its reply never comes
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        adapter.hang = False
        assert await cache.get("k") == ("new" if change in ("set", "mset") else None)
