"""The ASGI form of the protected tag-purge endpoint (`cachetier.integrations.asgi.purge_endpoint`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from cachetier import CacheManager, InvalidTagError
from cachetier.integrations.http_cache.asgi_scope import decode_headers, encode_headers
from cachetier.integrations.http_cache.headers import Headers
from cachetier.integrations.http_cache.purge import MAX_PURGE_BODY, TOO_LARGE, PurgeAnswer, check_purge, refuse_purge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class PurgeEndpoint:
    """An ASGI app purging tags: `POST {"tags": [...]}` with `Authorization: Bearer <token>`.

    An object rather than a function, so Starlette's `Route` runs it as the ASGI app it is
    (it wraps plain functions as request handlers): `Route("/_cache/purge", purge_endpoint(...))`
    answers on the exact path, where a `Mount` redirects it to `/_cache/purge/` with a 307.
    """

    def __init__(self, cache: CacheManager, token: str) -> None:
        if not token:
            raise ValueError("purge_endpoint needs a non-empty token")
        self.cache = cache
        self._token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, headers = scope["method"].upper(), decode_headers(scope["headers"])
        status, payload, tags = refuse_purge(method, headers, self._token) or await self._read(method, headers, receive)
        if tags:
            try:
                payload = {"purged": await self.cache.invalidate_by_tags(tags), "tags": tags}
            except InvalidTagError as exc:
                status, payload = 400, {"error": str(exc)}
        data = orjson.dumps(payload)
        fields = [("content-type", "application/json"), ("content-length", str(len(data)))]
        await send({"type": "http.response.start", "status": status, "headers": encode_headers(fields)})
        await send({"type": "http.response.body", "body": data, "more_body": False})

    async def _read(self, method: str, headers: Headers, receive: Receive) -> PurgeAnswer:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_PURGE_BODY:
                return TOO_LARGE
            chunks.append(chunk)
            if not message.get("more_body", False):
                return check_purge(method, headers, b"".join(chunks), self._token)
