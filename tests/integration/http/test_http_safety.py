"""Safety rules of both middlewares in process: credentials, forwarding fields, the effective URI as the key,
and cache faults that must never fail a request (ASGI over a raw origin, WSGI over Flask)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import flask
import httpx
import pytest
from http_origin import Clock, Origin, replying

from cachetier import CacheManager, create_for_testing
from cachetier.integrations import wsgi
from cachetier.integrations.asgi import CacheMiddleware
from cachetier.sync import SyncCache

TAGS = ", ".join(f"product:{i:06d}-variant" for i in range(2900))  # about 70 KB: more than an entry may carry


async def test_credentialed_requests_share_pages_again_when_the_app_says_so(make_client: Any, origin: Origin) -> None:
    origin.reply = lambda method, path, headers: (200, [("cache-control", "max-age=60")], [headers["cookie"].encode()])
    client, _ = make_client(cache_credentialed=True)
    async with client:
        first = await client.get("/page", headers={"cookie": "session=alice"})
        second = await client.get("/page", headers={"cookie": "session=bob"})
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.content == b"session=alice"  # what the default prevents, for apps whose cookies change nothing


async def test_a_credentialed_request_is_not_served_the_anonymous_page(
    client: httpx.AsyncClient, origin: Origin
) -> None:
    await client.get("/page")
    assert (await client.get("/page")).headers["x-cache"] == "HIT"
    with_cookie = await client.get("/page", headers={"cookie": "session=alice"})
    authorized = await client.get("/page", headers={"authorization": "Bearer alice"})
    assert (with_cookie.headers["x-cache"], authorized.headers["x-cache"]) == ("BYPASS", "BYPASS")
    assert origin.calls == 3


async def test_trusted_forwarding_fields_are_part_of_the_key(make_client: Any, origin: Origin) -> None:
    origin.reply = lambda method, path, headers: (
        200,
        [("cache-control", "max-age=60")],
        [headers.get("x-forwarded-host", "-").encode()],
    )
    client, _ = make_client(trusted_forwarding_headers=["X-Forwarded-Host"])
    async with client:
        a = await client.get("/page", headers={"x-forwarded-host": "a.test"})
        b = await client.get("/page", headers={"x-forwarded-host": "b.test"})
        a_again = await client.get("/page", headers={"x-forwarded-host": "a.test"})
        untrusted = await client.get("/page", headers={"x-forwarded-host": "a.test", "forwarded": "host=c.test"})
    assert [r.headers["x-cache"] for r in (a, b, a_again, untrusted)] == ["MISS", "MISS", "HIT", "BYPASS"]
    assert (a.content, b.content, a_again.content) == (b"a.test", b"b.test", b"a.test")


async def test_https_and_http_and_ports_are_different_entries(cache: CacheManager, clock: Clock) -> None:
    origin = Origin(reply=lambda method, path, headers: (200, [("cache-control", "max-age=60")], [b"page"]))
    middleware = CacheMiddleware(origin, cache=cache, clock=clock)
    transport = httpx.ASGITransport(middleware)
    seen = []
    for base in ("http://example.test", "https://example.test", "http://example.test:8080", "http://example.test:80"):
        async with httpx.AsyncClient(transport=transport, base_url=base) as client:
            seen.append((await client.get("/page")).headers["x-cache"])
    assert seen == ["MISS", "MISS", "MISS", "HIT"]  # ":80" is the http default port: the first entry


async def test_tags_over_the_caches_limit_serve_the_page_unstored_and_log_it(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    origin = Origin(reply=replying(200, [("cache-control", "max-age=60"), ("cache-tag", TAGS)], b"tagged"))
    async with create_for_testing() as cache:
        middleware = CacheMiddleware(origin, cache=cache, clock=clock)
        transport = httpx.ASGITransport(middleware)
        async with httpx.AsyncClient(transport=transport, base_url="http://example.test") as client:
            with caplog.at_level(logging.WARNING, logger="cachetier.http"):
                responses = [await client.get("/page") for _ in range(2)]
    assert [(r.status_code, r.content, r.headers["x-cache"]) for r in responses] == [(200, b"tagged", "BYPASS")] * 2
    assert "could not store a response" in caplog.text


async def test_a_closed_cache_never_fails_a_request(cache: CacheManager, clock: Clock) -> None:
    origin = Origin()
    middleware = CacheMiddleware(origin, cache=cache, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(middleware), base_url="http://example.test") as client:
        await client.get("/page")
        await cache.close()  # every call now raises CacheClosedError
        plain = await client.get("/page")
        conditional = await client.get("/page", headers={"if-none-match": '"x"'})
        posted = await client.post("/page")
    assert [(r.status_code, r.headers["x-cache"]) for r in (plain, conditional)] == [(200, "BYPASS")] * 2
    assert posted.status_code == 200
    assert origin.calls == 4


async def test_a_range_from_a_miss_is_cut_from_the_stored_whole_response(client: httpx.AsyncClient) -> None:
    first = await client.get("/page", headers={"range": "bytes=1-3"})
    assert (first.status_code, first.content, first.headers["content-range"]) == (206, b"ell", "bytes 1-3/5")
    whole = await client.get("/page")
    head = await client.head("/page", headers={"range": "bytes=1-3"})  # Range is for GET only
    assert (whole.status_code, whole.content, whole.headers["x-cache"]) == (200, b"hello", "HIT")
    assert (head.status_code, head.headers["content-length"]) == (200, "5")


async def test_a_206_from_the_app_streams_through_unstored(client: httpx.AsyncClient, origin: Origin) -> None:
    origin.reply = replying(206, [("cache-control", "max-age=60"), ("content-range", "bytes 0-1/10")], b"he")
    partial = await client.get("/page", headers={"range": "bytes=0-1"})
    assert (partial.status_code, partial.content, partial.headers["x-cache"]) == (206, b"he", "BYPASS")


# WSGI: the same rules over Flask


@pytest.fixture
def flask_client() -> Iterator[tuple[httpx.Client, dict[str, Any]]]:
    app = flask.Flask("http-safety")
    calls: dict[str, Any] = {"n": 0}

    @app.get("/me")
    def me() -> flask.Response:
        calls["n"] += 1
        user = flask.request.cookies.get("session", "anonymous")
        return flask.Response(user, headers={"Cache-Control": "max-age=60", "Cache-Tag": calls.get("tags", "")})

    @app.get("/link")
    def link() -> flask.Response:
        calls["n"] += 1
        return flask.Response(flask.request.host_url, headers={"Cache-Control": "max-age=60"})

    with SyncCache(create_for_testing()) as cache:
        app.wsgi_app = wsgi.CacheMiddleware(app.wsgi_app, cache=cache)  # type: ignore[method-assign]
        with httpx.Client(transport=httpx.WSGITransport(app), base_url="http://example.test") as client:
            yield client, calls


def test_wsgi_a_users_page_is_not_shared_and_forwarding_fields_bypass(
    flask_client: tuple[httpx.Client, dict[str, Any]],
) -> None:
    client, _ = flask_client
    alice = client.get("/me", headers={"cookie": "session=alice"})
    bob = client.get("/me", headers={"cookie": "session=bob"})
    assert (alice.text, bob.text, bob.headers["x-cache"]) == ("alice", "bob", "BYPASS")
    poisoned = client.get("/link", headers={"x-forwarded-host": "evil.test"})
    assert poisoned.headers["x-cache"] == "BYPASS"
    clean = client.get("/link")
    assert (clean.text, clean.headers["x-cache"]) == ("http://example.test/", "MISS")
    secure = client.get("https://example.test/link")
    assert (secure.text, secure.headers["x-cache"]) == ("https://example.test/", "MISS")


def test_wsgi_tags_over_the_caches_limit_serve_the_page_unstored(
    flask_client: tuple[httpx.Client, dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    client, calls = flask_client
    calls["tags"] = TAGS
    with caplog.at_level(logging.WARNING, logger="cachetier.http"):
        responses = [client.get("/me") for _ in range(2)]
    assert [(r.status_code, r.text, r.headers["x-cache"]) for r in responses] == [(200, "anonymous", "BYPASS")] * 2
    assert "could not store a response" in caplog.text


async def test_a_206_holding_the_whole_representation_is_stored_as_its_200(
    client: httpx.AsyncClient, origin: Origin
) -> None:
    whole = [("cache-control", "max-age=60"), ("content-range", "bytes 0-4/5"), ("etag", '"v1"')]
    origin.reply = replying(206, whole, b"hello")
    first = await client.get("/page", headers={"range": "bytes=0-"})
    assert (first.status_code, first.content, first.headers["content-range"]) == (206, b"hello", "bytes 0-4/5")
    stored = await client.get("/page")
    assert (stored.status_code, stored.content, stored.headers["x-cache"]) == (200, b"hello", "HIT")
    assert "content-range" not in stored.headers
    part = await client.get("/page", headers={"range": "bytes=-2"})
    assert (part.status_code, part.content, part.headers["x-cache"]) == (206, b"lo", "HIT")
    origin.reply = replying(206, [("cache-control", "max-age=60"), ("content-range", "bytes 0-9/10")], b"short")
    lying = await client.get("/other", headers={"range": "bytes=0-"})  # claims 10 bytes, holds 5
    assert (lying.status_code, lying.content, lying.headers["x-cache"]) == (206, b"short", "BYPASS")
    assert origin.calls == 2
