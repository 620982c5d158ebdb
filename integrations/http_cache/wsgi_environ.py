"""What the cache reads from a WSGI environ: the full `Request`, or only what a plain GET or HEAD needs.

The WSGI counterpart of `asgi_scope`. Header fields are the `HTTP_*` keys
(plus `CONTENT_TYPE` and `CONTENT_LENGTH`) in the environ's order, named as
`HTTP_X_FOO` reads: `x-foo`. `PlainEnvirons` memoises the URL's cache keys on
the environ's strings for scheme, host, path and query string.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import quote

from cachetier.integrations.http_cache.headers import Headers
from cachetier.integrations.http_cache.plain import (
    ASKING,
    HOST,
    VALIDATOR,
    Plain,
    PlainReader,
    remember,
    url_keys,
)
from cachetier.integrations.http_cache.request import Request
from cachetier.integrations.http_cache.storage import PATH_SAFE

MAX_KNOWN_KEYS: Final = 1024


def field_name(key: str) -> str | None:
    """The header field an environ key holds (`HTTP_X_FOO` -> `x-foo`), or None for other keys."""
    if key.startswith("HTTP_"):
        return key[5:].replace("_", "-").lower()
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return key.replace("_", "-").lower()
    return None


def environ_headers(environ: Mapping[str, Any]) -> Headers:
    """The request's header fields, in the environ's order (`CONTENT_*` only when not empty)."""
    headers: Headers = []
    for key, value in environ.items():
        name = field_name(key)
        if name is not None and (value or key.startswith("HTTP_")):
            headers.append((name, str(value)))
    return headers


def environ_host(environ: Mapping[str, Any]) -> str:
    """The `Host` field, else `SERVER_NAME:SERVER_PORT`."""
    return environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"


def environ_path(environ: Mapping[str, Any]) -> str:
    """The path as sent: `RAW_URI` / `REQUEST_URI` when the server gives them (undecoded, like ASGI's
    raw_path), else `SCRIPT_NAME` + `PATH_INFO` quoted again."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        path = str(raw).split("?", 1)[0]
    else:
        decoded = f"{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}"
        path = quote(decoded.encode("latin-1", "replace"), safe=PATH_SAFE)  # PEP 3333: latin-1 "bytes"-strings
    return path or "/"


def request_of(environ: Mapping[str, Any]) -> Request:
    """The request of a WSGI environ."""
    method, query = environ["REQUEST_METHOD"].upper(), environ.get("QUERY_STRING", "")
    scheme = environ.get("wsgi.url_scheme", "http")
    return Request(method, environ_host(environ), environ_path(environ), query, environ_headers(environ), scheme)


@functools.lru_cache(maxsize=256)  # the status is the app's to choose
def status_line(status: int) -> str:
    """`start_response`'s status string: the code and its reason phrase."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


class PlainEnvirons(PlainReader):
    """The keys and validators of plain GET and HEAD environs, the keys memoised on the URL's strings.

    The keys are exactly what `lookup` derives from `request_of(environ)`;
    the same bounds as `asgi_scope.PlainGets` apply to the memo.
    """

    @functools.cached_property
    def _known(self) -> dict[str, tuple[int, str] | None]:
        """environ key -> (role, field name), or None for a key the scan ignores; learnt per key."""
        return {}

    def plain(self, environ: Mapping[str, Any]) -> Plain | None:
        """The keys and validators of a plain GET or HEAD; None for any other request."""
        method = environ["REQUEST_METHOD"]
        if method != "GET" and method != "HEAD":
            return None
        keyed: list[tuple[str, str]] | None = None
        validators: Headers | None = None
        known = self._known
        for key, value in environ.items():
            found = known.get(key, _UNSEEN)
            if found is _UNSEEN:
                found = self._learn(key)
            if found is None:
                continue
            role, name = found
            if role == ASKING:
                return None
            if role == VALIDATOR:
                if validators is None:
                    validators = [(name, str(value))]
                else:
                    validators.append((name, str(value)))
            elif keyed is None:
                keyed = [(name, str(value))]
            else:
                keyed.append((name, str(value)))
        host = environ_host(environ)
        # everything `environ_path` reads: the raw URI when there is one, else the decoded parts
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        script, path = environ.get("SCRIPT_NAME", ""), environ.get("PATH_INFO", "")
        query = environ.get("QUERY_STRING", "")
        scheme = environ.get("wsgi.url_scheme", "http")
        url = (scheme, host, query, raw, script, path)
        if keyed is not None:
            url = (*url, *keyed)
        keys = self._keys.get(url)
        if keys is None:
            keys = url_keys(self.prefix, scheme, host, environ_path(environ), query, keyed or (), self.trusted)
            size = len(host) + len(query) + len(str(raw or "")) + len(script) + len(path)
            remember(self._keys, url, keys, size, self.bounds)
        return keys, validators

    def _learn(self, key: str) -> tuple[int, str] | None:
        name = field_name(key) if key.startswith("HTTP_") else None
        role = None if name is None else self.roles_by_name.get(name)
        found = None if name is None or role is None or role == HOST else (role, name)
        if len(self._known) >= MAX_KNOWN_KEYS:  # header names are the client's to choose
            self._known.clear()
        self._known[key] = found
        return found


_UNSEEN: Final[Any] = object()
