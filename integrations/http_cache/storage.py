"""What is stored for a URL: responses (one per variant) and the variant index naming them.

Layout in the `CacheManager` (default namespace, so tag purges reach it):

* `<prefix>:idx:<url hash>` -> `{"variants": [{"key", "vary", "ttl"}, ...]}`,
  newest first. Selecting a variant (RFC 9111 4.1) needs only this small entry.
* `<prefix>:var:<url hash>:<vary hash>` -> one `StoredResponse.to_dict()`.

The URL hash covers scheme, host and port, path and query string exactly as
sent (no reordering: `?a=1&b=2` and `?b=2&a=1` are different resources to an
origin).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import xxhash

from cachetier.integrations.http_cache.headers import Headers, combined, get_all

VaryValues = dict[str, str | None]

PATH_SAFE: Final = "/:@!$&'()*+,;=-._~%"
"""Characters left as they are when a driver has only a decoded path to re-encode for the key."""


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A stored response with the times RFC 9111 4.2.3 needs to compute its age.

    `vary` holds the request's values of the fields the response's `Vary`
    names (None for an absent field), so later requests can be matched.
    """

    status: int
    headers: Headers
    body: bytes
    request_time: float
    response_time: float
    vary: VaryValues = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "headers": [list(pair) for pair in self.headers],
            "body": self.body,
            "request_time": self.request_time,
            "response_time": self.response_time,
            "vary": dict(self.vary),
            "tags": list(self.tags),
        }

    @classmethod
    def from_dict(cls, data: object) -> StoredResponse | None:
        """The response, or None for anything that is not a well-formed stored entry."""
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                status=int(data["status"]),
                headers=[(str(name), str(value)) for name, value in data["headers"]],
                body=bytes(data["body"]),
                request_time=float(data["request_time"]),
                response_time=float(data["response_time"]),
                vary={str(k): (None if v is None else str(v)) for k, v in dict(data.get("vary") or {}).items()},
                tags=tuple(str(tag) for tag in data.get("tags") or ()),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class Variant:
    key: str
    vary: VaryValues
    ttl: float


def url_hash(host: str, path: str, query: str, *, scheme: str = "http", keyed: str = "") -> str:
    """A stable 128-bit hex digest of the effective request URI (same value in every process).

    `keyed` holds the values of request fields the app declared part of the key (trusted forwarding fields).
    """
    text = f"{scheme}://{host.lower()}\x00{path}\x00{query}\x00{keyed}"
    return xxhash.xxh3_128_hexdigest(text.encode("utf-8", "surrogateescape"))


def index_key(prefix: str, url: str) -> str:
    return f"{prefix}:idx:{url}"


def variant_key(prefix: str, url: str, vary: Mapping[str, str | None]) -> str:
    digest = xxhash.xxh3_64_hexdigest(orjson.dumps(sorted(vary.items())))
    return f"{prefix}:var:{url}:{digest}"


def vary_names(headers: Headers) -> list[str] | None:
    """Lower-case field names listed by `Vary`; None when it contains `*` (never matches)."""
    names: dict[str, None] = {}
    for value in get_all(headers, "vary"):
        for item in value.split(","):
            name = item.strip().lower()
            if name == "*":
                return None
            if name:
                names[name] = None
    return sorted(names)


LIST_FIELDS: Final = frozenset({"accept", "accept-charset", "accept-encoding", "accept-language"})
"""List-valued request fields whose members are case-insensitive and unordered (preference is by q-value)."""

_AROUND_SEMICOLON: Final = re.compile(r"\s*;\s*")


def _normalize(name: str, value: str | None) -> str | None:
    """RFC 9111 4.1 allows normalising by the field's syntax: list members compared without surrounding
    whitespace; for `LIST_FIELDS` also without case, whitespace around parameters, or order."""
    if value is None:
        return None
    if name not in LIST_FIELDS:
        return ",".join(part.strip() for part in value.split(","))
    members = (_AROUND_SEMICOLON.sub(";", part.strip()).lower() for part in value.split(","))
    return ",".join(sorted(member for member in members if member))


def vary_values(request_headers: Headers, names: list[str]) -> VaryValues:
    return {name: _normalize(name, combined(request_headers, name)) for name in names}


def matches(stored: Mapping[str, str | None], request_headers: Headers) -> bool:
    """Whether a request selects a stored variant: every Vary-named field compares equal."""
    return all(_normalize(name, combined(request_headers, name)) == value for name, value in stored.items())


def parse_index(data: object) -> list[Variant]:
    """The variants of an index entry, newest first; malformed members are dropped."""
    if not isinstance(data, dict) or not isinstance(data.get("variants"), list):
        return []
    variants: list[Variant] = []
    for item in data["variants"]:
        try:
            vary = {str(k): (None if v is None else str(v)) for k, v in dict(item["vary"]).items()}
            variants.append(Variant(str(item["key"]), vary, float(item["ttl"])))
        except (KeyError, TypeError, ValueError):
            continue
    return variants


def select(variants: list[Variant], request_headers: Headers) -> Variant | None:
    """The newest variant the request matches (RFC 9111 4.1: most recent wins)."""
    for variant in variants:
        if not variant.vary or matches(variant.vary, request_headers):
            return variant
    return None


def index_with(variants: list[Variant], added: Variant, limit: int) -> tuple[dict[str, Any], float]:
    """The index value with `added` first (replacing its key) and the TTL that outlives every variant."""
    kept = [added, *(v for v in variants if v.key != added.key)][:limit]
    value = {"variants": [{"key": v.key, "vary": v.vary, "ttl": v.ttl} for v in kept]}
    return value, max(v.ttl for v in kept)
