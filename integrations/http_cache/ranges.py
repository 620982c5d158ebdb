"""Range requests (RFC 9110 14) answered from a stored 200: 206 with one part or multipart/byteranges, or 416.

A `Range` the cache cannot use (another unit, a malformed set, more than
`MAX_RANGES` ranges) is ignored and the whole 200 is served, as RFC 9110
14.2 allows; so is one whose `If-Range` does not match the stored
representation by strong comparison (RFC 9110 13.1.5).
"""

from __future__ import annotations

import re
from typing import Final

import xxhash

from cachetier.integrations.http_cache.headers import Headers, get_all, get_first, parse_http_date, without

MAX_RANGES: Final = 64
"""More ranges than this in one request are ignored (the whole representation is sent): many small or
overlapping ranges cost far more to assemble than the body they select."""


_WHOLE: Final = re.compile(r"\s*bytes\s+0-(\d+)/(\d+)\s*", re.IGNORECASE)


def whole_representation(headers: Headers, length: int | None = None) -> Headers | None:
    """A 206's fields as those of the 200 it equals, when its one `Content-Range` covers the whole
    representation (and `length` bytes, when given); None otherwise (RFC 9111 3.4: only then is it
    complete without combining it with stored parts)."""
    values = get_all(headers, "content-range")
    match = _WHOLE.fullmatch(values[0]) if len(values) == 1 else None
    if match is None or int(match[1]) + 1 != int(match[2]) or (length is not None and length != int(match[2])):
        return None
    return without(headers, ("content-range",))


def parse_ranges(value: str, length: int) -> list[tuple[int, int]] | None:
    """The satisfiable byte ranges (first, last inclusive) of a `Range` value for a body of `length` bytes.

    None when the field is to be ignored; an empty list when no range is satisfiable (a 416).
    """
    unit, _, specs = value.partition("=")
    if unit.strip().lower() != "bytes" or not specs.strip():
        return None
    members = [spec.strip() for spec in specs.split(",") if spec.strip()]
    if not members or len(members) > MAX_RANGES:
        return None
    ranges: list[tuple[int, int]] = []
    for spec in members:
        first, dash, last = (part.strip() for part in spec.partition("-"))
        if not dash or not (first or last) or not (first.isdigit() or not first) or not (last.isdigit() or not last):
            return None
        if not first:  # a suffix: the last `last` bytes
            if int(last) > 0 and length > 0:
                ranges.append((max(0, length - int(last)), length - 1))
            continue
        start = int(first)
        if last and int(last) < start:
            return None
        if start < length:
            ranges.append((start, min(int(last), length - 1) if last else length - 1))
    return ranges


def if_range_allows(value: str | None, stored: Headers) -> bool:
    """RFC 9110 13.1.5: whether the ranges may be served; True without `If-Range`.

    An entity-tag must equal the stored strong ETag; a date must equal the stored `Last-Modified`,
    which must itself be strong (at least a second older than the stored `Date`).
    """
    if value is None:
        return True
    text = value.strip()
    if text.startswith('"'):
        etag = get_first(stored, "etag")
        return etag is not None and not etag.startswith("W/") and etag.strip() == text
    since = parse_http_date(text)
    modified = parse_http_date(get_first(stored, "last-modified"))
    date = parse_http_date(get_first(stored, "date"))
    return since is not None and since == modified and date is not None and date - since >= 1


def ranged(
    request_headers: Headers, status: int, stored: Headers, headers: Headers, body: bytes
) -> tuple[int, Headers, bytes] | None:
    """The 206 or 416 answering a `Range` from a stored response; None to serve it whole.

    `stored` are the stored response's fields (its validators), `headers` the client headers of the
    whole response, without `Content-Length`.
    """
    value = get_first(request_headers, "range")
    if value is None or status != 200 or not if_range_allows(get_first(request_headers, "if-range"), stored):
        return None
    length = len(body)
    ranges = parse_ranges(value, length)
    if ranges is None:
        return None
    if not ranges:
        kept = [(name, v) for name, v in headers if not name.startswith("content-")]
        return 416, [*kept, ("content-range", f"bytes */{length}"), ("content-length", "0")], b""
    if len(ranges) == 1:
        first, last = ranges[0]
        part = body[first : last + 1]
        fields = [("content-range", f"bytes {first}-{last}/{length}"), ("content-length", str(len(part)))]
        return 206, [*headers, *fields], part
    content_type = get_first(headers, "content-type")
    boundary = xxhash.xxh3_64_hexdigest(body + value.encode("latin-1", "replace"))
    chunks: list[bytes] = []
    for first, last in ranges:
        head = f"--{boundary}\r\n"
        if content_type is not None:
            head += f"Content-Type: {content_type}\r\n"
        head += f"Content-Range: bytes {first}-{last}/{length}\r\n\r\n"
        chunks += [head.encode("latin-1"), body[first : last + 1], b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode("latin-1"))
    multipart = b"".join(chunks)
    kept = [(name, v) for name, v in headers if name != "content-type"]
    fields = [("content-type", f"multipart/byteranges; boundary={boundary}"), ("content-length", str(len(multipart)))]
    return 206, [*kept, *fields], multipart
