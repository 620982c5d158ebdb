"""Fresh hits of plain GET and HEAD requests, conditional or not: the middleware's fast path against its full path.

Both middlewares answer these without building a `Request` or running the
decision. Each test stores one entry, then asks the middleware (its fast
path) and its responder directly (the full path, `_Responder.run`, with the
very same request) and compares everything the client receives: the ASGI
messages, or the WSGI status line, header list and body chunks.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

import pytest
from http_origin import Clock, Origin, asgi_call, replying

from cachetier import CacheManager, create_with_config
from cachetier.adapters.memory import MemoryAdapter
from cachetier.integrations import asgi, wsgi
from cachetier.integrations.http_cache.storage import index_key
from cachetier.integrations.http_cache.wsgi_environ import PlainEnvirons, request_of
from cachetier.sync import SyncCache

Message = MutableMapping[str, Any]
Fields = list[tuple[str, str]]

LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"
ENTRIES: dict[str, Fields] = {
    "etag and last-modified": [
        ("cache-control", "max-age=60"),
        ("content-type", "text/plain"),
        ("etag", '"v1"'),
        ("last-modified", LAST_MODIFIED),
        ("content-language", "en"),
    ],
    "generated etag, tags, vary": [
        ("cache-control", "public, max-age=60"),
        ("content-type", "application/json"),
        ("vary", "accept"),
        ("cache-tag", "a, b"),
        ("expires", "Tue, 14 Nov 2030 22:13:20 GMT"),
    ],
    "a stored 404": [("cache-control", "max-age=60"), ("etag", '"v1"'), ("content-type", "text/plain")],
}
STATUS = {"a stored 404": 404}

VALIDATORS: dict[str, Fields] = {
    "none": [],
    "matching etag": [("if-none-match", '"v1"')],
    "weak matching etag in a list": [("If-None-Match", '"x", W/"v1"')],
    "any etag": [("if-none-match", "*")],
    "other etag": [("if-none-match", '"v2"')],
    "two if-none-match lines": [("if-none-match", '"x"'), ("if-none-match", '"v1"')],
    "since last-modified": [("if-modified-since", LAST_MODIFIED)],
    "since later": [("If-Modified-Since", "Wed, 15 Nov 2023 00:00:00 GMT")],
    "since earlier": [("if-modified-since", "Mon, 13 Nov 2023 00:00:00 GMT")],
    "since garbage": [("if-modified-since", "yesterday")],
    "other etag wins over a matching date": [("if-none-match", '"v2"'), ("if-modified-since", LAST_MODIFIED)],
}
SETTINGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "dates sent, cdn tags, shared cookies": {"send_date": True, "cdn_dialects": ["fastly"], "cache_credentialed": True},
}


def origin_for(entry: str) -> Origin:
    return Origin(replying(STATUS.get(entry, 200), ENTRIES[entry], b"hello"))


# ASGI


def asgi_scope(method: str, fields: Fields) -> dict[str, Any]:
    headers = [(b"host", b"example.test"), (b"accept", b"*/*")]
    headers += [(name.encode(), value.encode()) for name, value in fields]
    return {
        "type": "http",
        "method": method,
        "path": "/page",
        "raw_path": b"/page",
        "query_string": b"",
        "headers": headers,
    }


async def asgi_full_path(middleware: asgi.CacheMiddleware, scope: dict[str, Any]) -> list[Message]:
    async def run(scope: Any, receive: Any, send: Any) -> None:
        await asgi._Responder(middleware, scope, receive, send).run()

    return await asgi_call(run, scope)


@pytest.fixture
def full_path_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The methods of the requests that took the full path (`_Responder.run`) of either middleware."""
    runs: list[str] = []
    for module in (asgi, wsgi):
        original = module._Responder.run

        def counting(self: Any, *args: Any, _original: Any = original) -> Any:
            runs.append(self.request.method)
            return _original(self, *args)

        monkeypatch.setattr(module._Responder, "run", counting)
    return runs


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
@pytest.mark.parametrize("entry", ENTRIES.keys())
@pytest.mark.parametrize("validators", VALIDATORS.values(), ids=VALIDATORS.keys())
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_asgi_fresh_hit_on_the_fast_path_is_what_the_full_path_sends(
    cache: CacheManager, clock: Clock, method: str, validators: Fields, entry: str, settings: dict[str, Any]
) -> None:
    middleware = asgi.CacheMiddleware(origin_for(entry), cache=cache, clock=clock, **settings)
    stored = await asgi_call(middleware, asgi_scope("GET", []))
    assert dict(stored[0]["headers"])[b"x-cache"] == b"MISS"
    clock.advance(3.7)
    scope = asgi_scope(method, validators)
    fast = await asgi_call(middleware, scope)
    assert fast == await asgi_full_path(middleware, scope)
    assert dict(fast[0]["headers"])[b"x-cache"] == b"HIT"
    assert fast[-1]["body"] == (b"hello" if method == "GET" and fast[0]["status"] != 304 else b"")


async def test_asgi_conditional_and_head_fresh_hits_do_not_take_the_full_path(
    cache: CacheManager, clock: Clock, full_path_runs: list[str]
) -> None:
    middleware = asgi.CacheMiddleware(origin_for("etag and last-modified"), cache=cache, clock=clock)
    await asgi_call(middleware, asgi_scope("GET", []))
    assert full_path_runs == ["GET"]  # the miss
    answers = [
        await asgi_call(middleware, asgi_scope("HEAD", [])),
        await asgi_call(middleware, asgi_scope("GET", [("if-none-match", '"v1"')])),
        await asgi_call(middleware, asgi_scope("GET", [("if-modified-since", "Mon, 13 Nov 2023 00:00:00 GMT")])),
        await asgi_call(middleware, asgi_scope("HEAD", [("if-modified-since", LAST_MODIFIED)])),
    ]
    assert [answer[0]["status"] for answer in answers] == [200, 304, 200, 304]
    assert full_path_runs == ["GET"]
    await asgi_call(middleware, asgi_scope("GET", [("cache-control", "no-transform"), ("if-none-match", '"v1"')]))
    assert full_path_runs == ["GET", "GET"]  # not plain: the full path, which answers the same
    clock.advance(120)
    stale = await asgi_call(middleware, asgi_scope("GET", [("if-none-match", '"v1"')]))
    assert full_path_runs == ["GET", "GET", "GET"]  # no longer fresh: the full path revalidates
    assert dict(stale[0]["headers"])[b"x-cache"] == b"MISS"  # the origin answered with a new copy


# WSGI


def wsgi_origin(entry: str) -> wsgi.WSGIApp:
    status = STATUS.get(entry, 200)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response(wsgi.status_line(status), ENTRIES[entry])
        return [b"hello"]

    return app


def environ_for(method: str, fields: Fields, **extra: str) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": "/page",
        "QUERY_STRING": "",
        "SERVER_NAME": "example.test",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "example.test",
        "HTTP_ACCEPT": "*/*",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
    }
    for name, value in fields:
        key = "HTTP_" + name.upper().replace("-", "_")
        environ[key] = f"{environ[key]}, {value}" if key in environ else value  # servers join repeated fields
    environ.update(extra)
    return environ


def wsgi_call(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> tuple[str, Fields, list[bytes]]:
    started: list[Any] = []

    def start_response(status: str, headers: Fields, exc_info: Any = None) -> Callable[[bytes], object]:
        started[:] = [status, headers]
        return lambda data: None

    body = app(environ, start_response)
    try:
        chunks = list(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return started[0], started[1], chunks


@pytest.fixture
def sync_cache() -> Iterator[SyncCache]:
    cache = SyncCache(create_with_config(adapter=MemoryAdapter()))
    yield cache
    cache.close()


@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
@pytest.mark.parametrize("entry", ENTRIES.keys())
@pytest.mark.parametrize("validators", VALIDATORS.values(), ids=VALIDATORS.keys())
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_wsgi_fresh_hit_on_the_fast_path_is_what_the_full_path_sends(
    sync_cache: SyncCache, clock: Clock, method: str, validators: Fields, entry: str, settings: dict[str, Any]
) -> None:
    middleware = wsgi.CacheMiddleware(wsgi_origin(entry), cache=sync_cache, clock=clock, **settings)
    _, stored, _ = wsgi_call(middleware, environ_for("GET", []))
    assert ("x-cache", "MISS") in stored
    clock.advance(3.7)
    fast = wsgi_call(middleware, environ_for(method, validators))
    full = wsgi_call(
        lambda environ, start: wsgi._Responder(middleware, environ, start).run(), environ_for(method, validators)
    )
    assert fast == full
    status, headers, chunks = fast
    assert ("x-cache", "HIT") in headers
    assert chunks == ([b"hello"] if method == "GET" and not status.startswith("304") else [b""])


def test_wsgi_fresh_hits_do_not_take_the_full_path(
    sync_cache: SyncCache, clock: Clock, full_path_runs: list[str]
) -> None:
    middleware = wsgi.CacheMiddleware(wsgi_origin("etag and last-modified"), cache=sync_cache, clock=clock)
    wsgi_call(middleware, environ_for("GET", []))
    assert full_path_runs == ["GET"]  # the miss
    answers = [
        wsgi_call(middleware, environ_for("GET", [])),
        wsgi_call(middleware, environ_for("HEAD", [])),
        wsgi_call(middleware, environ_for("GET", [("if-none-match", '"v1"')])),
        wsgi_call(middleware, environ_for("GET", [("if-modified-since", "Mon, 13 Nov 2023 00:00:00 GMT")])),
    ]
    assert [status for status, _, _ in answers] == ["200 OK", "200 OK", "304 Not Modified", "200 OK"]
    assert full_path_runs == ["GET"]
    clock.advance(120)
    _, stale, _ = wsgi_call(middleware, environ_for("GET", []))
    assert full_path_runs == ["GET", "GET"]  # no longer fresh: the full path revalidates
    assert ("x-cache", "MISS") in stale  # the origin answered with a new copy


@pytest.mark.parametrize(
    "fields",
    [
        [("cache-control", "max-age=0")],
        [("pragma", "no-cache")],
        [("authorization", "Bearer t")],
        [("cookie", "session=alice")],
        [("range", "bytes=0-1")],
        [("x-forwarded-host", "evil.test")],
        [("forwarded", "host=evil.test")],
    ],
)
def test_wsgi_requests_asking_the_cache_something_take_the_full_path(
    sync_cache: SyncCache, clock: Clock, full_path_runs: list[str], fields: Fields
) -> None:
    middleware = wsgi.CacheMiddleware(wsgi_origin("etag and last-modified"), cache=sync_cache, clock=clock)
    wsgi_call(middleware, environ_for("GET", []))
    wsgi_call(middleware, environ_for("GET", fields))
    assert full_path_runs == ["GET", "GET"]


@pytest.mark.parametrize(
    "environ",
    [
        environ_for("GET", []),
        environ_for("HEAD", [("if-none-match", '"v1"')], QUERY_STRING="a=1&b=%20"),
        environ_for("GET", [], HTTP_HOST="Example.test:80", SCRIPT_NAME="/app", PATH_INFO="/caf\xc3\xa9 x"),
        environ_for("GET", [], RAW_URI="/raw%20path?q=1", QUERY_STRING="q=1"),
        environ_for("GET", [], REQUEST_URI="/other"),
        {key: value for key, value in environ_for("GET", []).items() if key != "HTTP_HOST"},
        environ_for("GET", [("x-forwarded-host", "a.test"), ("x-forwarded-proto", "https")]),
    ],
)
def test_wsgi_plain_request_keys_are_the_keys_of_the_full_request(environ: dict[str, Any]) -> None:
    trusted = ("x-forwarded-host", "x-forwarded-proto")
    plain = PlainEnvirons("http", trusted=trusted).plain(environ)
    url = request_of(environ).url(trusted)
    assert plain is not None
    assert plain[0] == (url, index_key("http", url))


def test_wsgi_plain_request_memo_tells_raw_uris_from_decoded_paths() -> None:
    plain = PlainEnvirons("http")
    decoded = environ_for("GET", [], PATH_INFO="/a b")
    raw = environ_for("GET", [], PATH_INFO="/a b", RAW_URI="/a%20b")
    other_raw = environ_for("GET", [], PATH_INFO="/a b", RAW_URI="/a+b")
    keys = [plain.plain(environ) for environ in (decoded, raw, other_raw, decoded)]
    assert [key[0][0] if key else None for key in keys] == [
        request_of(environ).url() for environ in (decoded, raw, other_raw, decoded)
    ]
    assert keys[2] != keys[1]


async def test_asgi_304_and_head_hits_carry_the_fields_rfc_9110_asks_for(cache: CacheManager, clock: Clock) -> None:
    middleware = asgi.CacheMiddleware(origin_for("etag and last-modified"), cache=cache, clock=clock)
    await asgi_call(middleware, asgi_scope("GET", []))
    clock.advance(2)
    not_modified = await asgi_call(middleware, asgi_scope("GET", [("if-none-match", '"v1"')]))
    head = await asgi_call(middleware, asgi_scope("HEAD", []))
    assert (not_modified[0]["status"], not_modified[0]["headers"], not_modified[1]["body"]) == (
        304,
        [
            (b"cache-control", b"max-age=60"),
            (b"etag", b'"v1"'),
            (b"last-modified", LAST_MODIFIED.encode()),
            (b"age", b"2"),
            (b"x-cache", b"HIT"),
        ],
        b"",
    )
    assert (head[0]["status"], head[1]["body"]) == (200, b"")
    assert [name for name, _ in head[0]["headers"]] == [
        b"cache-control",
        b"content-type",
        b"etag",
        b"last-modified",
        b"content-language",
        b"age",
        b"x-cache",
        b"content-length",
    ]
    assert dict(head[0]["headers"])[b"content-length"] == b"5"


async def test_asgi_cookie_requests_take_the_fast_path_only_when_credentialed_requests_are_shared(
    cache: CacheManager, clock: Clock, full_path_runs: list[str]
) -> None:
    for shared in (False, True):
        middleware = asgi.CacheMiddleware(
            origin_for("generated etag, tags, vary"), cache=cache, clock=clock, cache_credentialed=shared
        )
        await asgi_call(middleware, asgi_scope("GET", []))
        hit = await asgi_call(middleware, asgi_scope("HEAD", [("cookie", "session=alice")]))
        assert dict(hit[0]["headers"])[b"x-cache"] == b"HIT"
    assert full_path_runs == ["GET", "HEAD"]  # the miss, and the cookie while it is not shared


def test_wsgi_cookie_requests_take_the_fast_path_only_when_credentialed_requests_are_shared(
    sync_cache: SyncCache, clock: Clock, full_path_runs: list[str]
) -> None:
    for shared in (False, True):
        app = wsgi_origin("generated etag, tags, vary")
        middleware = wsgi.CacheMiddleware(app, cache=sync_cache, clock=clock, cache_credentialed=shared)
        wsgi_call(middleware, environ_for("GET", []))
        _, headers, _ = wsgi_call(middleware, environ_for("HEAD", [("cookie", "session=alice")]))
        assert ("x-cache", "HIT") in headers
    assert full_path_runs == ["GET", "HEAD"]  # the miss, and the cookie while it is not shared
