"""HTTP in process: the routes of `bench.http_app.cachetier_app` called as raw ASGI, no server, no sockets.

Each call builds a fresh scope and collects the messages the app sends, so a
row is the app's own cost per request: routing, the middleware and the
handler. Cached routes are warmed first, so every timed call is a fresh hit.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

from starlette.routing import Mount

from bench._measure import Op, Row, compare
from bench.http_app import cachetier_app, remove_hishel_files

_Message = MutableMapping[str, Any]


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"bench.local"), (b"accept", b"*/*")],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }


async def _receive() -> _Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def rows(run: str, scale: float) -> list[Row]:
    """Bare route, a hit's exact response, CacheMiddleware hits, hishel hits; the uncached 5 ms route apart."""
    os.environ["BENCH_RUN"] = run  # the app names its keys and hishel's file after the run
    app = cachetier_app()
    statuses: list[int] = []

    async def send(message: _Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    def call(path: str, target: Any = app) -> Op:
        async def op(i: int) -> Any:
            await target(_scope(path), _receive, send)

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
                await call("/item", mounted[prefix])(0)
        statuses.clear()
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
            },
            ops=ops,
        )
        out += await compare(
            "GET in process, uncached", {"uncached route (5 ms handler)": call("/uncached")}, ops=max(20, ops // 20)
        )
        bad = [status for status in statuses if status != 200]
        if bad:
            out[0].note = f"{len(bad)} responses were not 200"
        return out
    finally:
        await lifespan.__aexit__(None, None, None)
        remove_hishel_files(run)
