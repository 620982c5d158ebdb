"""The WSGI middleware around a Flask app, through httpx's WSGI transport."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import flask
import httpx
import pytest
from http_origin import Clock

from cachetier import create_with_config
from cachetier.adapters.memory import MemoryAdapter
from cachetier.integrations.wsgi import CacheMiddleware, purge_endpoint
from cachetier.sync import SyncCache


@dataclass
class Site:
    """What the Flask app answers; tests change it between requests."""

    cache_control: str = "max-age=60"
    etag: str | None = None
    body: str = "hello"
    status: int = 200
    extra: dict[str, str] = field(default_factory=dict)
    fail: bool = False
    delay: float = 0.0
    calls: int = 0
    seen: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def build_app(site: Site) -> flask.Flask:
    app = flask.Flask("wsgi-cache-test")
    app.config["PROPAGATE_EXCEPTIONS"] = True  # let exceptions reach the middleware, as in the ASGI tests

    @app.route("/page", methods=["GET", "HEAD"])
    @app.route("/other", methods=["GET"])
    def page() -> flask.Response:
        with site.lock:
            site.calls += 1
            site.seen.append(dict(flask.request.headers))
        if site.delay:
            time.sleep(site.delay)
        if site.fail:
            raise RuntimeError("app crashed")
        headers = {"Cache-Control": site.cache_control, **site.extra}
        if site.etag:
            headers["ETag"] = site.etag
        return flask.Response(site.body, status=site.status, headers=headers)

    @app.post("/page")
    def create() -> flask.Response:
        return flask.Response("created", status=201, headers={"Location": "/other"})

    @app.get("/stream")
    def stream() -> flask.Response:
        def chunks() -> Iterator[bytes]:
            for _ in range(5):
                yield b"z" * 1000

        return flask.Response(chunks(), headers={"Cache-Control": "max-age=60"})

    return app


@pytest.fixture
def sync_cache() -> Iterator[SyncCache]:
    cache = SyncCache(create_with_config(adapter=MemoryAdapter()))
    yield cache
    cache.close()


@pytest.fixture
def site() -> Site:
    return Site()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def middleware(site: Site, sync_cache: SyncCache, clock: Clock) -> CacheMiddleware:
    app = build_app(site)
    wrapped = CacheMiddleware(app.wsgi_app, cache=sync_cache, clock=clock, max_body_size=2048)
    app.wsgi_app = wrapped  # type: ignore[method-assign]
    return wrapped


@pytest.fixture
def client(middleware: CacheMiddleware) -> Iterator[httpx.Client]:
    with httpx.Client(transport=httpx.WSGITransport(middleware), base_url="http://example.test") as http:
        yield http


def test_miss_then_hit_with_age(client: httpx.Client, site: Site, clock: Clock) -> None:
    first = client.get("/page")
    clock.advance(4)
    second = client.get("/page")
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert first.text == second.text == "hello"
    assert second.headers["age"] == "4"
    assert site.calls == 1


@pytest.mark.parametrize("cache_control", ["no-store", "private, max-age=60"])
def test_uncacheable_responses_are_not_stored(client: httpx.Client, site: Site, cache_control: str) -> None:
    site.cache_control = cache_control
    client.get("/page")
    assert client.get("/page").headers["x-cache"] == "BYPASS"
    assert site.calls == 2


def test_set_cookie_is_not_stored(client: httpx.Client, site: Site) -> None:
    site.extra = {"Set-Cookie": "session=abc"}
    client.get("/page")
    assert client.get("/page").headers["x-cache"] == "BYPASS"


def test_if_none_match_and_if_modified_since_get_304(client: httpx.Client, site: Site) -> None:
    site.etag = '"v1"'
    site.extra = {"Last-Modified": "Sun, 06 Nov 1994 08:49:37 GMT"}
    client.get("/page")
    assert client.get("/page", headers={"If-None-Match": 'W/"v1", "x"'}).status_code == 304
    assert client.get("/page", headers={"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}).status_code == 304
    assert client.get("/page", headers={"If-None-Match": '"x"'}).status_code == 200
    assert site.calls == 1


def test_post_invalidates_the_url_and_location(client: httpx.Client, site: Site) -> None:
    client.get("/page")
    client.get("/other")
    assert client.post("/page").headers["x-cache"] == "BYPASS"
    assert client.get("/page").headers["x-cache"] == "MISS"
    assert client.get("/other").headers["x-cache"] == "MISS"


def test_expired_entry_revalidated_with_304_keeps_the_body(client: httpx.Client, site: Site, clock: Clock) -> None:
    site.cache_control, site.etag, site.body = "max-age=10", '"v1"', "stored"
    client.get("/page")
    clock.advance(20)
    site.status, site.body, site.extra = 304, "", {"X-Version": "2"}
    response = client.get("/page")
    assert site.seen[-1]["If-None-Match"] == '"v1"'
    assert (response.status_code, response.text, response.headers["x-cache"]) == (200, "stored", "REVALIDATED")
    assert response.headers["x-version"] == "2"
    assert client.get("/page").headers["x-cache"] == "HIT"


def test_stale_if_error_on_exception(client: httpx.Client, site: Site, clock: Clock) -> None:
    site.cache_control = "max-age=10, stale-if-error=60"
    client.get("/page")
    clock.advance(20)
    site.fail = True
    stale = client.get("/page")
    assert (stale.status_code, stale.text, stale.headers["x-cache"]) == (200, "hello", "STALE")
    clock.advance(100)
    with pytest.raises(RuntimeError, match="app crashed"):
        client.get("/page")


def test_stale_while_revalidate_refreshes_in_a_thread(
    client: httpx.Client, middleware: CacheMiddleware, site: Site, clock: Clock
) -> None:
    site.cache_control = "max-age=10, stale-while-revalidate=60"
    client.get("/page")
    clock.advance(20)
    site.body = "new"
    stale = client.get("/page")
    assert (stale.text, stale.headers["x-cache"]) == ("hello", "STALE")
    middleware.wait_background()
    fresh = client.get("/page")
    assert (fresh.text, fresh.headers["x-cache"]) == ("new", "HIT")


def test_tag_purge(client: httpx.Client, site: Site, sync_cache: SyncCache) -> None:
    site.extra = {"Cache-Tag": "user:123"}
    client.get("/page")
    assert client.get("/page").headers["x-cache"] == "HIT"
    assert sync_cache.invalidate_by_tag("user:123") >= 1
    assert client.get("/page").headers["x-cache"] == "MISS"


def test_targeted_field_precedence(client: httpx.Client, site: Site) -> None:
    site.cache_control = "no-store"
    site.extra = {"Cachetier-Cache-Control": "max-age=60", "CDN-Cache-Control": "max-age=5"}
    first = client.get("/page")
    assert "cachetier-cache-control" not in first.headers
    assert first.headers["cdn-cache-control"] == "max-age=5"
    assert client.get("/page").headers["x-cache"] == "HIT"


def test_streaming_over_max_body_size_passes_through(client: httpx.Client) -> None:
    first = client.get("/stream")
    assert first.content == b"z" * 5000
    assert client.get("/stream").headers["x-cache"] == "BYPASS"


def test_head_served_from_stored_get(client: httpx.Client, site: Site) -> None:
    client.get("/page")
    head = client.head("/page")
    assert (head.headers["x-cache"], head.content) == ("HIT", b"")
    assert site.calls == 1


def test_concurrent_misses_run_the_app_once(middleware: CacheMiddleware, site: Site) -> None:
    site.delay = 0.1

    def fetch(_: int) -> str:
        with httpx.Client(transport=httpx.WSGITransport(middleware), base_url="http://example.test") as http:
            return http.get("/page").text

    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(fetch, range(8)))
    assert bodies == ["hello"] * 8
    assert site.calls == 1


def test_app_errors_pass_through(client: httpx.Client, site: Site) -> None:
    site.fail = True
    with pytest.raises(RuntimeError, match="app crashed"):
        client.get("/page")


def test_wsgi_purge_endpoint(sync_cache: SyncCache) -> None:
    endpoint = purge_endpoint(sync_cache, token="tok")
    with httpx.Client(transport=httpx.WSGITransport(endpoint), base_url="http://example.test") as http:
        assert http.post("/", json={"tags": ["a"]}).status_code == 401
        assert http.post("/", json={"tags": ["a"]}, headers={"Authorization": "Bearer bad"}).status_code == 403
        assert http.get("/", headers={"Authorization": "Bearer tok"}).status_code == 405
        ok = http.post("/", json={"tags": ["a"]}, headers={"Authorization": "Bearer tok"})
        assert ok.json() == {"purged": 0, "tags": ["a"]}


def test_wsgi_purge_endpoint_refuses_before_reading_the_body_and_caps_its_size(sync_cache: SyncCache) -> None:
    endpoint = purge_endpoint(sync_cache, token="tok")

    class Unreadable(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise AssertionError("the body was read")

    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> Any:
        statuses.append(status)
        return lambda data: None

    environ = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "999999999", "wsgi.input": Unreadable()}
    endpoint(environ, start_response)
    endpoint({**environ, "HTTP_AUTHORIZATION": "Bearer tok"}, start_response)
    assert [status.split()[0] for status in statuses] == ["401", "413"]


def test_stale_if_error_on_5xx(client: httpx.Client, site: Site, clock: Clock) -> None:
    site.cache_control = "max-age=10, stale-if-error=60"
    client.get("/page")
    clock.advance(20)
    site.status, site.body = 500, "down"
    stale = client.get("/page")
    assert (stale.status_code, stale.text, stale.headers["x-cache"]) == (200, "hello", "STALE")


def test_failed_background_revalidation_is_logged(
    client: httpx.Client, middleware: CacheMiddleware, site: Site, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    site.cache_control = "max-age=10, stale-while-revalidate=60"
    client.get("/page")
    clock.advance(20)
    site.fail = True
    assert client.get("/page").headers["x-cache"] == "STALE"
    middleware.wait_background()
    assert "background revalidation" in caplog.text
