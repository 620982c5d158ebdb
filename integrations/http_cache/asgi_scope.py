"""What the cache reads from an ASGI scope: the full `Request`, or only what a plain GET or HEAD needs.

`request_of` gives the rules their string form of a request. For a plain
request (`plain`), `PlainGets` reads the URL's cache keys, memoised on the
raw bytes of scheme, host, path and query string (and any trusted forwarding
field), so a hot URL is hashed once, not on every request, and the
validators.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from cachetier.integrations.http_cache.headers import Headers
from cachetier.integrations.http_cache.plain import (
    ASKING,
    HOST,
    VALIDATOR,
    Keys,
    Plain,
    PlainReader,
    remember,
    url_keys,
)
from cachetier.integrations.http_cache.request import Request
from cachetier.integrations.http_cache.storage import PATH_SAFE


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


class PlainGets(PlainReader):
    """The keys and validators of plain GET and HEAD requests; the keys memoised on (scheme, Host,
    raw path, query string) bytes.

    The keys are exactly what `lookup` derives from `request_of(scope)`. A
    scope without a `Host` field or a `raw_path` is not recognised (the full
    flow handles it). Only URLs of at most `max_url_bytes` are remembered, and
    the memo is cleared when it holds `max_urls` of them.
    """

    @functools.cached_property
    def _roles(self) -> dict[bytes, int]:
        # one dict lookup per request field tells all the scan needs to know about it
        return {name.encode("latin-1"): role for name, role in self.roles_by_name.items()}

    def keys_of(self, scope: Mapping[str, Any]) -> Keys | None:
        """(URL hash, index key) of a plain GET without validators; None for any other request."""
        plain = self.plain(scope) if scope["method"] == "GET" else None
        return None if plain is None or plain[1] is not None else plain[0]

    def plain(self, scope: Mapping[str, Any]) -> Plain | None:
        """The keys and validators of a plain GET or HEAD; None for any other request."""
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            return None
        host: bytes | None = None
        keyed: list[tuple[bytes, bytes]] | None = None
        validators: Headers | None = None
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
            if role == ASKING:
                return None
            if role == HOST:
                if host is None:
                    host = value
            elif role == VALIDATOR:
                field = (name.lower().decode("latin-1"), value.decode("latin-1"))
                if validators is None:
                    validators = [field]
                else:
                    validators.append(field)
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
            forwarding = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in keyed or ()]
            text = (host.decode("latin-1"), raw_path.decode("latin-1"), query.decode("latin-1"))
            keys = url_keys(self.prefix, scheme, *text, forwarding, self.trusted)
            remember(self._keys, url, keys, len(host) + len(raw_path) + len(query), self.bounds)
        return keys, validators
