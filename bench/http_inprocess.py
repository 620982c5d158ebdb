"""HTTP in process: the routes of `bench.http_app.cachetier_app` called as raw ASGI, no server, no sockets.

Each call builds a fresh scope and collects the messages the app sends, so a
row is the app's own cost per request: routing, the middleware and the
handler. Cached routes are warmed first, so every timed call is a fresh hit:
a plain GET, a GET whose If-None-Match matches (answered 304) or a HEAD. The
WSGI `CacheMiddleware` (over a `SyncCache` of the same default Redis
configuration) is called the same way, with a fresh environ per call, next
to a bare WSGI app sending the very response of its hit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import orjson
from starlette.routing import Mount

from bench._measure import Op, Row, compare
from bench.http_app import (
    BODY,
    HANDLER_SECONDS,
    REDIS_URL,
    SHAPED_BODY,
    SHAPED_HEADERS,
    cachetier_app,
    remove_hishel_files,
)
from cachetier import CacheConfig, create_cache
from cachetier.integrations.wsgi import CacheMiddleware as WSGICacheMiddleware
from cachetier.sync import SyncCache

_Message = MutableMapping[str, Any]


def _scope(path: str, method: str = "GET", extra: tuple[tuple[bytes, bytes], ...] = ()) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench.local"), (b"accept", b"*/*"), *extra],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }


async def _receive() -> _Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def rows(run: str, scale: float) -> list[Row]:
    """Bare route, a hit's exact response, CacheMiddleware hits, hishel hits; the uncached 5 ms route
    apart; then the WSGI middleware's hits against a bare WSGI app."""
    os.environ["BENCH_RUN"] = run  # the app names its keys and hishel's file after the run
    app = cachetier_app()
    unexpected: list[int] = []
    learnt: list[bytes] = []

    def call(
        path: str, target: Any = app, method: str = "GET", extra: Any = (), expect: int = 200, etags: Any = None
    ) -> Op:
        async def send(message: _Message) -> None:
            if message["type"] == "http.response.start":
                if message["status"] != expect:
                    unexpected.append(message["status"])
                if etags is not None:  # warming up: learn the stored entry's ETag
                    etags.extend(value for name, value in message["headers"] if name == b"etag")

        async def op(i: int) -> Any:
            await target(_scope(path, method, extra), _receive, send)

        return op

    mounted = {route.path: route.app for route in app.routes if isinstance(route, Mount)}

    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    try:
        for path in ("/cached/item", "/hishel/item"):
            for _ in range(3):  # the first call misses and stores; later ones are hits
                await call(path)(0)
        for prefix in ("/cached", "/hishel"):
            for _ in range(3):  # the middleware alone keys the entry by its own path
                await call("/item", mounted[prefix], etags=learnt if prefix == "/cached" else None)(0)
        validator = ((b"if-none-match", learnt[-1]),)  # the stored entry's ETag (generated: the app sends none)
        unexpected.clear()
        ops = max(200, int(3000 * scale))
        out = await compare(
            "GET in process (raw ASGI calls)",
            {
                "bare constant route": call("/const"),
                "bare route sending a hit's exact response": call("/shaped"),
                "cachetier CacheMiddleware hit (Redis, defaults)": call("/cached/item"),
                "hishel ASGICacheMiddleware hit (default SQLite storage)": call("/hishel/item"),
                "CacheMiddleware alone (no router), hit": call("/item", mounted["/cached"]),
                "hishel ASGICacheMiddleware alone (no router), hit": call("/item", mounted["/hishel"]),
                "CacheMiddleware alone (no router), conditional hit (304)": call(
                    "/item", mounted["/cached"], extra=validator, expect=304
                ),
                "CacheMiddleware alone (no router), HEAD hit": call("/item", mounted["/cached"], method="HEAD"),
            },
            ops=ops,
        )
        out += await compare(
            "GET in process, uncached", {"uncached route (5 ms handler)": call("/uncached")}, ops=max(20, ops // 20)
        )
        if unexpected:
            out[0].note = f"{len(unexpected)} responses had another status than expected"
    finally:
        await lifespan.__aexit__(None, None, None)
        remove_hishel_files(run)
    return out + await wsgi_rows(run, ops)


_StartResponse = Callable[..., Callable[[bytes], object]]
_SHAPED_FIELDS = [*SHAPED_HEADERS.items(), ("content-length", str(len(SHAPED_BODY)))]


def _environ(method: str = "GET", **extra: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": "/item",
        "QUERY_STRING": "",
        "SERVER_NAME": "bench.local",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "bench.local",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": None,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        **extra,
    }


def _slow_wsgi(environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
    time.sleep(HANDLER_SECONDS)
    body = orjson.dumps(BODY)
    start_response("200 OK", [("Content-Type", "application/json"), ("Cache-Control", "public, max-age=60")])
    return [body]


def _shaped_wsgi(environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
    start_response("200 OK", list(_SHAPED_FIELDS))
    return [SHAPED_BODY]


async def wsgi_rows(run: str, ops: int) -> list[Row]:
    """The WSGI `CacheMiddleware`'s fresh hits (GET, a matching If-None-Match, HEAD) against a bare WSGI app."""
    sync = SyncCache(create_cache(CacheConfig(adapter="redis", redis_url=REDIS_URL, namespace=f"bench{run}wsgi")))
    sync.start()
    cached = WSGICacheMiddleware(_slow_wsgi, cache=sync)
    unexpected: list[str] = []
    learnt: list[str] = []

    def call(app: Any, environ: Callable[[], dict[str, Any]], expect: str = "200 OK", etags: Any = None) -> Op:
        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status != expect:
                unexpected.append(status)
            if etags is not None:  # warming up: learn the stored entry's ETag
                etags.extend(value for name, value in headers if name == "etag")
            return None

        async def op(i: int) -> Any:
            for _ in app(environ(), start_response):
                pass

        return op

    try:
        for _ in range(3):  # the first call misses and stores; later ones are hits
            await call(cached, _environ, etags=learnt)(0)
        validator = learnt[-1]
        unexpected.clear()
        out = await compare(
            "GET in process (raw WSGI calls)",
            {
                "bare WSGI app sending a hit's exact response": call(_shaped_wsgi, _environ),
                "cachetier WSGI CacheMiddleware hit (Redis, defaults)": call(cached, _environ),
                "WSGI CacheMiddleware conditional hit (304)": call(
                    cached, lambda: _environ(HTTP_IF_NONE_MATCH=validator), expect="304 Not Modified"
                ),
                "WSGI CacheMiddleware HEAD hit": call(cached, lambda: _environ("HEAD")),
            },
            ops=ops,
        )
        if unexpected:
            out[0].note = f"{len(unexpected)} responses had another status than expected"
        return out
    finally:
        sync.clear()
        sync.close()
