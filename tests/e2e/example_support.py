"""Helpers for the e2e tests: a movable clock, the ASGI lifespan, and reading the apps' `/stats` page."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, MutableMapping
from typing import Any

import httpx

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Coroutine[Any, Any, None]]


class Clock:
    """The HTTP cache's clock: real time plus however far a test has moved it."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@contextlib.asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run an ASGI app's startup and shutdown as a server would (httpx's ASGITransport does neither)."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        stopped = await outbox.get()
        await task
        assert stopped["type"] == "lifespan.shutdown.complete", stopped


async def renders(client: httpx.AsyncClient, path: str) -> int:
    """How many times the app itself rendered `path`, from its `/stats` page (never cached: no-store)."""
    stats = (await client.get("/stats")).json()
    count: int = stats["renders"].get(path, 0)
    return count
