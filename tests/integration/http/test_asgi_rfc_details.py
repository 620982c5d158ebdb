"""Finer RFC 9111 points, through the ASGI middleware."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from typing import Any

import httpx
import pytest
from http_origin import Clock, Origin, replying

from cachetier import CacheManager
from cachetier.integrations.asgi import CacheMiddleware, purge_endpoint
from cachetier.integrations.http_cache.purge import MAX_PURGE_BODY


async def test_stored_copy_omits_hop_by_hop_and_connection_listed_fields(
    client: httpx.AsyncClient, origin: Origin
) -> None:
    origin.reply = replying(
        200,
        [("cache-control", "max-age=60"), ("connection", "a, b"), ("a", "1"), ("b", "2"), ("c", "3"), ("upgrade", "x")],
        b"x",
    )
    await client.get("/page")
    hit = await client.get("/page")
    assert hit.headers["x-cache"] == "HIT"
    assert hit.headers["c"] == "3"
    for name in ("connection", "a", "b", "upgrade"):
        assert name not in hit.headers


async def test_qualified_no_cache_and_private_strip_the_named_fields(client: httpx.AsyncClient, origin: Origin) -> None:
    origin.reply = replying(
        200,
        [("cache-control", 'max-age=60, no-cache="a", private="b"'), ("a", "1"), ("b", "2"), ("c", "3")],
        b"x",
    )
    first = await client.get("/page")
    assert first.headers["a"] == "1"  # the response it came with is passed on whole
    hit = await client.get("/page")
    assert hit.headers["x-cache"] == "HIT"
    assert ("a" in hit.headers, "b" in hit.headers, hit.headers["c"]) == (False, False, "3")


async def test_date_is_added_when_the_app_sends_none_and_sent_when_asked(
    make_client: Callable[..., tuple[httpx.AsyncClient, CacheMiddleware]],
) -> None:
    client, _ = make_client(send_date=True)
    async with client:
        assert (await client.get("/page")).headers["date"] == "Tue, 14 Nov 2023 22:13:20 GMT"


async def test_date_is_left_to_the_server_by_default_and_age_still_counts(
    client: httpx.AsyncClient, clock: Clock
) -> None:
    first = await client.get("/page")
    clock.advance(7)
    hit = await client.get("/page")
    assert hit.headers["x-cache"] == "HIT"
    assert "date" not in first.headers  # uvicorn and co. add their own; two would break RFC 9110 6.6.1
    assert "date" not in hit.headers
    assert hit.headers["age"] == "7"


async def test_request_no_store_may_be_served_but_is_never_stored(client: httpx.AsyncClient, origin: Origin) -> None:
    await client.get("/a", headers={"Cache-Control": "no-store"})
    assert (await client.get("/a")).headers["x-cache"] == "MISS"
    assert (await client.get("/a", headers={"Cache-Control": "no-store"})).headers["x-cache"] == "HIT"


async def test_authorized_request_never_uses_a_non_shareable_entrys_validators(
    client: httpx.AsyncClient, origin: Origin
) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=60"), ("etag", '"shared"')], b"anonymous")
    await client.get("/page")
    origin.reply = replying(200, [("cache-control", "max-age=60"), ("etag", '"mine"')], b"personal")
    response = await client.get("/page", headers={"Authorization": "Bearer t"})
    assert response.content == b"personal"
    assert "if-none-match" not in origin.seen[-1][2]


async def test_unknown_methods_invalidate_like_unsafe_ones(client: httpx.AsyncClient, origin: Origin) -> None:
    await client.get("/page")
    origin.reply = replying(200, [], b"ok")
    await client.request("M-SEARCH", "/page")
    origin.reply = replying(200, [("cache-control", "max-age=60")], b"hello")
    assert (await client.get("/page")).headers["x-cache"] == "MISS"


async def test_heuristic_freshness_from_last_modified(client: httpx.AsyncClient, origin: Origin, clock: Clock) -> None:
    origin.reply = replying(200, [("last-modified", "Tue, 14 Nov 2023 21:13:20 GMT")], b"x")  # an hour before T0
    await client.get("/page")
    clock.advance(300)
    assert (await client.get("/page")).headers["x-cache"] == "HIT"
    clock.advance(400)  # past 10% of an hour: revalidated with If-Modified-Since
    origin.reply = replying(304, [])
    assert (await client.get("/page")).headers["x-cache"] == "REVALIDATED"
    assert origin.seen[-1][2]["if-modified-since"] == "Tue, 14 Nov 2023 21:13:20 GMT"


async def test_conditional_client_request_on_stale_entry_gets_304_after_validation(
    client: httpx.AsyncClient, origin: Origin, clock: Clock
) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=1"), ("etag", '"v1"')], b"x")
    await client.get("/page")
    clock.advance(10)
    origin.reply = replying(304, [("etag", '"v1"'), ("cache-control", "max-age=60")])
    response = await client.get("/page", headers={"If-None-Match": '"v1"'})
    assert response.status_code == 304
    assert response.headers["x-cache"] == "REVALIDATED"


async def test_followers_are_released_once_the_leaders_response_streams_unstored(cache: CacheManager) -> None:
    gate = asyncio.Event()
    calls = 0

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        nonlocal calls
        calls += 1
        await send({"type": "http.response.start", "status": 200, "headers": [(b"cache-control", b"no-store")]})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        if calls == 1:
            await gate.wait()  # the leader's body is still streaming
        await send({"type": "http.response.body", "body": b"-end", "more_body": False})

    middleware = CacheMiddleware(app, cache=cache)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(middleware), base_url="http://example.test") as client:
        leader = asyncio.ensure_future(client.get("/page"))
        await asyncio.sleep(0.01)
        follower = await asyncio.wait_for(client.get("/page"), timeout=5)
        assert follower.content == b"first-end"
        gate.set()
        assert (await leader).content == b"first-end"
    assert calls == 2


async def test_tag_header_kept_when_not_stripped_and_custom_name(
    make_client: Any, origin: Origin, cache: CacheManager
) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=60"), ("x-tags", "a, b")], b"x")
    client, _ = make_client(tag_header="X-Tags", strip_tag_header=False)
    async with client:
        assert (await client.get("/page")).headers["x-tags"] == "a, b"
        assert (await client.get("/page")).headers["x-tags"] == "a, b"
        await cache.invalidate_by_tag("b")
        assert (await client.get("/page")).headers["x-cache"] == "MISS"


async def test_head_response_updates_the_stored_get_when_validators_agree(
    client: httpx.AsyncClient, origin: Origin, clock: Clock
) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=10"), ("etag", '"v1"'), ("x-v", "1")], b"body")
    await client.get("/page")
    clock.advance(20)
    origin.reply = replying(200, [("cache-control", "max-age=100"), ("etag", '"v1"'), ("x-v", "2")])
    assert (await client.head("/page", headers={"Cache-Control": "no-cache"})).headers["x-cache"] == "MISS"
    updated = await client.get("/page")
    assert (updated.headers["x-cache"], updated.headers["x-v"], updated.content) == ("HIT", "2", b"body")


async def test_head_response_with_other_validators_invalidates_the_stored_get(
    client: httpx.AsyncClient, origin: Origin, clock: Clock
) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=10"), ("etag", '"v1"')], b"body")
    await client.get("/page")
    clock.advance(20)
    origin.reply = replying(200, [("cache-control", "max-age=100"), ("etag", '"v2"')])
    await client.head("/page")
    origin.reply = replying(200, [("cache-control", "max-age=100"), ("etag", '"v2"')], b"new")
    fetched = await client.get("/page", headers={"Cache-Control": "max-stale"})
    assert (fetched.headers["x-cache"], fetched.content) == ("MISS", b"new")


async def test_stale_on_error_setting_serves_stale_without_stale_if_error(
    make_client: Any, origin: Origin, clock: Clock
) -> None:
    client, _ = make_client(stale_on_error=300)
    async with client:
        await client.get("/page")
        clock.advance(100)
        origin.reply = replying(502, [], b"bad gateway")
        stale = await client.get("/page")
        assert (stale.status_code, stale.headers["x-cache"], stale.content) == (200, "STALE", b"hello")
        origin.reply = replying(200, [("cache-control", "max-age=10, must-revalidate")], b"strict")
        clock.advance(1000)
        await client.get("/page")
        clock.advance(20)
        origin.reply = replying(502, [], b"bad gateway")
        assert (await client.get("/page")).status_code == 502


async def test_failed_background_revalidation_is_logged_and_the_entry_kept(
    make_client: Any, origin: Origin, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    client, middleware = make_client()
    origin.reply = replying(200, [("cache-control", "max-age=10, stale-while-revalidate=60")], b"v1")
    async with client:
        await client.get("/page")
        clock.advance(20)
        origin.error = RuntimeError("refresh failed")
        assert (await client.get("/page")).headers["x-cache"] == "STALE"
        await middleware.wait_background()
        assert "refresh failed" in caplog.text
        assert (await client.get("/page")).content == b"v1"


async def test_response_with_trailers_streams_through_unstored(cache: CacheManager) -> None:
    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"cache-control", b"max-age=60")]
        await send({"type": "http.response.start", "status": 200, "headers": headers, "trailers": True})
        await send({"type": "http.response.body", "body": b"x", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [], "more_trailers": False})

    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/t", "query_string": b"", "headers": [(b"host", b"h")]}
    await CacheMiddleware(app, cache=cache)(scope, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body", "http.response.trailers"]
    assert sent[0]["trailers"] is True


async def test_set_cookie_on_a_304_is_given_to_that_client_but_never_stored(
    client: httpx.AsyncClient, origin: Origin, clock: Clock
) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=10"), ("etag", '"v1"')], b"page")
    await client.get("/page")
    clock.advance(20)
    origin.reply = replying(304, [("cache-control", "max-age=10"), ("set-cookie", "session=alice")])
    revalidated = await client.get("/page")
    assert (revalidated.headers["x-cache"], revalidated.headers["set-cookie"]) == ("REVALIDATED", "session=alice")
    origin.reply = replying(304, [("cache-control", "max-age=10")])
    other_user = await client.get("/page")
    assert "set-cookie" not in other_user.headers


async def test_a_304_that_makes_the_entry_private_stops_it_being_served_to_others(
    client: httpx.AsyncClient, origin: Origin, clock: Clock
) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=10"), ("etag", '"v1"')], b"page")
    await client.get("/page")
    clock.advance(20)
    origin.reply = replying(304, [("cache-control", "private, max-age=60")])
    assert (await client.get("/page")).status_code == 200
    origin.reply = replying(200, [("cache-control", "private")], b"mine")
    assert (await client.get("/page")).headers["x-cache"] != "HIT"


async def test_a_tag_the_cache_cannot_hold_does_not_fail_the_response(
    client: httpx.AsyncClient, origin: Origin
) -> None:
    long_tag = "t" * 300
    origin.reply = replying(200, [("cache-control", "max-age=60"), ("cache-tag", f"ok {long_tag}")], b"page")
    first = await client.get("/page")
    assert (first.status_code, first.text) == (200, "page")
    assert (await client.get("/page")).headers["x-cache"] == "HIT"


async def test_purge_endpoint_refuses_before_reading_the_body_and_caps_its_size(cache: CacheManager) -> None:
    endpoint = purge_endpoint(cache, token="tok")
    received: list[int] = []
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        received.append(1)
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": [], "path": "/"}
    await endpoint(scope, receive, send)
    assert (sent[0]["status"], received) == (401, [])
    authorized = {**scope, "headers": [(b"authorization", b"Bearer tok")]}
    await endpoint(authorized, receive, send)
    assert sent[2]["status"] == 413
    assert len(received) * 65536 <= MAX_PURGE_BODY + 65536


async def test_revalidation_sends_only_the_apps_validators_not_a_generated_etag(
    client: httpx.AsyncClient, origin: Origin, clock: Clock
) -> None:
    modified = "Tue, 14 Nov 2023 00:00:00 GMT"
    origin.reply = replying(200, [("cache-control", "max-age=10"), ("last-modified", modified)], b"page")
    first = await client.get("/page")
    assert "etag" in first.headers  # generated for clients
    clock.advance(20)
    origin.reply = replying(304, [("cache-control", "max-age=10")])
    assert (await client.get("/page")).headers["x-cache"] == "REVALIDATED"
    sent = origin.seen[-1][2]
    assert (sent.get("if-modified-since"), "if-none-match" in sent) == (modified, False)


async def test_a_304_made_from_an_unstored_response_carries_no_content_length(
    client: httpx.AsyncClient, origin: Origin
) -> None:
    # uvicorn's httptools server fails a 304 whose Content-Length promises the 200's body.
    headers = [("cache-control", "private"), ("etag", '"v1"'), ("content-length", "4"), ("content-type", "text/plain")]
    origin.reply = replying(200, headers, b"mine")
    response = await client.get("/page", headers={"If-None-Match": '"v1"'})
    assert (response.status_code, response.headers["etag"], response.content) == (304, '"v1"', b"")
    assert "content-length" not in response.headers
    assert "content-type" not in response.headers
