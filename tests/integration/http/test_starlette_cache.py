"""The ASGI middleware added to Starlette and FastAPI apps, through httpx's ASGI transport."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Response
from http_origin import Clock
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from cachetier import CacheManager, create_for_testing
from cachetier.integrations.asgi import CacheMiddleware, purge_endpoint


def starlette_app(cache: CacheManager, clock: Clock, calls: list[str]) -> Starlette:
    async def page(request: Request) -> PlainTextResponse:
        calls.append(request.url.path)
        return PlainTextResponse(
            f"page {request.path_params['name']}",
            headers={"Cache-Control": "max-age=60", "Cache-Tag": f"page:{request.path_params['name']}"},
        )

    async def stream(request: Request) -> StreamingResponse:
        calls.append(request.url.path)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b"x" * 1000

        return StreamingResponse(chunks(), headers={"Cache-Control": "max-age=60"})

    app = Starlette(routes=[Route("/pages/{name}", page), Route("/stream", stream)])
    app.add_middleware(CacheMiddleware, cache=cache, clock=clock, max_body_size=2500)
    return app


async def test_starlette_miss_then_hit_and_tag_purge() -> None:
    cache = create_for_testing()  # isolated SQLite
    calls: list[str] = []
    clock = Clock()
    app = starlette_app(cache, clock, calls)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client:
            first = await client.get("/pages/a")
            clock.advance(3)
            second = await client.get("/pages/a")
            assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
            assert second.text == first.text == "page a"
            assert second.headers["age"] == "3"
            assert calls == ["/pages/a"]
            await cache.invalidate_by_tag("page:a")
            assert (await client.get("/pages/a")).headers["x-cache"] == "MISS"
    finally:
        await cache.close()


async def test_starlette_streaming_response_over_the_limit_is_not_stored() -> None:
    cache = create_for_testing()
    calls: list[str] = []
    app = starlette_app(cache, Clock(), calls)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client:
            first = await client.get("/stream")
            second = await client.get("/stream")
            assert first.content == second.content == b"x" * 4000
            assert [first.headers["x-cache"], second.headers["x-cache"]] == ["BYPASS", "BYPASS"]
            assert calls == ["/stream", "/stream"]
    finally:
        await cache.close()


async def test_fastapi_app_and_purge_endpoint() -> None:
    cache = create_for_testing()
    api = FastAPI()
    calls: list[int] = []

    @api.get("/users/{user_id}")
    async def user(user_id: int, response: Response) -> dict[str, int]:
        calls.append(user_id)
        response.headers["Cache-Control"] = "public, max-age=300"
        response.headers["Cache-Tag"] = f"user:{user_id}"
        return {"id": user_id}

    api.add_middleware(CacheMiddleware, cache=cache)
    api.mount("/_purge", purge_endpoint(cache, token="s3cret"))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://testserver") as client:
            assert (await client.get("/users/123")).json() == {"id": 123}
            assert (await client.get("/users/123")).headers["x-cache"] == "HIT"
            assert (await client.post("/_purge/", json={"tags": ["user:123"]})).status_code == 401
            wrong = await client.post("/_purge/", json={"tags": ["user:123"]}, headers={"Authorization": "Bearer no"})
            assert wrong.status_code == 403
            bad = await client.post("/_purge/", json={"tag": "x"}, headers={"Authorization": "Bearer s3cret"})
            assert bad.status_code == 400
            ok = await client.post("/_purge/", json={"tags": ["user:123"]}, headers={"Authorization": "Bearer s3cret"})
            assert ok.status_code == 200
            assert ok.json()["purged"] >= 1
            assert (await client.get("/users/123")).headers["x-cache"] == "MISS"
            assert calls == [123, 123]
    finally:
        await cache.close()
