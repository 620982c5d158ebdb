"""The apps `bench.http_load` serves under uvicorn (one process per app).

`cachetier_app`: Starlette with `/const` (a bare constant), `/uncached` (a 5 ms
handler), `/cached/item` (the same handler behind `CacheMiddleware`, on a
cache over Redis in its default configuration) and `/hishel/item` (the same
handler behind hishel's `ASGICacheMiddleware` with its default storage, SQLite,
in a temporary file), plus `/shaped`, a bare route sending the
very status, headers and body of a `/cached/item` hit. `fastapi_cache_app`:
the same 5 ms handler under fastapi-cache2's `@cache` over Redis, as its
README sets it up. Keys go under the run prefix in `BENCH_RUN`; the load
driver removes them.

What is compared: `/const` is the first `Route` of the app, `/cached/item` a
`Mount` after two routes, so the router tries (and fails) two patterns before
it reaches the middleware, as an app mounting a cached sub-tree does. A hit
sends seven fields and 51 bytes where `/const` sends two and 2, and the
server writes every field line; `/shaped` shows what that response costs
without any cache (it is routed after the `Mount`, so it adds no pattern in
front of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
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


SHAPED_BODY = b'{"id":1,"name":"item","tags":["a","b"],"price":9.5}'
SHAPED_HEADERS = {
    "cache-control": "public, max-age=60",
    "content-type": "application/json",
    "date": "Tue, 24 Nov 2026 10:00:00 GMT",
    "etag": '"0bf8ca2de61925e4"',
    "age": "0",
    "x-cache": "HIT",
}


async def shaped(request: Request) -> Response:
    return Response(SHAPED_BODY, headers=SHAPED_HEADERS)


async def slow(request: Request) -> Response:
    await asyncio.sleep(HANDLER_SECONDS)
    return JSONResponse(BODY, headers={"Cache-Control": "public, max-age=60"})


def hishel_path(run: str) -> Path:
    return Path(tempfile.gettempdir()) / f"bench-{run}-hishel.db"


def remove_hishel_files(run: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            Path(f"{hishel_path(run)}{suffix}").unlink()


def cachetier_app() -> Starlette:
    from hishel import AsyncSqliteStorage
    from hishel.asgi import ASGICacheMiddleware

    from cachetier.integrations.asgi import CacheMiddleware

    cache = create_cache(CacheConfig(adapter="redis", redis_url=REDIS_URL, namespace=f"bench{_run()}http"))
    cached = CacheMiddleware(Starlette(routes=[Route("/item", slow)]), cache=cache)
    storage = AsyncSqliteStorage(database_path=hishel_path(_run()))
    hishel = ASGICacheMiddleware(Starlette(routes=[Route("/item", slow)]), storage=storage)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await cache.start()
        yield
        await cache.clear()
        await cache.close()

    routes = [
        Route("/const", const),
        Route("/uncached", slow),
        Mount("/cached", app=cached),
        Route("/shaped", shaped),
        Mount("/hishel", app=hishel),
    ]
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
