"""The apps `bench.http_load` serves under uvicorn (one process per app).

`cachetier_app`: Starlette with `/const` (a bare constant), `/uncached` (a 5 ms
handler) and `/cached/item` (the same handler behind `CacheMiddleware`, on a
cache over Redis with its L1 on). `fastapi_cache_app`: the same 5 ms handler
under fastapi-cache2's `@cache` over Redis, as its README sets it up.
Keys go under the run prefix in `BENCH_RUN`; the load driver removes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from cachetier import CacheConfig, create_cache

REDIS_URL = "redis://127.0.0.1:6379/0"
HANDLER_SECONDS = 0.005
BODY = {"id": 1, "name": "item", "tags": ["a", "b"], "price": 9.5}


def _run() -> str:
    return os.environ.get("BENCH_RUN", "local")


async def const(request: Request) -> Response:
    return PlainTextResponse("ok")


async def slow(request: Request) -> Response:
    await asyncio.sleep(HANDLER_SECONDS)
    return JSONResponse(BODY, headers={"Cache-Control": "public, max-age=60"})


def cachetier_app() -> Starlette:
    from cachetier.integrations.asgi import CacheMiddleware

    cache = create_cache(CacheConfig(adapter="redis", redis_url=REDIS_URL, namespace=f"bench{_run()}http"))
    cached = CacheMiddleware(Starlette(routes=[Route("/item", slow)]), cache=cache)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await cache.start()
        yield
        await cache.clear()
        await cache.close()

    routes = [Route("/const", const), Route("/uncached", slow), Mount("/cached", app=cached)]
    return Starlette(routes=routes, lifespan=lifespan)


def fastapi_cache_app() -> Any:
    from fastapi import FastAPI
    from fastapi_cache import FastAPICache
    from fastapi_cache.backends.redis import RedisBackend
    from fastapi_cache.decorator import cache
    from redis.asyncio import Redis

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = Redis.from_url(REDIS_URL)
        FastAPICache.init(RedisBackend(client), prefix=f"bench{_run()}fc")
        yield
        await FastAPICache.clear()
        await client.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/cached/item")
    @cache(expire=60)
    async def item() -> dict[str, Any]:
        await asyncio.sleep(HANDLER_SECONDS)
        return BODY

    return app
