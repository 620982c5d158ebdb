"""pytest plugin for applications that use cachetier (loaded through the `pytest11` entry point).

Fixtures:

- `cachetier_cache`: an isolated, started `CacheManager` per test on the backend
  the environment configures (`create_for_testing`: its own namespace and table,
  or a temporary SQLite file), cleared and closed afterwards. Async: it is a
  pytest-asyncio fixture when pytest-asyncio is installed.
- `cachetier_sync_cache`: the same behind a `SyncCache`, for sync code and WSGI apps.
- `cachetier_config`: the `CacheConfig` both start from (`CacheConfig.from_env()`);
  override it in a conftest to pick a backend.
- `cachetier_no_cache` (or the `cachetier_no_cache` marker): decorated functions
  that use the default cache (`set_default_cache`) run on every call, because
  while the test function runs (after all fixtures are set up) the default is a
  cache that stores nothing; the earlier default is put back after it.
  Functions given an explicit `cache=` are not affected.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

import pytest

from cachetier.config import CacheConfig
from cachetier.factory import create_for_testing, create_with_config
from cachetier.manager import CacheManager
from cachetier.protocols import L2Entry
from cachetier.sync import SyncCache

_F = TypeVar("_F", bound=Callable[..., Any])

try:
    import pytest_asyncio

    _fixture: Any = pytest_asyncio.fixture
except ImportError:  # anyio's plugin, or the user's own, runs plain async fixtures
    _fixture = pytest.fixture


def _async_fixture(func: _F) -> _F:
    return cast(_F, _fixture(func))


MARKER = "cachetier_no_cache"
_NO_CACHE = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: decorated functions using the default cache run on every call")


class NullAdapter:
    """An L2 that stores nothing: every read misses, so a cache over it runs each loader."""

    name = "null"

    async def get(self, key: str) -> bytes | None:
        return None

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        return [None] * len(keys)

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        return None

    async def mset(self, entries: Sequence[L2Entry]) -> None:
        return None

    async def delete(self, key: str) -> bool:
        return False

    async def exists(self, key: str) -> bool:
        return False

    async def expire(self, key: str, ttl: float) -> bool:
        return False

    async def incr(self, key: str, by: int, ttl: float) -> int:
        return by

    async def invalidate_tags(self, tags: Sequence[str]) -> int:
        return 0

    async def clear(self, prefix: str) -> int:
        return 0

    async def ping(self) -> None:
        return None

    async def stats(self) -> dict[str, Any]:
        return {}

    async def close(self) -> None:
        return None


@pytest.fixture
def cachetier_config() -> CacheConfig:
    """The configuration the cache fixtures start from: the environment's."""
    return CacheConfig.from_env()


@_async_fixture
async def cachetier_cache(cachetier_config: CacheConfig) -> AsyncIterator[CacheManager]:
    """An isolated, started manager for one test; cleared and closed (its table or file removed) after it."""
    cache = create_for_testing(cachetier_config)
    await cache.start()
    try:
        yield cache
    finally:
        await cache.clear()
        await cache.close()


@pytest.fixture
def cachetier_sync_cache(cachetier_config: CacheConfig) -> Iterator[SyncCache]:
    """`cachetier_cache` behind the blocking facade; its loop thread is stopped after the test."""
    cache = SyncCache(create_for_testing(cachetier_config))
    try:
        yield cache
    finally:
        cache.clear()
        cache.close()


@contextlib.contextmanager
def _default_stores_nothing() -> Iterator[None]:
    from cachetier.integrations import cached_function

    # A SyncCache serves sync functions and, through its manager, async ones (no I/O is ever awaited).
    nothing = SyncCache(create_with_config(CacheConfig(l1_enabled=False), adapter=NullAdapter()))
    previous = getattr(cached_function, "_default_cache", None)
    cached_function.set_default_cache(nothing)
    try:
        yield
    finally:
        cached_function.set_default_cache(previous)
        nothing.close()


@pytest.fixture
def cachetier_no_cache(request: pytest.FixtureRequest) -> None:
    """Decorated functions using the default cache run on every call during this test."""
    request.node.stash[_NO_CACHE] = True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    # Swapped around the call itself, after every fixture (a user's may set the default) has run.
    if item.get_closest_marker(MARKER) is None and not item.stash.get(_NO_CACHE, False):
        yield
        return
    with _default_stores_nothing():
        yield
