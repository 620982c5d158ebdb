"""`CacheMiddleware`: an RFC 9111 shared HTTP cache in front of an ASGI app, over a `CacheManager`.

Pure ASGI (no `BaseHTTPMiddleware`). The caching rules live in
`cachetier.integrations.http_cache`; this module only moves ASGI messages and
awaits the cache. `X-Cache` on every response says what happened: HIT, MISS,
STALE (served stale), REVALIDATED (validated with the app, stored body
served) or BYPASS (neither stored nor served from storage). stale-while-revalidate
refreshes in an asyncio task owned by the middleware (`await
middleware.wait_background()` waits for them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Unpack

from cachetier import CacheManager
from cachetier.integrations.http_cache.asgi_purge import PurgeEndpoint
from cachetier.integrations.http_cache.asgi_scope import PlainGets, decode_headers, encode_headers, request_of
from cachetier.integrations.http_cache.cache_calls import AsyncCalls
from cachetier.integrations.http_cache.conditional import validating_headers
from cachetier.integrations.http_cache.flow import (
    BodyBuffer,
    Found,
    Next,
    Outcome,
    cache_fault,
    complete,
    invalidation,
    lookup,
    on_response,
    pass_writes,
    store_items,
    unstored,
)
from cachetier.integrations.http_cache.headers import Headers
from cachetier.integrations.http_cache.hits import ParsedValues
from cachetier.integrations.http_cache.policy import (
    LOOKUP_METHODS,
    Decision,
    Settings,
    Use,
    decide,
    invalidated_urls,
    options_from,
)
from cachetier.integrations.http_cache.responses import (
    Prepared,
    Response,
    client_headers,
    entry_response,
    gateway_timeout,
    served,
    validators_match,
    wire_not_modified,
    wire_start,
)
from cachetier.integrations.http_cache.storage import select

logger = logging.getLogger("cachetier.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["CacheMiddleware", "purge_endpoint"]


class CacheMiddleware:
    """Response cache for GET/HEAD, shared-cache semantics (RFC 9111, RFC 5861, RFC 9213).

    Args:
        app: the wrapped ASGI app (the origin).
        cache: where responses are stored; tags go through its `tags=`, so
            `cache.invalidate_by_tag(tag)` purges the pages the app tagged with it.
        clock: seconds since the epoch; injectable for tests.
        **settings: see `cachetier.integrations.http_cache.policy.Settings`.

    Raises:
        ConfigError: an invalid setting (unknown CDN dialect, bad prefix, ...).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        cache: CacheManager,
        clock: Callable[[], float] = time.time,
        **settings: Unpack[Settings],
    ) -> None:
        self.app = app
        self.cache = cache
        self.clock = clock
        self.options = options_from(settings)
        self.parsed = ParsedValues(self.options)
        self.calls = AsyncCalls(cache)
        self.plain = PlainGets(
            self.options.prefix,
            share_cookies=self.options.cache_credentialed,
            trusted=self.options.trusted_forwarding_headers,
        )
        self._flights: dict[str, asyncio.Event] = {}
        self._refreshing: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        plain = self.plain.plain(scope)
        if plain is None:
            await _Responder(self, scope, receive, send).run()
            return
        # A plain GET or HEAD (`http_cache.plain`): `flow.lookup` inlined (it carries no credentials, so
        # there is nothing to refuse; a call per step costs a measurable share of a hit) and a fresh hit,
        # or its 304, sent as two messages; anything else goes on with the lookup done.
        (url, index), validators = plain
        try:
            variants = self.parsed.variants(await self.cache.get(index))
            chosen = variants[0] if variants else None
            if chosen is not None and chosen.vary:
                chosen = select(variants, decode_headers(scope["headers"]))
            prepared = None if chosen is None else self.parsed.prepared(await self.cache.get(chosen.key))
        except Exception as exc:
            cache_fault("read", exc)
            variants, prepared = [], None
        if prepared is not None:
            age = prepared.facts.fresh_age(self.clock())
            if age is not None:
                method = scope["method"]
                if validators is not None and validators_match(prepared, method, validators):
                    await send(wire_not_modified(prepared, age, b"HIT"))
                    body = b""
                else:
                    await send(wire_start(prepared, age, b"HIT"))
                    body = b"" if method == "HEAD" else prepared.entry.body
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
        found = Found(url, variants, None if prepared is None else prepared.entry, prepared)
        await _Responder(self, scope, receive, send).run(found)

    async def wait_background(self) -> None:
        """Wait for background revalidations (stale-while-revalidate) started so far."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)


class _Responder:
    """State of one request: the lookup, the forwarded request, and what its `send` does."""

    def __init__(self, middleware: CacheMiddleware, scope: Scope, receive: Receive, send: Send) -> None:
        self.mw = middleware
        self.options = middleware.options
        self.scope = scope
        self.receive = receive
        self._send = send
        self.started = False
        self.release: Callable[[], None] = _no_flight
        self.request = request_of(scope)

    async def send(self, message: Message) -> None:
        self.started = True
        await self._send(message)

    async def run(self, found: Found | None = None) -> None:
        """Answer the request; `found` is its lookup when the caller has done it already."""
        request, options = self.request, self.options
        if request.method not in LOOKUP_METHODS or request.untrusted_forwarding(options.trusted_forwarding_headers):
            await self.forward(None, None)  # never looked up nor stored: BYPASS
            return
        if found is None:
            found = await self.mw.calls.read(lookup(self.request, self.mw.parsed))
        if await self.answer_from(found):
            return
        flight = self.mw._flights.get(found.url) if self.request.method == "GET" else None
        if flight is not None:  # another request is fetching this URL: wait for its stored copy
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(flight.wait(), self.options.lock_timeout)
            found = await self.mw.calls.read(lookup(self.request, self.mw.parsed))
            if await self.answer_from(found):
                return
        elif self.request.method == "GET":
            event = self.mw._flights[found.url] = asyncio.Event()

            def release() -> None:
                # Followers are let go as soon as the outcome is known (stored, or streaming
                # unstored), not when a long uncacheable body has finished.
                if self.mw._flights.get(found.url) is event:
                    del self.mw._flights[found.url]
                event.set()

            self.release = release
            try:
                await self.forward(found, decide(self.request, found.entry, self.mw.clock(), self.options))
            finally:
                release()
            return
        await self.forward(found, decide(self.request, found.entry, self.mw.clock(), self.options))

    async def answer_from(self, found: Found) -> bool:
        """Serve from storage when the decision allows it; False when the app must be asked."""
        prepared = found.prepared
        now = self.mw.clock()
        decision = decide(self.request, found.entry, now, self.options, prepared.facts if prepared else None)
        if decision.use is Use.GATEWAY_TIMEOUT:
            await self.respond(gateway_timeout())
            return True
        if prepared is None or decision.use is Use.VALIDATE:
            return False
        x_cache = "HIT" if decision.use is Use.FRESH else "STALE"
        await self.respond_stored(prepared, now, x_cache)
        if decision.use is Use.STALE_REVALIDATE:
            self.refresh_in_background(found)
        return True

    def refresh_in_background(self, found: Found) -> None:
        key = f"{found.url}:{sorted(found.entry.vary.items()) if found.entry else ''}"
        if key in self.mw._refreshing:
            return
        self.mw._refreshing.add(key)

        async def discard(message: Message) -> None:
            return None

        async def no_body() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def refresh() -> None:
            try:
                responder = _Responder(self.mw, self.scope, no_body, discard)
                await responder.forward(found, Decision(Use.VALIDATE))
            except Exception as exc:  # nobody awaits this task: report the app's failure here
                logger.warning("cachetier: background revalidation of %s failed: %r", self.request.path, exc)
            finally:
                self.mw._refreshing.discard(key)

        task = asyncio.get_running_loop().create_task(refresh())
        self.mw._background.add(task)
        task.add_done_callback(self.mw._background.discard)

    async def respond(self, response: Response) -> None:
        status, headers, body = response
        await self.send({"type": "http.response.start", "status": status, "headers": encode_headers(headers)})
        await self.send({"type": "http.response.body", "body": body, "more_body": False})

    async def respond_stored(self, prepared: Prepared, now: float, x_cache: str) -> None:
        """`respond(served(...))`, with the stored headers encoded once per entry rather than per hit."""
        request = self.request
        if request.conditional or request.ranged or request.method != "GET":
            await self.respond(served(request, prepared, now, x_cache))
            return
        await self.send(wire_start(prepared, prepared.facts.age(now), x_cache.encode("latin-1")))
        await self.send({"type": "http.response.body", "body": prepared.entry.body, "more_body": False})

    async def forward(self, found: Found | None, decision: Decision | None) -> None:
        """Ask the app (conditionally when revalidating), then serve, store or stream its answer."""
        request, options, mw = self.request, self.options, self.mw
        scope = self.scope
        if found is not None:
            scope = dict(scope, headers=encode_headers(validating_headers(request.headers, found.entry)))
        request_time = mw.clock()
        state: dict[str, Any] = {"outcome": None}
        buffer = BodyBuffer(options.max_body_size)
        start: dict[str, Any] = {}

        async def send(message: Message) -> None:
            outcome: Outcome | None = state["outcome"]
            if message["type"] == "http.response.start":
                status, headers = message["status"], decode_headers(message.get("headers", []))
                start.update(
                    status=status, headers=headers, time=mw.clock(), request_time=request_time, message=message
                )
                # A response announcing trailers is streamed: the stored copy could not carry them.
                outcome = state["outcome"] = on_response(
                    request,
                    found,
                    decision,
                    status,
                    headers,
                    (request_time, start["time"]),
                    options,
                    can_buffer=not message.get("trailers", False),
                )
                if found is None:
                    urls = invalidated_urls(request, status, headers, options)
                    if urls:
                        await mw.calls.drop(await mw.calls.read(invalidation(urls, options)))
                if outcome.next is Next.PASS:
                    writes, drops = pass_writes(found, outcome, mw.clock(), options)
                    if writes:
                        await mw.calls.write(writes)
                    await mw.calls.drop(drops)
                    self.release()
                    await self.send_start(status if not outcome.not_modified else 304, outcome.headers, message)
                return
            if outcome is None or message["type"] != "http.response.body":
                await self.send(message)
                return
            if outcome.next is Next.SERVE_ENTRY:
                return
            if outcome.next is Next.PASS:
                if not outcome.not_modified:
                    await self.send(message)
                elif not message.get("more_body", False):
                    await self.send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            more = message.get("more_body", False)
            if buffer.overflowed:
                await self.send(message)
            elif not buffer.add(message.get("body", b"")):
                await self.flush(start, buffer, more)
            elif not more:
                await self.store_and_serve(found, start, buffer.take())

        try:
            await mw.app(scope, self.receive, send)
        except Exception:
            if (
                found is not None
                and found.entry is not None
                and decision is not None
                and decision.stale_if_error
                and not self.started
            ):
                await self.respond(entry_response(request, found.entry, mw.clock(), "STALE", options))
                return
            raise
        outcome = state["outcome"]
        if outcome is not None and outcome.next is Next.BUFFER and not self.started:
            await self.flush(start, buffer, more=False)  # the app ended without a final body message
        if outcome is not None and outcome.next is Next.SERVE_ENTRY and outcome.entry is not None:
            if outcome.store and found is not None:
                await mw.calls.write(store_items(found, outcome.entry, mw.clock(), options))
            self.release()
            await self.respond(entry_response(request, outcome.entry, mw.clock(), outcome.x_cache, options))

    async def send_start(self, status: int, headers: Headers, original: Message) -> None:
        await self.send({**original, "status": status, "headers": encode_headers(headers)})

    async def flush(self, start: dict[str, Any], buffer: BodyBuffer, more: bool) -> None:
        """The body outgrew max_body_size: send what was buffered and stream the rest unstored."""
        self.release()
        headers = client_headers(start["headers"], self.options, x_cache="BYPASS")
        await self.send_start(start["status"], headers, start["message"])
        await self.send({"type": "http.response.body", "body": buffer.take(), "more_body": more})

    async def store_and_serve(self, found: Found | None, start: dict[str, Any], body: bytes) -> None:
        assert found is not None  # BUFFER is only chosen for looked-up requests
        times = (start["request_time"], start["time"])
        done = complete(self.request, found, start["status"], start["headers"], body, times, self.options)
        if done is None:
            self.release()
            await self.respond(unstored(start["status"], start["headers"], body, self.options))
            return
        entry, live = done
        stored = await self.mw.calls.write(store_items(found, entry, self.mw.clock(), self.options))
        self.release()
        x_cache = "MISS" if stored else "BYPASS"
        await self.respond(entry_response(self.request, live, self.mw.clock(), x_cache, self.options))


def _no_flight() -> None:
    return None


def purge_endpoint(cache: CacheManager, *, token: str) -> ASGIApp:
    """An ASGI app purging tags: `POST {"tags": [...]}` with `Authorization: Bearer <token>`.

    Answers 200 `{"purged": n, "tags": [...]}`, 401 without a token, 403 with
    a wrong one (constant-time comparison), 405 for other methods, 400 for a
    bad body, 413 for a body over 1 MiB. Route it on a path only your deploy
    tooling reaches: `Route("/_cache/purge", purge_endpoint(cache, token=...))`.
    """
    return PurgeEndpoint(cache, token)
