"""A scriptable raw ASGI origin and a fake clock for the HTTP cache tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

T0 = 1_700_000_000.0

Reply = tuple[int, list[tuple[str, str]], list[bytes]]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Origin:
    """An ASGI app answering with `reply(method, path, headers)`; it records what it was asked."""

    reply: Callable[[str, str, dict[str, str]], Reply] = lambda method, path, headers: (
        200,
        [("cache-control", "max-age=60"), ("content-type", "text/plain")],
        [b"hello"],
    )
    delay: float = 0.0
    error: Exception | None = None
    calls: int = 0
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        self.calls += 1
        headers = {name.decode(): value.decode() for name, value in scope["headers"]}
        self.seen.append((scope["method"], scope["path"], headers))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        status, reply_headers, chunks = self.reply(scope["method"], scope["path"], headers)
        encoded = [(name.encode(), value.encode()) for name, value in reply_headers]
        await send({"type": "http.response.start", "status": status, "headers": encoded})
        for i, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1})
        if not chunks:
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def replying(status: int, headers: list[tuple[str, str]], *chunks: bytes) -> Callable[..., Reply]:
    return lambda method, path, request_headers: (status, headers, list(chunks))


async def asgi_call(app: Callable[..., Any], scope: dict[str, Any]) -> list[MutableMapping[str, Any]]:
    """The messages `app` sends for one bodiless request with `scope`."""
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent
