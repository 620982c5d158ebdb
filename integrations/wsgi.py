"""`CacheMiddleware`: the RFC 9111 shared HTTP cache in front of a WSGI app, over a `SyncCache`.

The same rules as the ASGI middleware (`cachetier.integrations.http_cache`);
this module only adapts WSGI's pull-based iterables. Lookups go through
`SyncCache.get`, so L1 hits are answered in the request's own thread.
stale-while-revalidate refreshes in a daemon thread started per stale hit
(at most one per URL variant at a time; `wait_background()` joins them).
`X-Cache` values are those of the ASGI middleware.
"""

from __future__ import annotations

import io
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Unpack

import orjson

from cachetier import InvalidTagError
from cachetier.integrations.http_cache.cache_calls import SyncCalls
from cachetier.integrations.http_cache.conditional import CONDITIONAL_FIELDS, RANGE_FIELDS, validating_headers
from cachetier.integrations.http_cache.flow import (
    BodyBuffer,
    Found,
    Next,
    cache_fault,
    complete,
    invalidation,
    lookup,
    on_response,
    pass_writes,
    store_items,
    unstored,
)
from cachetier.integrations.http_cache.headers import get_first
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
from cachetier.integrations.http_cache.purge import MAX_PURGE_BODY, TOO_LARGE, check_purge, refuse_purge
from cachetier.integrations.http_cache.responses import (
    Response,
    client_headers,
    entry_response,
    gateway_timeout,
    served,
    validators_match,
    whole,
)
from cachetier.integrations.http_cache.storage import select
from cachetier.integrations.http_cache.wsgi_environ import PlainEnvirons, environ_headers, request_of, status_line
from cachetier.sync import SyncCache

logger = logging.getLogger("cachetier.http")

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

__all__ = ["CacheMiddleware", "purge_endpoint"]


class CacheMiddleware:
    """Response cache for GET/HEAD with shared-cache semantics (RFC 9111, RFC 5861, RFC 9213).

    Args:
        app: the wrapped WSGI app (the origin).
        cache: the blocking facade whose manager stores responses (tags via `tags=`).
        clock: seconds since the epoch; injectable for tests.
        **settings: see `cachetier.integrations.http_cache.policy.Settings`.

    Raises:
        ConfigError: an invalid setting.
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        cache: SyncCache,
        clock: Callable[[], float] = time.time,
        **settings: Unpack[Settings],
    ) -> None:
        self.app = app
        self.cache = cache
        self.clock = clock
        self.options = options_from(settings)
        self.parsed = ParsedValues(self.options)
        self.calls = SyncCalls(cache)
        self.plain = PlainEnvirons(
            self.options.prefix,
            share_cookies=self.options.cache_credentialed,
            trusted=self.options.trusted_forwarding_headers,
        )
        self._lock = threading.Lock()
        self._flights: dict[str, threading.Event] = {}
        self._refreshing: set[str] = set()
        self._background: set[threading.Thread] = set()

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        plain = self.plain.plain(environ)
        if plain is None:
            return _Responder(self, environ, start_response).run()
        # A plain GET or HEAD (`http_cache.plain`): `flow.lookup` inlined as in the ASGI driver (a call
        # per step costs a measurable share of a hit) and a fresh hit, or its 304, answered without a
        # `Request`; anything else goes on with the lookup done.
        (url, index), validators = plain
        try:
            variants = self.parsed.variants(self.cache.get(index))
            chosen = variants[0] if variants else None
            if chosen is not None and chosen.vary:
                chosen = select(variants, environ_headers(environ))
            prepared = None if chosen is None else self.parsed.prepared(self.cache.get(chosen.key))
        except Exception as exc:
            cache_fault("read", exc)
            variants, prepared = [], None
        if prepared is not None:
            age = prepared.facts.fresh_age(self.clock())
            if age is not None:
                method = environ["REQUEST_METHOD"]
                matched = validators is not None and validators_match(prepared, method, validators)
                status, headers, body = whole(prepared, age, "HIT", head=method == "HEAD", not_modified=matched)
                start_response(status_line(status), headers)
                return [body]
        found = Found(url, variants, None if prepared is None else prepared.entry, prepared)
        return _Responder(self, environ, start_response).run(found)

    def wait_background(self, timeout: float = 10.0) -> None:
        """Join the background revalidation threads started so far."""
        with self._lock:
            threads = list(self._background)
        for thread in threads:
            thread.join(timeout)


class _Responder:
    """State of one request: the lookup, the forwarded call, and the iterable handed back."""

    def __init__(self, middleware: CacheMiddleware, environ: Environ, start_response: StartResponse) -> None:
        self.mw = middleware
        self.options = middleware.options
        self.environ = environ
        self.start_response = start_response
        self.request = request_of(environ)

    def run(self, found: Found | None = None) -> Iterable[bytes]:
        """Answer the request; `found` is its lookup when the caller has done it already."""
        request, options = self.request, self.options
        if request.method not in LOOKUP_METHODS or request.untrusted_forwarding(options.trusted_forwarding_headers):
            return self.forward(None, None)  # never looked up nor stored: BYPASS
        if found is None:
            found = self.mw.calls.read(lookup(self.request, self.mw.parsed))
        answer = self.answer_from(found)
        if answer is not None:
            return answer
        flight: threading.Event | None = None
        leader = False
        if self.request.method == "GET":
            with self.mw._lock:
                flight = self.mw._flights.get(found.url)
                if flight is None:
                    flight = self.mw._flights[found.url] = threading.Event()
                    leader = True
        if flight is not None and not leader:  # another thread is fetching this URL: wait for its copy
            flight.wait(self.options.lock_timeout)
            found = self.mw.calls.read(lookup(self.request, self.mw.parsed))
            answer = self.answer_from(found)
            if answer is not None:
                return answer
        try:
            return self.forward(found, decide(self.request, found.entry, self.mw.clock(), self.options))
        finally:
            if leader and flight is not None:
                with self.mw._lock:
                    del self.mw._flights[found.url]
                flight.set()

    def answer_from(self, found: Found) -> Iterable[bytes] | None:
        prepared = found.prepared
        now = self.mw.clock()
        decision = decide(self.request, found.entry, now, self.options, prepared.facts if prepared else None)
        if decision.use is Use.GATEWAY_TIMEOUT:
            return self.respond(gateway_timeout())
        if prepared is None or decision.use is Use.VALIDATE:
            return None
        x_cache = "HIT" if decision.use is Use.FRESH else "STALE"
        answer = self.respond(served(self.request, prepared, now, x_cache))
        if decision.use is Use.STALE_REVALIDATE:
            self.refresh_in_background(found)
        return answer

    def refresh_in_background(self, found: Found) -> None:
        key = f"{found.url}:{sorted(found.entry.vary.items()) if found.entry else ''}"
        with self.mw._lock:
            if key in self.mw._refreshing:
                return
            self.mw._refreshing.add(key)
        environ = {**self.environ, "wsgi.input": io.BytesIO(b""), "CONTENT_LENGTH": "0"}

        def discard(status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None) -> Any:
            return lambda data: None

        def refresh() -> None:
            try:
                body = _Responder(self.mw, environ, discard).forward(found, Decision(Use.VALIDATE))
                try:
                    for _ in body:
                        pass
                finally:
                    _close(body)
            except Exception as exc:  # a daemon thread has nobody to raise to: report it here
                logger.warning("cachetier: background revalidation of %s failed: %r", self.request.path, exc)
            finally:
                with self.mw._lock:
                    self.mw._refreshing.discard(key)
                    self.mw._background.discard(thread)

        thread = threading.Thread(target=refresh, name="cachetier-revalidate", daemon=True)
        with self.mw._lock:
            self.mw._background.add(thread)
        thread.start()

    def respond(self, response: Response) -> list[bytes]:
        status, headers, body = response
        self.start_response(status_line(status), headers)
        return [body]

    def forward(self, found: Found | None, decision: Decision | None) -> Iterable[bytes]:
        """Call the app (conditionally when revalidating), then serve, store or stream its answer."""
        request, options, mw = self.request, self.options, self.mw
        environ = self.environ
        if found is not None:
            dropped = _CONDITIONAL_KEYS if found.entry is None else _CONDITIONAL_KEYS | _RANGE_KEYS
            environ = {key: value for key, value in environ.items() if key not in dropped}
            sent = validating_headers(request.headers, found.entry)
            for name in CONDITIONAL_FIELDS:
                value = get_first(sent, name)
                if value is not None:
                    environ["HTTP_" + name.upper().replace("-", "_")] = value
        captured: list[Any] = []
        written: list[bytes] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None) -> Any:
            captured[:] = [status, headers]
            return written.append

        def stale_if_error() -> list[bytes] | None:
            if found is not None and found.entry is not None and decision is not None and decision.stale_if_error:
                return self.respond(entry_response(request, found.entry, mw.clock(), "STALE", options))
            return None

        request_time = mw.clock()
        result: Iterable[bytes] = ()
        try:
            result = mw.app(environ, capture)
            iterator = iter(result)
            early: list[bytes] = []
            while not captured:  # start_response may be called on the first iteration
                early.append(next(iterator))
        except Exception:
            _close(result)
            fallback = stale_if_error()
            if fallback is None:
                raise
            return fallback
        status, headers = int(captured[0].split()[0]), [(k.lower(), v) for k, v in captured[1]]
        times = (request_time, mw.clock())
        outcome = on_response(request, found, decision, status, headers, times, options)
        if found is None:
            urls = invalidated_urls(request, status, headers, options)
            if urls:
                mw.calls.drop(mw.calls.read(invalidation(urls, options)))
        chunks = itertools.chain(written, early, iterator)
        if outcome.next is Next.SERVE_ENTRY and outcome.entry is not None and found is not None:
            _close(result)
            if outcome.store:
                mw.calls.write(store_items(found, outcome.entry, mw.clock(), options))
            return self.respond(entry_response(request, outcome.entry, mw.clock(), outcome.x_cache, options))
        if outcome.next is Next.PASS or found is None:
            writes, drops = pass_writes(found, outcome, mw.clock(), options)
            if writes:
                mw.calls.write(writes)
            mw.calls.drop(drops)
            self.start_response(status_line(304 if outcome.not_modified else status), outcome.headers)
            if outcome.not_modified:
                _close(result)
                return []
            return _Body(chunks, result)
        buffer = BodyBuffer(options.max_body_size)
        try:
            complete_body = all(buffer.add(chunk) for chunk in chunks)
        except Exception:
            _close(result)
            fallback = stale_if_error()
            if fallback is None:
                raise
            return fallback
        if not complete_body:  # too large to store: send what we have, stream the rest unstored
            self.start_response(status_line(status), client_headers(headers, options, x_cache="BYPASS"))
            return _Body(itertools.chain([buffer.take()], chunks), result)
        _close(result)
        body = buffer.take()
        done = complete(request, found, status, headers, body, times, options)
        if done is None:
            return self.respond(unstored(status, headers, body, options))
        entry, live = done
        x_cache = "MISS" if mw.calls.write(store_items(found, entry, mw.clock(), options)) else "BYPASS"
        return self.respond(entry_response(request, live, mw.clock(), x_cache, options))


_CONDITIONAL_KEYS = frozenset("HTTP_" + name.upper().replace("-", "_") for name in CONDITIONAL_FIELDS)
_RANGE_KEYS = frozenset("HTTP_" + name.upper().replace("-", "_") for name in RANGE_FIELDS)


def _close(result: Iterable[bytes]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


class _Body:
    """The rest of the app's body; `close()` closes the app's iterable (PEP 3333), even if never iterated."""

    def __init__(self, chunks: Iterator[bytes], result: Iterable[bytes]) -> None:
        self._chunks = chunks
        self._result = result

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        _close(self._result)


def purge_endpoint(cache: SyncCache, *, token: str) -> WSGIApp:
    """A WSGI app purging tags; the same contract as `cachetier.integrations.asgi.purge_endpoint`."""
    if not token:
        raise ValueError("purge_endpoint needs a non-empty token")

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        request = request_of(environ)
        answer = refuse_purge(request.method, request.headers, token)
        if answer is None and length > MAX_PURGE_BODY:
            answer = TOO_LARGE
        if answer is None:
            body = environ["wsgi.input"].read(length) if length > 0 else b""
            answer = check_purge(request.method, request.headers, body, token)
        status, payload, tags = answer
        if tags:
            try:
                payload = {"purged": cache.invalidate_by_tags(tags), "tags": tags}
            except InvalidTagError as exc:
                status, payload = 400, {"error": str(exc)}
        data = orjson.dumps(payload)
        start_response(status_line(status), [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return app
