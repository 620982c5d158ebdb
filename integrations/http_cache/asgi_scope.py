"""What the cache reads from an ASGI scope: the full `Request`, or only the keys of a plain GET.

`request_of` gives the rules their string form of a request. A plain GET, one
without Cache-Control, Pragma, Authorization, Cookie (unless credentialed
requests are shared), Range, a forwarding field or a validator, is served
from a fresh stored entry the same way whatever its other fields say (the
Vary fields aside, which selection compares), so the ASGI middleware can
answer such a hit without building a `Request`. All it needs from the scope
is the URL's cache keys, which `PlainGets` memoises on the raw bytes of
scheme, host, path and query string (and any trusted forwarding field): a hot
URL is hashed once, not on every request.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

from cachetier.integrations.http_cache.conditional import CONDITIONAL_FIELDS
from cachetier.integrations.http_cache.headers import Headers
from cachetier.integrations.http_cache.request import FORWARDING_FIELDS, Request, keyed_values, normal_host
from cachetier.integrations.http_cache.storage import PATH_SAFE, index_key, url_hash

ASKING_FIELDS: Final = frozenset(("cache-control", "pragma", "authorization", "range", *CONDITIONAL_FIELDS))
"""Request fields that change what the cache may answer (`Request` reads them); any one makes a GET not plain."""

MAX_URLS: Final = 4096
MAX_URL_BYTES: Final = 2048

_ASKING, _HOST, _KEYED = 0, 1, 2


def request_of(scope: Mapping[str, Any]) -> Request:
    """The request of an HTTP scope: the first `Host` (else the server address), the path as sent."""
    headers = decode_headers(scope["headers"])
    host = next((value for name, value in headers if name == "host"), None)
    if host is None:
        server = scope.get("server") or ("localhost", None)
        host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else quote(scope["path"], safe=PATH_SAFE)
    query = scope.get("query_string", b"").decode("latin-1")
    return Request(scope["method"].upper(), host, path, query, headers, scope.get("scheme", "http"))


def decode_headers(headers: Sequence[tuple[bytes, bytes]]) -> Headers:
    """ASGI header pairs as the rules read them: latin-1 text, names lower-cased."""
    return [(name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in headers]


def encode_headers(headers: Headers) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


class PlainGets:
    """The URL hash and index key of plain GETs, memoised on (scheme, Host, raw path, query string) bytes.

    The keys are exactly what `lookup` derives from `request_of(scope)`. A
    scope without a `Host` field or a `raw_path` is not recognised (the full
    flow handles it). Only URLs of at most `max_url_bytes` are remembered, and
    the memo is cleared when it holds `max_urls` of them, so a scan of unique
    (or huge) URLs costs memory only up to `max_urls * max_url_bytes`.
    """

    def __init__(
        self,
        prefix: str,
        max_urls: int = MAX_URLS,
        max_url_bytes: int = MAX_URL_BYTES,
        *,
        share_cookies: bool = False,
        trusted: Collection[str] = (),
    ) -> None:
        self.prefix = prefix
        self.max_urls = max_urls
        self.max_url_bytes = max_url_bytes
        self.trusted = frozenset(trusted)
        asking = set(ASKING_FIELDS) | (FORWARDING_FIELDS - self.trusted)
        if not share_cookies:
            asking.add("cookie")
        # one dict lookup per request field tells all the scan needs to know about it
        self._roles: dict[bytes, int] = {name.encode("latin-1"): _ASKING for name in asking}
        self._roles[b"host"] = _HOST
        self._roles.update((name.encode("latin-1"), _KEYED) for name in self.trusted)
        self._keys: dict[tuple[Any, ...], tuple[str, str]] = {}

    def keys_of(self, scope: Mapping[str, Any]) -> tuple[str, str] | None:
        """(URL hash, index key) of a plain GET; None for any other request."""
        if scope["method"] != "GET":
            return None
        host: bytes | None = None
        keyed: list[tuple[bytes, bytes]] | None = None
        roles = self._roles
        for name, value in scope["headers"]:
            role = roles.get(name)
            if role is None:
                # servers send lower-case names (ASGI asks them to); testing that is cheaper than lowering
                if name.islower():
                    continue
                role = roles.get(name.lower())
                if role is None:
                    continue
            if role == _ASKING:
                return None
            if role == _HOST:
                if host is None:
                    host = value
            elif keyed is None:
                keyed = [(name.lower(), value)]
            else:
                keyed.append((name.lower(), value))
        raw_path = scope.get("raw_path")
        if host is None or not raw_path:
            return None
        query = scope.get("query_string", b"")
        scheme = scope.get("scheme", "http")
        url = (scheme, host, raw_path, query) if keyed is None else (scheme, host, raw_path, query, *keyed)
        keys = self._keys.get(url)
        if keys is None:
            keys = self._compute(scheme, host, raw_path, query, keyed)
            if len(host) + len(raw_path) + len(query) > self.max_url_bytes:
                return keys
            if len(self._keys) >= self.max_urls:
                self._keys.clear()
            self._keys[url] = keys
        return keys

    def _compute(
        self, scheme: str, host: bytes, raw_path: bytes, query: bytes, keyed: list[tuple[bytes, bytes]] | None
    ) -> tuple[str, str]:
        forwarding = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in keyed or ()]
        digest = url_hash(
            normal_host(scheme, host.decode("latin-1")),
            raw_path.decode("latin-1"),
            query.decode("latin-1"),
            scheme=scheme,
            keyed=keyed_values(forwarding, self.trusted),
        )
        return digest, index_key(self.prefix, digest)
