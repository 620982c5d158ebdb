"""Parsing of `Cache-Control` (RFC 9111 5.2) and targeted cache-control fields (RFC 9213).

Both parsers are lenient in the way RFC 9111 asks of recipients: names are
case-insensitive, quoted-string values are accepted where tokens are expected,
empty list members are skipped, and when a directive repeats the first
occurrence wins (RFC 9111 4.2.1 allows "the first occurrence" or "stale").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

Directives = Mapping[str, str | None]
"""Lower-case directive name to its (unquoted) argument, or None when it has none."""

DELTA_MAX: Final = 2_147_483_648
"""RFC 9111 1.2.2: a delta-seconds too large to represent is taken as 2^31."""

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SF_KEY: Final = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_SF_INTEGER: Final = re.compile(r"-?[0-9]{1,15}")
_SF_DECIMAL: Final = re.compile(r"-?[0-9]{1,12}\.[0-9]{1,3}")
_SF_TOKEN: Final = re.compile(r"[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*")
_NUMERIC: Final = frozenset({"max-age", "s-maxage", "stale-while-revalidate", "stale-if-error", "min-fresh"})


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The unescaped quoted-string beginning at `text[start] == '"'`, and the index after it."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    return "".join(out), i  # unterminated: take the rest, as most caches do


def parse_cache_control(values: Iterable[str]) -> dict[str, str | None]:
    """Directives of one or more `Cache-Control` field lines.

    A member that is not `token[=token|quoted-string]` is skipped up to the
    next comma instead of invalidating its neighbours.
    """
    directives: dict[str, str | None] = {}
    for text in values:
        i, end = 0, len(text)
        while i < end:
            while i < end and text[i] in " \t,":
                i += 1
            match = _TOKEN.match(text, i)
            if match is None:
                i = _skip_member(text, i)
                continue
            name, i = match.group().lower(), match.end()
            while i < end and text[i] in " \t":
                i += 1
            value: str | None = None
            if i < end and text[i] == "=":
                i += 1
                while i < end and text[i] in " \t":
                    i += 1
                if i < end and text[i] == '"':
                    value, i = _quoted(text, i)
                else:
                    arg = _TOKEN.match(text, i)
                    value = arg.group() if arg else ""
                    i = arg.end() if arg else i
            directives.setdefault(name, value)
            i = _skip_member(text, i)
    return directives


def _skip_member(text: str, i: int) -> int:
    """Index after the next comma that is not inside a quoted string."""
    while i < len(text):
        if text[i] == '"':
            _, i = _quoted(text, i)
            continue
        if text[i] == ",":
            return i + 1
        i += 1
    return i


def parse_targeted(value: str) -> dict[str, str | None] | None:
    """Directives of a targeted field (`CDN-Cache-Control`), an RFC 8941 Dictionary.

    Returns None when the value is not a valid Dictionary (RFC 9213 2.1: the
    field is then ignored). A directive whose value has the wrong type
    (`max-age="60"`, `max-age=1.5`) is dropped; `?0` booleans are absent.
    """
    directives: dict[str, str | None] = {}
    i, end = 0, len(value)
    while i < end and value[i] == " ":
        i += 1
    while i < end:
        key = _SF_KEY.match(value, i)
        if key is None:
            return None
        i = key.end()
        item: str | None
        kind = "boolean"
        item = None
        if i < end and value[i] == "=":
            parsed = _sf_item(value, i + 1)
            if parsed is None:
                return None
            kind, item, i = parsed
        while i < end and value[i] == ";":  # parameters are allowed and carry nothing for caching
            param = _SF_KEY.match(value, i + 1)
            if param is None:
                return None
            i = param.end()
            if i < end and value[i] == "=":
                parsed = _sf_item(value, i + 1)
                if parsed is None:
                    return None
                i = parsed[2]
        name = key.group()
        if kind == "false" or (name in _NUMERIC and kind != "integer"):
            directives.pop(name, None)
        else:
            directives[name] = item  # RFC 8941: a repeated key overwrites
        while i < end and value[i] in " \t":
            i += 1
        if i == end:
            break
        if value[i] != ",":
            return None
        i += 1
        while i < end and value[i] in " \t":
            i += 1
        if i == end:
            return None  # trailing comma
    return directives or None


def _sf_item(value: str, i: int) -> tuple[str, str | None, int] | None:
    """(kind, text, end) of the bare item at `i`; None when it is not one."""
    if value.startswith("?1", i) or value.startswith("?0", i):
        return ("boolean" if value[i + 1] == "1" else "false"), None, i + 2
    if i < len(value) and value[i] == '"':
        text, end = _quoted(value, i)
        if end > len(value) or value[end - 1] != '"':
            return None
        return "string", text, end
    for kind, pattern in (("decimal", _SF_DECIMAL), ("integer", _SF_INTEGER), ("token", _SF_TOKEN)):
        match = pattern.match(value, i)
        if match is not None:
            return kind, match.group(), match.end()
    return None


def delta_seconds(value: str | None) -> int | None:
    """A delta-seconds argument (RFC 9111 1.2.2), or None when absent or malformed."""
    if value is None or not value.isascii() or not value.isdigit():
        return None
    return min(int(value), DELTA_MAX)


def field_names(value: str | None) -> list[str]:
    """The lower-case field names of a qualified `no-cache="..."` / `private="..."`."""
    if not value:
        return []
    return [name.strip().lower() for name in value.split(",") if name.strip()]
