"""Fixtures: a memory-backed cache, a fake clock, a scriptable origin, and clients around the middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from http_origin import Clock, Origin

from cachetier import CacheManager, create_with_config
from cachetier.adapters.memory import MemoryAdapter
from cachetier.integrations.asgi import CacheMiddleware


@pytest.fixture
async def cache() -> AsyncIterator[CacheManager]:
    manager = create_with_config(adapter=MemoryAdapter())
    yield manager
    await manager.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def origin() -> Origin:
    return Origin()


@pytest.fixture
def make_client(
    cache: CacheManager, clock: Clock, origin: Origin
) -> Callable[..., tuple[httpx.AsyncClient, CacheMiddleware]]:
    def make(**settings: Any) -> tuple[httpx.AsyncClient, CacheMiddleware]:
        middleware = CacheMiddleware(origin, cache=cache, clock=clock, **settings)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(middleware), base_url="http://example.test")
        return client, middleware

    return make


@pytest.fixture
async def client(
    make_client: Callable[..., tuple[httpx.AsyncClient, CacheMiddleware]],
) -> AsyncIterator[httpx.AsyncClient]:
    http, _ = make_client()
    async with http:
        yield http
