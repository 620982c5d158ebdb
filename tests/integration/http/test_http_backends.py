"""The main HTTP cache flow on the real backends: Redis, PostgreSQL (and the default SQLite)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from http_origin import Clock, Origin

from cachetier import CacheConfig, CacheManager, create_for_testing
from cachetier.integrations.asgi import CacheMiddleware


@pytest.fixture(params=["sqlite", "redis", "postgres"])
async def backend_cache(request: pytest.FixtureRequest) -> AsyncIterator[CacheManager]:
    if request.param == "redis":
        config = CacheConfig(adapter="redis", redis_url=request.getfixturevalue("redis_url"))
    elif request.param == "postgres":
        config = CacheConfig(adapter="postgres", database_url=request.getfixturevalue("postgres_dsn"))
    else:
        config = CacheConfig(adapter="sqlite")
    cache = create_for_testing(config)
    yield cache
    await cache.close()


async def test_main_flow_on_each_backend(backend_cache: CacheManager) -> None:
    origin = Origin()
    clock = Clock()
    origin.reply = lambda method, path, headers: (
        200 if method == "GET" else 204,
        [("cache-control", "max-age=10"), ("etag", '"v1"'), ("vary", "Accept"), ("cache-tag", "user:123")],
        [b"body for " + headers.get("accept", "-").encode()],
    )
    middleware = CacheMiddleware(origin, cache=backend_cache, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(middleware), base_url="http://example.test") as client:
        assert (await client.get("/p", headers={"Accept": "a"})).headers["x-cache"] == "MISS"
        hit = await client.get("/p", headers={"Accept": "a"})
        assert (hit.headers["x-cache"], hit.content) == ("HIT", b"body for a")
        assert (await client.get("/p", headers={"Accept": "b"})).headers["x-cache"] == "MISS"
        assert (await client.get("/p", headers={"Accept": "b"})).content == b"body for b"
        assert (await client.get("/p", headers={"Accept": "a", "If-None-Match": '"v1"'})).status_code == 304

        clock.advance(30)
        origin.reply = lambda method, path, headers: (304, [("etag", '"v1"'), ("cache-control", "max-age=10")], [])
        revalidated = await client.get("/p", headers={"Accept": "a"})
        assert (revalidated.headers["x-cache"], revalidated.content) == ("REVALIDATED", b"body for a")

        assert await backend_cache.invalidate_by_tag("user:123") >= 1
        origin.reply = lambda method, path, headers: (200, [("cache-control", "max-age=10")], [b"new"])
        assert (await client.get("/p", headers={"Accept": "a"})).headers["x-cache"] == "MISS"
        assert (await client.get("/p", headers={"Accept": "a"})).headers["x-cache"] == "HIT"
        await client.put("/p")
        assert (await client.get("/p", headers={"Accept": "a"})).headers["x-cache"] == "MISS"
