"""Building stored entries from origin responses, and client responses from stored entries."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cachetier import MAX_TAG_BYTES
from cachetier.integrations.cdn import parse_tag_header, render_tag_headers
from cachetier.integrations.http_cache.conditional import NOT_MODIFIED_FIELDS, generated_etag, not_modified
from cachetier.integrations.http_cache.directives import field_names
from cachetier.integrations.http_cache.headers import (
    Headers,
    format_http_date,
    get_first,
    replace,
    strip_hop_by_hop,
    without,
)
from cachetier.integrations.http_cache.policy import EntryFacts, Options, entry_facts, response_policy
from cachetier.integrations.http_cache.ranges import ranged
from cachetier.integrations.http_cache.request import Request
from cachetier.integrations.http_cache.storage import StoredResponse, vary_names, vary_values

Response = tuple[int, Headers, bytes]


def tags_of(headers: Headers, options: Options) -> tuple[str, ...]:
    """Tags the app put on a response (`Cache-Tag` or the configured name, `Surrogate-Key`, `xkey`).

    A tag the cache would reject (longer than `MAX_TAG_BYTES`, or with NUL/U+001F) is left out
    rather than failing the response: no purge could name it anyway.
    """
    tags: dict[str, None] = {}
    for name, value in headers:
        if name in options.tag_headers:
            tags.update(dict.fromkeys(tag for tag in parse_tag_header(value) if _holdable(tag)))
    return tuple(tags)


def _holdable(tag: str) -> bool:
    return "\x00" not in tag and "\x1f" not in tag and len(tag.encode()) <= MAX_TAG_BYTES


def client_headers(
    headers: Headers, options: Options, *, x_cache: str, tags: tuple[str, ...] | None = None, age: float | None = None
) -> Headers:
    """Headers as the client sees them: our targeted field and tag fields stripped (per options),
    CDN tag fields rendered for `cdn_dialects`, `Age` when served from storage, and `X-Cache`."""
    if tags is None:
        tags = tags_of(headers, options)
    out = visible_headers(headers, options, tags)
    if age is not None:
        out = replace(out, "age", str(int(age)))
    out.append(("x-cache", x_cache))
    return out


def visible_headers(headers: Headers, options: Options, tags: tuple[str, ...]) -> Headers:
    """`client_headers` before `Age` and `X-Cache`: stripped per options, CDN tag fields rendered."""
    drop = {"x-cache"} if options.send_date else {"x-cache", "date"}
    if options.strip_target_header:
        drop.add(options.target_header.lower())
    if options.strip_tag_header:
        drop.update(options.tag_headers)
    out = without(headers, drop)
    if options.cdn_dialects and tags:
        rendered = [(name.lower(), value) for name, value in render_tag_headers(tags, options.cdn_dialects)]
        out = [*without(out, {name for name, _ in rendered}), *rendered]
    return out


def new_entry(
    request: Request,
    status: int,
    headers: Headers,
    body: bytes,
    request_time: float,
    response_time: float,
    options: Options,
) -> StoredResponse:
    """The stored copy (RFC 9111 3.1): hop-by-hop fields and fields named by a qualified `private`
    or `no-cache` removed, tag fields kept aside as tags, `Date` added when the app sent none
    (RFC 9110 6.6.1), and a deterministic strong ETag for a 200 without one (when enabled)."""
    policy = response_policy(headers, options)
    qualified = field_names(policy.directives.get("private")) + field_names(policy.directives.get("no-cache"))
    tag_fields = options.tag_headers if options.strip_tag_header else ()
    stored = without(strip_hop_by_hop(headers), {*qualified, *tag_fields, "x-cache", "content-length"})
    if get_first(stored, "date") is None:
        stored.append(("date", format_http_date(response_time)))
    if options.generate_etags and status == 200 and get_first(stored, "etag") is None:
        stored.append(("etag", generated_etag(body)))
    return StoredResponse(
        status=status,
        headers=stored,
        body=body,
        request_time=request_time,
        response_time=response_time,
        vary=vary_values(request.headers, vary_names(headers) or []),
        tags=tags_of(headers, options),
    )


def freshen(
    entry: StoredResponse, headers: Headers, request_time: float, response_time: float, options: Options
) -> StoredResponse:
    """RFC 9111 4.3.4 / 3.2: fields of a 304 replace the stored ones (not Content-Length or
    hop-by-hop); the stored age restarts from this validation."""
    tag_fields = options.tag_headers if options.strip_tag_header else ()
    updates = without(strip_hop_by_hop(headers), {"content-length", "x-cache", *tag_fields})
    names = {name for name, _ in updates}
    if "age" not in names:
        names.add("age")
    if "date" not in names:
        updates.append(("date", format_http_date(response_time)))
        names.add("date")
    new_tags = tags_of(headers, options)
    return dataclasses.replace(
        entry,
        headers=[*without(entry.headers, names), *updates],
        request_time=request_time,
        response_time=response_time,
        tags=new_tags or entry.tags,
    )


@dataclass(frozen=True, slots=True)
class Prepared:
    """A stored entry with what serving it needs computed once: its freshness facts and the client
    headers that do not depend on the request (those before `Age`, `X-Cache` and `Content-Length`),
    also latin-1 encoded for ASGI, and the part of them a 304 keeps."""

    entry: StoredResponse
    facts: EntryFacts
    headers: Headers
    wire: tuple[tuple[bytes, bytes], ...]
    content_length: str
    wire_length: tuple[bytes, bytes]
    not_modified: Headers
    not_modified_wire: tuple[tuple[bytes, bytes], ...]


_NOT_MODIFIED_KEPT = frozenset((*NOT_MODIFIED_FIELDS, "age", "x-cache"))


def prepare(entry: StoredResponse, options: Options) -> Prepared:
    headers = without(visible_headers(entry.headers, options, entry.tags), ("age",))
    wire = _encoded(headers)
    length = str(len(entry.body))
    kept = [(name, value) for name, value in headers if name in _NOT_MODIFIED_KEPT]
    return Prepared(
        entry,
        entry_facts(entry, options),
        headers,
        wire,
        length,
        (b"content-length", length.encode()),
        kept,
        _encoded(kept),
    )


def _encoded(headers: Headers) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((name.encode("latin-1"), value.encode("latin-1")) for name, value in headers)


def wire_start(prepared: Prepared, age: float, x_cache: bytes) -> dict[str, Any]:
    """The ASGI `http.response.start` message of `whole(...)` at `age` seconds, served whole.

    The message and its header list are new on every call: middleware outside
    ours may add headers to the list in place (Starlette's `MutableHeaders` does).
    """
    headers = [*prepared.wire, (b"age", b"%d" % age), (b"x-cache", x_cache), prepared.wire_length]
    return {"type": "http.response.start", "status": prepared.entry.status, "headers": headers}


def wire_not_modified(prepared: Prepared, age: float, x_cache: bytes) -> dict[str, Any]:
    """`wire_start` for the 304 of `whole(..., not_modified=True)`."""
    headers = [*prepared.not_modified_wire, (b"age", b"%d" % age), (b"x-cache", x_cache)]
    return {"type": "http.response.start", "status": 304, "headers": headers}


def validators_match(prepared: Prepared, method: str, validators: Headers) -> bool:
    """Whether the request fields `validators` (If-None-Match, If-Modified-Since; others are ignored)
    make a 304 the answer from this stored response."""
    entry = prepared.entry
    return not_modified(method, validators, entry.status, entry.headers, entry.response_time)


def whole(prepared: Prepared, age: float, x_cache: str, *, head: bool, not_modified: bool) -> Response:
    """The stored response served whole at `age` seconds (no body for HEAD), or the 304 answering
    validators that match it (RFC 9110 15.4.5: only the fields a 304 carries, and no body)."""
    age_field = ("age", str(int(age)))
    if not_modified:
        return 304, [*prepared.not_modified, age_field, ("x-cache", x_cache)], b""
    headers = [*prepared.headers, age_field, ("x-cache", x_cache), ("content-length", prepared.content_length)]
    return prepared.entry.status, headers, b"" if head else prepared.entry.body


def served(request: Request, prepared: Prepared, now: float, x_cache: str) -> Response:
    """The stored response for this request: a 304 when the client's validators match, a 206 or 416
    for a `Range` (RFC 9110 14), no body for HEAD."""
    entry = prepared.entry
    age = prepared.facts.age(now)
    matched = request.conditional and validators_match(prepared, request.method, request.headers)
    if request.ranged and not matched:
        headers = [*prepared.headers, ("age", str(int(age))), ("x-cache", x_cache)]
        partial = ranged(request.headers, entry.status, entry.headers, headers, entry.body)
        if partial is not None:
            return partial
    return whole(prepared, age, x_cache, head=request.method == "HEAD", not_modified=matched)


def entry_response(request: Request, entry: StoredResponse, now: float, x_cache: str, options: Options) -> Response:
    """`served` for an entry not prepared beforehand."""
    return served(request, prepare(entry, options), now, x_cache)


def gateway_timeout() -> Response:
    """RFC 9111 5.2.1.7: `only-if-cached` and nothing usable stored."""
    body = b"Gateway Timeout: not in cache (only-if-cached)"
    headers = [("content-type", "text/plain; charset=utf-8"), ("content-length", str(len(body))), ("x-cache", "MISS")]
    return 504, headers, body
