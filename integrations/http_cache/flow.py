"""The request flow shared by the ASGI and WSGI drivers, as steps they execute.

Reads are generators that yield cache keys and receive the stored values, so
one implementation serves an `await cache.get(...)` driver and a blocking
`SyncCache.get(...)` driver alike. Everything else returns plain values
saying what to send and what to write.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from cachetier import EntryOptions, MSetItem
from cachetier.integrations.http_cache.conditional import not_modified
from cachetier.integrations.http_cache.headers import HOP_BY_HOP, Headers, format_http_date, get_first
from cachetier.integrations.http_cache.hits import ParsedValues
from cachetier.integrations.http_cache.policy import (
    Decision,
    Options,
    credentials_allow,
    storable,
    storage_ttl,
)
from cachetier.integrations.http_cache.ranges import whole_representation
from cachetier.integrations.http_cache.request import Request
from cachetier.integrations.http_cache.responses import Prepared, Response, client_headers, freshen, new_entry
from cachetier.integrations.http_cache.storage import (
    StoredResponse,
    Variant,
    index_key,
    index_with,
    parse_index,
    select,
    variant_key,
)

Reads = Generator[str, Any, Any]

logger = logging.getLogger("cachetier.http")


def cache_fault(action: str, exc: Exception) -> None:
    """Log a cache-side failure; the drivers then go on as if uncached (a cache problem never fails a request)."""
    logger.warning("cachetier: the HTTP cache could not %s; the request is answered without it: %r", action, exc)


@dataclass(frozen=True, slots=True)
class Found:
    """The result of a lookup: the URL's hash, its variants, and the entry the request selects."""

    url: str
    variants: list[Variant]
    entry: StoredResponse | None
    prepared: Prepared | None = None  # the entry with its facts and client headers, when there is one


def lookup(request: Request, parsed: ParsedValues) -> Generator[str, Any, Found]:
    """Read the URL's variant index, then the variant the request selects (RFC 9111 4.1)."""
    options = parsed.options
    url = request.url(options.trusted_forwarding_headers)
    variants = parsed.variants((yield index_key(options.prefix, url)))
    chosen = select(variants, request.headers)
    prepared = None if chosen is None else parsed.prepared((yield chosen.key))
    if prepared is None:
        return Found(url, variants, None)
    if (request.authorized or request.cookie) and not credentials_allow(
        request, prepared.facts.policy, prepared.entry.vary, options
    ):
        return Found(url, variants, None)  # not even its validators may be used for this request (RFC 9111 3.5)
    return Found(url, variants, prepared.entry, prepared)


def invalidation(urls: list[str], options: Options) -> Generator[str, Any, list[str]]:
    """Read each URL's index (by URL hash); return every key to delete (the indexes and all their variants)."""
    keys: list[str] = []
    for url in urls:
        key = index_key(options.prefix, url)
        keys.append(key)
        keys.extend(variant.key for variant in parse_index((yield key)))
    return keys


def run_reads(steps: Generator[str, Any, Any], get: Callable[[str], Any]) -> Any:
    """Drive read steps with a blocking `get` (the async drivers inline the same loop with await);
    a failing read counts as a miss."""
    try:
        key = next(steps)
        while True:
            try:
                value = get(key)
            except Exception as exc:
                cache_fault("read", exc)
                value = None
            key = steps.send(value)
    except StopIteration as stop:
        return stop.value


def store_items(found: Found, entry: StoredResponse, now: float, options: Options) -> list[MSetItem]:
    """The variant and the updated index to write; empty when the entry should not be kept."""
    ttl = storage_ttl(entry, now, options)
    if ttl <= 0:
        return []
    key = variant_key(options.prefix, found.url, entry.vary)
    index, index_ttl = index_with(found.variants, Variant(key, entry.vary, ttl), options.max_variants)
    variant_options: EntryOptions = {"ttl": ttl, "tags": list(entry.tags)}
    return [(key, entry.to_dict(), variant_options), (index_key(options.prefix, found.url), index, {"ttl": index_ttl})]


class Next(enum.Enum):
    """What a driver does with the origin's response."""

    SERVE_ENTRY = "serve-entry"  # discard the origin's body; serve `Outcome.entry`
    BUFFER = "buffer"  # buffer the body up to max_body_size, then `complete()`
    PASS = "pass"  # stream it through with `Outcome.headers` (or a bare 304 when `not_modified`)


@dataclass(frozen=True, slots=True)
class Outcome:
    next: Next
    x_cache: str = "MISS"
    entry: StoredResponse | None = None
    store: bool = False
    headers: Headers = field(default_factory=list)
    not_modified: bool = False
    drop: bool = False  # the selected stored variant is outdated (RFC 9111 4.3.5)


def on_response(
    request: Request,
    found: Found | None,
    decision: Decision | None,
    status: int,
    headers: Headers,
    times: tuple[float, float],
    options: Options,
    *,
    can_buffer: bool = True,
) -> Outcome:
    """Classify the origin's answer to a (possibly conditional) forwarded request.

    A 304 to our validators freshens the stored entry (RFC 9111 4.3.3/4.3.4); a
    5xx may be replaced by the stale entry under stale-if-error (RFC 5861 4);
    a storable response is buffered; anything else streams through, answered
    with a 304 when the client's own validators match it.
    """
    entry = found.entry if found is not None else None
    request_time, response_time = times
    if entry is not None and status == 304:
        fresh = freshen(entry, headers, request_time, response_time, options)
        return Outcome(Next.SERVE_ENTRY, "REVALIDATED", fresh, store=still_storable(request, fresh, options))
    if entry is not None and decision is not None and decision.stale_if_error and status >= 500:
        return Outcome(Next.SERVE_ENTRY, "STALE", entry)
    stored_as = (status, headers)
    if status == 206:  # one covering the whole representation is stored as the 200 it equals
        whole = whole_representation(headers)
        if whole is not None:
            stored_as = (200, whole)
    if can_buffer and found is not None and storable(request, *stored_as, response_time, options):
        return Outcome(Next.BUFFER)
    sent = list(headers)
    if found is not None and get_first(sent, "date") is None:
        sent.append(("date", format_http_date(response_time)))
    matched = found is not None and not_modified(request.method, request.headers, status, sent, response_time)
    updated, drop = None, False
    if request.method == "HEAD" and status == 200 and entry is not None:  # RFC 9111 4.3.5
        if same_representation(entry, headers):
            updated = freshen(entry, headers, request_time, response_time, options)
            if not still_storable(request, updated, options):
                updated = None
        else:
            drop = True
    # neither stored nor served from storage: BYPASS (a HEAD that refreshed the stored GET did use it)
    x_cache = "MISS" if updated is not None else "BYPASS"
    passed = client_headers(sent, options, x_cache=x_cache)
    if matched:  # RFC 9110 15.4.5: a 304 carries no representation metadata (nor a Content-Length for a body it lacks)
        passed = [(name, value) for name, value in passed if not _representation_field(name)]
    return Outcome(
        Next.PASS,
        x_cache,
        updated,
        store=updated is not None,
        headers=passed,
        not_modified=matched,
        drop=drop,
    )


def _representation_field(name: str) -> bool:
    return (name.startswith("content-") and name != "content-location") or name == "transfer-encoding"


def still_storable(request: Request, updated: StoredResponse, options: Options) -> bool:
    """Whether an entry updated from a 304 or a HEAD response may still be stored and shared: the
    update may have brought `Set-Cookie`, `private` or `no-store`, which are meant for this client only.
    A HEAD request updates the stored GET response, so it is judged as that GET."""
    as_get = request if request.method == "GET" else dataclasses.replace(request, method="GET")
    return storable(as_get, updated.status, updated.headers, updated.response_time, options)


def same_representation(entry: StoredResponse, headers: Headers) -> bool:
    """Whether a HEAD response describes the stored GET response: ETag, Last-Modified and
    Content-Length agree wherever both sides have them."""
    pairs = [
        (get_first(entry.headers, "etag"), get_first(headers, "etag")),
        (get_first(entry.headers, "last-modified"), get_first(headers, "last-modified")),
        (str(len(entry.body)), get_first(headers, "content-length")),
    ]
    return all(old is None or new is None or old.strip() == new.strip() for old, new in pairs)


def pass_writes(
    found: Found | None, outcome: Outcome, now: float, options: Options
) -> tuple[list[MSetItem], list[str]]:
    """Cache writes and deletions that accompany a streamed-through response (a HEAD's update)."""
    if found is None or found.entry is None:
        return [], []
    if outcome.drop:
        return [], [variant_key(options.prefix, found.url, found.entry.vary)]
    if outcome.store and outcome.entry is not None:
        return store_items(found, outcome.entry, now, options), []
    return [], []


def complete(
    request: Request,
    found: Found,
    status: int,
    headers: Headers,
    body: bytes,
    times: tuple[float, float],
    options: Options,
) -> tuple[StoredResponse, StoredResponse] | None:
    """The entry to store for a fully buffered storable response, and the one to answer this request
    with: the same, plus the fields a qualified `private`/`no-cache` kept out of storage (they were
    meant for this client). None for a 206 whose body is not the whole representation its
    `Content-Range` claims: it goes out as it came (`unstored`)."""
    if status == 206:
        whole = whole_representation(headers, len(body))
        if whole is None:
            return None
        status, headers = 200, whole
    entry = new_entry(request, status, headers, body, times[0], times[1], options)
    kept = {name for name, _ in entry.headers} | {"content-length", "x-cache"} | HOP_BY_HOP
    withheld = [(name, value) for name, value in headers if name not in kept and name not in options.tag_headers]
    return entry, dataclasses.replace(entry, headers=[*entry.headers, *withheld]) if withheld else entry


def unstored(status: int, headers: Headers, body: bytes, options: Options) -> Response:
    """The app's buffered response as it came, for a client, marked as not stored."""
    return status, client_headers(headers, options, x_cache="BYPASS"), body


class BodyBuffer:
    """Collects a response body until it exceeds `limit` bytes, after which it only reports that it did."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.overflowed = False

    def add(self, chunk: bytes) -> bool:
        """Keep `chunk`; False once the total passed the limit (the caller then flushes and streams)."""
        if chunk:
            self.chunks.append(chunk)
            self.size += len(chunk)
        self.overflowed = self.size > self.limit
        return not self.overflowed

    def take(self) -> bytes:
        body = b"".join(self.chunks)
        self.chunks.clear()
        return body
