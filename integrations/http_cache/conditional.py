"""Conditional requests (RFC 9110 13) evaluated by the cache, and the validators it sends upstream."""

from __future__ import annotations

from typing import Final

import xxhash

from cachetier.integrations.http_cache.headers import Headers, combined, get_first, parse_http_date, without
from cachetier.integrations.http_cache.storage import StoredResponse

CONDITIONAL_FIELDS: Final = ("if-none-match", "if-modified-since")
"""Client validators the cache answers itself; they are not forwarded when filling the cache."""

RANGE_FIELDS: Final = ("range", "if-range")
"""Not forwarded when revalidating a stored response: the ranges are cut from the whole one."""

NOT_MODIFIED_FIELDS: Final = ("cache-control", "content-location", "date", "etag", "expires", "vary", "last-modified")
"""RFC 9110 15.4.5: the fields a 304 carries when the 200 would have had them (plus Last-Modified)."""


def opaque_tag(tag: str) -> str:
    """The opaque part of an entity-tag for weak comparison: weakness (`W/`, leniently `w/`) dropped,
    and quotes added to a bare token, as lenient caches do with malformed validators."""
    text = tag.strip()
    if text[:2] in ("W/", "w/"):
        text = text[2:]
    return text if '"' in text else f'"{text}"'


def entity_tags(value: str) -> list[str]:
    """The opaque tags of an If-None-Match list (weak comparison); commas inside quotes are kept."""
    if "," not in value and value.count('"') % 2 == 0:  # one tag, as browsers send: the loop finds just it
        item = value.strip()
        return [opaque_tag(item)] if item else []
    tags: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value + ",":
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            item = "".join(current).strip()
            if item:
                tags.append(opaque_tag(item))
            current = []
            continue
        current.append(char)
    return tags


def weak_match(etag: str, candidates: list[str]) -> bool:
    """RFC 9110 8.8.3.2 weak comparison: opaque tags equal, either may be weak."""
    return opaque_tag(etag) in candidates


def not_modified(method: str, request_headers: Headers, status: int, headers: Headers, received: float) -> bool:
    """Whether the request's If-None-Match / If-Modified-Since make a 304 the right answer.

    If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2); a stored
    response without Last-Modified is dated by `Date`, else by its receipt
    (RFC 9111 4.3.2). Only a 200 to GET/HEAD is ever turned into a 304.
    """
    if method not in ("GET", "HEAD") or status != 200:
        return False
    if_none_match = combined(request_headers, "if-none-match")
    if if_none_match is not None:
        if if_none_match.strip() == "*":
            return True
        etag = get_first(headers, "etag")
        return etag is not None and weak_match(etag, entity_tags(if_none_match))
    since = parse_http_date(get_first(request_headers, "if-modified-since"))
    if since is None:
        return False
    modified = parse_http_date(get_first(headers, "last-modified"))
    if modified is None:
        modified = parse_http_date(get_first(headers, "date"))
    return (received if modified is None else modified) <= since


def generated_etag(body: bytes) -> str:
    """Strong and deterministic: the same body gives the same ETag in every process, across restarts."""
    return f'"{xxhash.xxh3_64_hexdigest(body)}"'


def validating_headers(request_headers: Headers, entry: StoredResponse | None) -> Headers:
    """Request headers for the origin: the client's own validators replaced by the stored entry's
    (and, with an entry, no `Range`).

    An ETag the cache generated is not sent: the app never issued it, so it could not match, and
    (RFC 9110 13.2.2) its If-None-Match would make the app ignore If-Modified-Since.
    """
    if entry is None:
        return without(request_headers, CONDITIONAL_FIELDS)
    # a range is served from the stored (or refreshed) whole response, so the app is asked for all of it
    headers = without(request_headers, (*CONDITIONAL_FIELDS, *RANGE_FIELDS))
    etag = get_first(entry.headers, "etag")
    if etag is not None and etag == generated_etag(entry.body):
        etag = None
    if etag is not None:
        if '"' not in etag:  # a bare token from a sloppy origin: send it as the entity-tag it meant
            etag = f'"{etag.strip()}"'
        headers.append(("if-none-match", etag))
    last_modified = get_first(entry.headers, "last-modified")
    if last_modified is not None:
        headers.append(("if-modified-since", last_modified))
    return headers


def has_validator(headers: Headers) -> bool:
    return get_first(headers, "etag") is not None or get_first(headers, "last-modified") is not None
