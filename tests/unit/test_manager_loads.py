"""Loads through the manager: single-flight, timeouts, and never storing over a newer change (one process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cachetier import CacheError, CacheManager, LoaderTimeoutError, SerializationError, create_with_config
from cachetier.adapters.memory import MemoryAdapter


@pytest.fixture
async def cache() -> AsyncIterator[CacheManager]:
    async with create_with_config(adapter=MemoryAdapter(), namespace="unit") as manager:
        yield manager


async def test_writes_to_other_keys_during_a_load_do_not_stop_its_result_being_cached(cache: CacheManager) -> None:
    async def loader() -> str:
        await cache.set("unrelated", 1)
        return "value"

    assert await cache.get("k", loader) == "value"
    assert await cache.exists("k") is True


async def test_l2_read_racing_a_set_never_puts_the_older_value_in_l1() -> None:
    adapter = MemoryAdapter()
    writer = create_with_config(adapter=adapter, namespace="race")
    reader = create_with_config(adapter=adapter, namespace="race")
    try:
        await writer.set("k", "v1")
        original_get = adapter.get

        async def slow_get(key: str) -> bytes | None:
            data = await original_get(key)  # reads v1 ...
            await reader.set("k", "v2")  # ... while the reader's own set lands
            return data

        adapter.get = slow_get  # type: ignore[method-assign]
        assert await reader.get("k") == "v1"
        adapter.get = original_get  # type: ignore[method-assign]
        assert await reader.get("k") == "v2"
    finally:
        await reader.close()
        await writer.close()


async def test_refresh_does_not_store_a_value_loaded_across_an_invalidation(cache: CacheManager) -> None:
    async def loader() -> str:
        await cache.invalidate_by_tag("users")
        return "loaded before the invalidation finished"

    assert await cache.refresh("k", loader, tags=["users"]) == "loaded before the invalidation finished"
    assert await cache.exists("k") is False


async def test_a_get_after_an_invalidation_does_not_join_a_load_that_started_before_it(cache: CacheManager) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def old_loader() -> str:
        started.set()
        await release.wait()
        return "read before the delete"

    first = asyncio.create_task(cache.get("k", old_loader))
    await started.wait()
    await cache.delete("k")  # the source changed: later reads must not see what was read before
    second = asyncio.create_task(cache.get("k", lambda: "read after the delete"))
    await asyncio.sleep(0.01)
    release.set()
    assert await first == "read before the delete"
    assert await second == "read after the delete"
    assert await cache.get("k") == "read after the delete"


async def test_a_cancelled_first_caller_does_not_restart_the_load_for_the_others(cache: CacheManager) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    async def slow() -> str:
        calls.append("slow")
        started.set()
        await release.wait()
        return "loaded once"

    leader = asyncio.create_task(cache.get("k", slow))  # e.g. a request whose client went away
    await started.wait()
    follower = asyncio.create_task(cache.get("k", lambda: calls.append("again") or "loaded twice"))
    await asyncio.sleep(0.01)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    release.set()
    assert await follower == "loaded once"
    assert calls == ["slow"]
    assert await cache.get("k") == "loaded once"


async def test_a_hung_loader_times_out_for_every_waiter_and_stores_nothing(cache: CacheManager) -> None:
    async def hung() -> str:
        await asyncio.sleep(30)
        return "never"

    waiters = [asyncio.create_task(cache.get("k", hung, loader_timeout=0.2)) for _ in range(5)]
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(result, LoaderTimeoutError) for result in results)
    assert isinstance(results[0], CacheError)
    assert await cache.get("k") is None
    assert await cache.get("k", lambda: "later") == "later"


async def test_loader_timeout_comes_from_config_and_spares_a_loaders_own_timeout_error() -> None:
    async def hung() -> str:
        await asyncio.sleep(30)
        return "never"

    async def own_timeout() -> str:
        raise TimeoutError("the database timed out")

    async with create_with_config(adapter=MemoryAdapter(), namespace="unit", loader_timeout=0.1) as cache:
        with pytest.raises(LoaderTimeoutError):
            await cache.get("k", hung)
        with pytest.raises(TimeoutError) as raised:
            await cache.get("j", own_timeout)
        assert not isinstance(raised.value, LoaderTimeoutError)


async def test_a_set_during_a_load_is_not_overwritten_by_the_loaded_value() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def loader() -> str:
        started.set()
        await release.wait()
        return "read before the set"

    adapter = MemoryAdapter()
    async with create_with_config(adapter=adapter, namespace="unit") as cache:
        task = asyncio.create_task(cache.get("k", loader))
        await started.wait()
        await cache.set("k", "written")
        release.set()
        assert await task == "read before the set"
        assert await cache.get("k") == "written"
        other_process = create_with_config(adapter=adapter, namespace="unit")
        assert await other_process.get("k") == "written"


async def test_a_set_during_a_refresh_is_not_overwritten_by_the_refreshed_value(cache: CacheManager) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def loader() -> str:
        started.set()
        await release.wait()
        return "read before the set"

    task = asyncio.create_task(cache.refresh("k", loader))
    await started.wait()
    await cache.set("k", "written")
    release.set()
    assert await task == "read before the set"
    assert await cache.get("k") == "written"


async def test_a_failed_load_gives_its_lease_back_so_the_next_caller_loads_at_once() -> None:
    async def broken() -> str:
        raise RuntimeError("the database is down")

    async with create_with_config(adapter=MemoryAdapter(), namespace="unit", lease_wait=30) as cache:
        with pytest.raises(RuntimeError):
            await cache.get("k", broken)
        with pytest.raises(SerializationError):
            await cache.get("j", lambda: object())
        # With the leases still held, these would wait lease_wait (30 s) and store nothing.
        assert await asyncio.wait_for(cache.get("k", lambda: "loaded"), 5) == "loaded"
        assert await asyncio.wait_for(cache.get("j", lambda: "loaded"), 5) == "loaded"
        assert await cache.get("k") == "loaded"
