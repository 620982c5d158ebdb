"""Header lists as the pure core sees them, and HTTP-date handling.

Headers are `list[tuple[str, str]]` with lower-case names (ASGI already lower-
cases; the WSGI driver does it on the way in), so lookups are plain compares
and the order and repetition of field lines are kept.
"""

from __future__ import annotations

import calendar
import email.utils
import functools
import re
from collections.abc import Iterable
from typing import Final, TypeAlias

Headers: TypeAlias = list[tuple[str, str]]

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

_MONTHS: Final = {
    m: i for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)
}
_IMF: Final = re.compile(r"[A-Za-z]{3}, (\d{1,2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT", re.IGNORECASE)
_RFC850: Final = re.compile(r"[A-Za-z]{6,9}, (\d{2})-([A-Za-z]{3})-(\d{2}) (\d{2}):(\d{2}):(\d{2}) GMT", re.IGNORECASE)
_ASCTIME: Final = re.compile(r"[A-Za-z]{3} ([A-Za-z]{3}) ([ \d]\d) (\d{2}):(\d{2}):(\d{2}) (\d{4})")


def get_all(headers: Headers, name: str) -> list[str]:
    return [value for key, value in headers if key == name]


def get_first(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def combined(headers: Headers, name: str) -> str | None:
    """All field lines of `name` joined by ", " (RFC 9110 5.3), or None when absent."""
    values = get_all(headers, name)
    return ", ".join(values) if values else None


def without(headers: Headers, names: Iterable[str]) -> Headers:
    drop = frozenset(names)
    return [(key, value) for key, value in headers if key not in drop]


def replace(headers: Headers, name: str, value: str) -> Headers:
    return [*without(headers, (name,)), (name, value)]


def strip_hop_by_hop(headers: Headers) -> Headers:
    """Drop hop-by-hop fields and those `Connection` names (RFC 9111 3.1)."""
    named = {item.strip().lower() for value in get_all(headers, "connection") for item in value.split(",")}
    return without(headers, HOP_BY_HOP | named)


@functools.lru_cache(maxsize=1024)  # the same few dates are parsed on every request (validators, Date, Expires)
def parse_http_date(value: str | None) -> float | None:
    """Seconds since the epoch of an HTTP-date (IMF-fixdate, RFC 850 or asctime); None if invalid."""
    if value is None:
        return None
    text = value.strip()
    try:
        if match := _IMF.fullmatch(text):
            day, month, year, hh, mm, ss = match.groups()
        elif match := _RFC850.fullmatch(text):
            day, month, short_year, hh, mm, ss = match.groups()
            year = str(1900 + int(short_year) if int(short_year) >= 70 else 2000 + int(short_year))
        elif match := _ASCTIME.fullmatch(text):
            month, day, hh, mm, ss, year = match.groups()
        else:
            return None
        number = _MONTHS.get(month.lower())
        if number is None or not (1 <= int(day) <= 31 and int(hh) < 24 and int(mm) < 60 and int(ss) < 61):
            return None
        return float(calendar.timegm((int(year), number, int(day), int(hh), int(mm), int(ss), 0, 0, 0)))
    except (ValueError, OverflowError):
        return None


def format_http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)
