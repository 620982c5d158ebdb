"""Fresh hits of plain GETs, which the ASGI middleware serves on its short path, against raw ASGI calls."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from http_origin import Clock, Origin, asgi_call, replying

from cachetier import CacheManager
from cachetier.integrations.asgi import CacheMiddleware

Message = MutableMapping[str, Any]


async def call(app: Any, headers: list[tuple[bytes, bytes]], method: str = "GET") -> list[Message]:
    scope = {
        "type": "http",
        "method": method,
        "path": "/page",
        "raw_path": b"/page",
        "query_string": b"",
        "headers": [(b"host", b"example.test"), *headers],
    }
    return await asgi_call(app, scope)


def header(messages: list[Message], name: bytes) -> list[bytes]:
    return [value for key, value in messages[0]["headers"] if key == name]


async def test_headers_an_outer_middleware_appends_in_place_do_not_leak_into_later_hits(
    cache: CacheManager, clock: Clock, origin: Origin
) -> None:
    middleware = CacheMiddleware(origin, cache=cache, clock=clock)

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        async def stamping(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"].append((b"x-outer", b"1"))  # as Starlette's MutableHeaders does
            await send(message)

        await middleware(scope, receive, stamping)

    responses = [await call(outer, []) for _ in range(3)]
    assert [header(r, b"x-cache") for r in responses] == [[b"MISS"], [b"HIT"], [b"HIT"]]
    assert [header(r, b"x-outer") for r in responses] == [[b"1"], [b"1"], [b"1"]]
    assert origin.calls == 1


async def test_fresh_hit_is_one_start_and_one_complete_body_message(
    cache: CacheManager, clock: Clock, origin: Origin
) -> None:
    middleware = CacheMiddleware(origin, cache=cache, clock=clock)
    await call(middleware, [])
    clock.advance(3)
    hit = await call(middleware, [(b"accept", b"*/*")])
    assert [m["type"] for m in hit] == ["http.response.start", "http.response.body"]
    assert (hit[0]["status"], hit[1]["body"], hit[1]["more_body"]) == (200, b"hello", False)
    assert (header(hit, b"age"), header(hit, b"content-length")) == ([b"3"], [b"5"])


async def test_request_fields_named_in_any_case_still_reach_the_rules(
    cache: CacheManager, clock: Clock, origin: Origin
) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=60"), ("etag", '"v1"')], b"body")
    middleware = CacheMiddleware(origin, cache=cache, clock=clock)
    await call(middleware, [])
    revalidated = await call(middleware, [(b"Cache-Control", b"max-age=0")])
    not_modified = await call(middleware, [(b"If-None-Match", b'"v1"')])
    assert header(revalidated, b"x-cache") == [b"MISS"]  # the origin answered 200 again: a new copy
    assert origin.calls == 2
    assert not_modified[0]["status"] == 304
    assert header(await call(middleware, [], method="HEAD"), b"x-cache") == [b"HIT"]
