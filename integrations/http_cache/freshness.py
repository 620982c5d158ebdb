"""Freshness lifetime and current age (RFC 9111 4.2).

All times are seconds since the epoch from the middleware's clock, so tests
can move time without sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cachetier.integrations.http_cache.directives import Directives, delta_seconds
from cachetier.integrations.http_cache.headers import Headers, get_first, parse_http_date
from cachetier.integrations.http_cache.storage import StoredResponse

HEURISTICALLY_CACHEABLE: Final = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
"""RFC 9110 15.1: status codes cacheable by default (heuristic freshness allowed)."""


@dataclass(frozen=True, slots=True)
class Heuristics:
    """Heuristic freshness (RFC 9111 4.2.2): `fraction` of the time since Last-Modified, at most `max_lifetime`."""

    fraction: float = 0.1
    max_lifetime: float = 86_400.0


def date_value(headers: Headers, response_time: float) -> float:
    """The `Date` of a response; the receipt time when absent or invalid (RFC 9110 6.6.1)."""
    date = parse_http_date(get_first(headers, "date"))
    return response_time if date is None else date


def explicit_lifetime(
    directives: Directives, headers: Headers, response_time: float, *, targeted: bool
) -> float | None:
    """`s-maxage`, else `max-age`, else `Expires - Date`; None when none is given.

    A malformed `s-maxage`/`max-age` or `Expires` (e.g. "0") means already
    stale (RFC 9111 5.3). A targeted field (RFC 9213) replaces `Expires` too.
    """
    for name in ("s-maxage", "max-age"):
        if name in directives:
            seconds = delta_seconds(directives[name])
            return 0.0 if seconds is None else float(seconds)
    if targeted:
        return None
    expires_values = [value for key, value in headers if key == "expires"]
    if not expires_values:
        return None
    expires = parse_http_date(expires_values[0])
    if expires is None:
        return 0.0
    return max(0.0, expires - date_value(headers, response_time))


def heuristic_lifetime(
    status: int, directives: Directives, headers: Headers, response_time: float, heuristics: Heuristics
) -> float | None:
    """10% (by default) of `Date - Last-Modified`, capped; None when no heuristic applies."""
    if status not in HEURISTICALLY_CACHEABLE and "public" not in directives:
        return None
    last_modified = parse_http_date(get_first(headers, "last-modified"))
    if last_modified is None:
        return None
    elapsed = date_value(headers, response_time) - last_modified
    return min(heuristics.max_lifetime, max(0.0, elapsed * heuristics.fraction))


def freshness_lifetime(
    status: int,
    directives: Directives,
    headers: Headers,
    response_time: float,
    heuristics: Heuristics,
    *,
    targeted: bool,
) -> float | None:
    """The freshness lifetime in seconds, or None when neither explicit nor heuristic freshness applies."""
    explicit = explicit_lifetime(directives, headers, response_time, targeted=targeted)
    if explicit is not None:
        return explicit
    return heuristic_lifetime(status, directives, headers, response_time, heuristics)


def corrected_initial_age(entry: StoredResponse) -> float:
    """RFC 9111 4.2.3: the entry's age when it was received (it does not change while it is stored)."""
    age_value = delta_seconds((get_first(entry.headers, "age") or "").strip()) or 0
    apparent_age = max(0.0, entry.response_time - date_value(entry.headers, entry.response_time))
    response_delay = max(0.0, entry.response_time - entry.request_time)
    return max(apparent_age, age_value + response_delay)


def current_age(entry: StoredResponse, now: float) -> float:
    """RFC 9111 4.2.3: corrected initial age plus the time resident in this cache."""
    return corrected_initial_age(entry) + max(0.0, now - entry.response_time)
