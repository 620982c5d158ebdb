"""Which cache a decorated function uses, and from which side (memory L2), counting the underlying calls.

Pins sync functions on a `SyncCache` (single-flight across threads, recursive and nested cached calls,
the mismatches with a `CacheManager` that fail), an async function on a `SyncCache`, and a cache given
as a factory or set with `set_default_cache`, resolved on the first call rather than at decoration.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Iterator

import pytest

from cachetier import CacheManager, create_with_config
from cachetier.adapters.memory import MemoryAdapter
from cachetier.errors import ConfigError
from cachetier.integrations.decorators import cache_method, set_default_cache
from cachetier.sync import SyncCache
from decorator_support import Calls, fixture_cache  # noqa: F401 (fixture_cache: the `cache` fixture)


@pytest.fixture
def sync_cache() -> Iterator[SyncCache]:
    with SyncCache(create_with_config(adapter=MemoryAdapter(), namespace="syncdecorators")) as facade:
        yield facade


# -- sync functions --------------------------------------------------------------------


def test_sync_function_with_a_sync_cache(sync_cache: SyncCache) -> None:
    calls = Calls()

    @cache_method(cache=sync_cache, tags=["n:{n}"])
    def fib(n: int) -> int:
        calls(n)
        a, b = 0, 1
        for _ in range(n):
            a, b = b, a + b
        return a

    assert fib(20) == 6765
    assert fib(20) == 6765
    assert calls.count == 1
    assert fib.invalidate(20) is True
    assert fib.invalidate(20) is False
    assert fib.refresh(20) == 6765
    assert calls.count == 2
    assert fib(19) == 4181
    assert sync_cache.invalidate_by_tag("n:19") == 1
    assert fib(19) == 4181
    assert fib(20) == 6765
    assert calls.count == 4
    assert not inspect.iscoroutinefunction(fib)


def test_recursive_cached_sync_functions_do_not_exhaust_threads(sync_cache: SyncCache) -> None:
    calls = Calls()

    @cache_method(cache=sync_cache)
    def fib(n: int) -> int:
        calls(n)
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    assert fib(30) == 832040  # finishes: nested loaders run in the calling thread
    assert fib(30) == 832040


async def test_a_result_is_cached_even_when_computing_it_cached_another_call(cache: CacheManager) -> None:
    calls = Calls()

    @cache_method(cache=cache)
    async def inner(x: int) -> int:
        return x

    @cache_method(cache=cache)
    async def outer(x: int) -> int:
        calls(x)
        return await inner(x) + 1

    await outer(1)
    await outer(1)
    assert calls.count == 1


def test_concurrent_sync_callers_run_the_function_once(sync_cache: SyncCache) -> None:
    calls = Calls()

    @cache_method(cache=sync_cache)
    def slow(x: int) -> int:
        calls(x)
        time.sleep(0.2)
        return x

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(slow(3))) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [3] * 5
    assert calls.count == 1


async def test_sync_function_given_a_cache_manager_fails_at_decoration(cache: CacheManager) -> None:
    with pytest.raises(TypeError, match="SyncCache"):

        @cache_method(cache=cache)
        def compute(x: int) -> int:
            return x


def test_sync_function_whose_cache_factory_returns_a_manager_fails_at_call() -> None:
    manager = create_with_config(adapter=MemoryAdapter())

    @cache_method(cache=lambda: manager)
    def compute(x: int) -> int:
        return x

    with pytest.raises(TypeError, match="SyncCache"):
        compute(1)
    asyncio.run(manager.close())


async def test_async_function_can_use_a_sync_caches_manager() -> None:
    facade = SyncCache(create_with_config(adapter=MemoryAdapter()))
    calls = Calls()

    @cache_method(cache=facade)
    async def value(x: int) -> int:
        calls(x)
        return x

    try:
        assert await value(1) == 1
        assert await value(1) == 1
        assert calls.count == 1
    finally:
        await asyncio.to_thread(facade.close)


# -- resolving the cache lazily -------------------------------------------------------


async def test_a_cache_factory_is_called_on_first_call_not_at_decoration(cache: CacheManager) -> None:
    made = Calls()

    def factory() -> CacheManager:
        made()
        return cache

    @cache_method(cache=factory)
    async def one(x: int) -> int:
        return x

    assert made.count == 0
    await one(1)
    await one(2)
    assert made.count == 1


async def test_a_call_before_any_default_cache_is_set_raises_config_error(cache: CacheManager) -> None:
    set_default_cache(None)

    @cache_method(tags=["lazy"])
    async def one(x: int) -> int:
        return x

    with pytest.raises(ConfigError, match=r"set_default_cache"):
        await one(1)
    set_default_cache(cache)  # bound lazily: the same function works once the app sets its cache
    try:
        assert await one(1) == 1
        assert await cache.invalidate_by_tag("lazy") == 1
    finally:
        set_default_cache(None)


async def test_set_default_cache_is_used_when_no_cache_is_given(cache: CacheManager) -> None:
    calls = Calls()

    @cache_method(tags=["d"])
    async def one(x: int) -> int:
        calls(x)
        return x

    set_default_cache(cache)
    try:
        await one(1)
        await one(1)
        assert calls.count == 1
        assert await cache.invalidate_by_tag("d") == 1
    finally:
        set_default_cache(None)
