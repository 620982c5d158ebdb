"""A request as the cache sees it, and what in it makes sharing unsafe: credentials and forwarding fields.

The effective request URI (scheme, host, port, path, query) is the cache
key (RFC 9111 2). Fields a proxy uses to rewrite that URI
(`X-Forwarded-Host`, `Forwarded`, ...) are not part of it, so a request
carrying one the app has not declared trusted bypasses the cache: an app
that reflects such a field would otherwise store an attacker's value for
every later visitor (cache poisoning). Trusted ones are added to the key.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

from cachetier.integrations.http_cache.conditional import CONDITIONAL_FIELDS
from cachetier.integrations.http_cache.directives import Directives, parse_cache_control
from cachetier.integrations.http_cache.headers import Headers
from cachetier.integrations.http_cache.storage import url_hash

FORWARDING_FIELDS: Final = frozenset(
    {
        "forwarded",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-forwarded-scheme",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-server",
        "x-host",
        "x-original-url",
        "x-rewrite-url",
    }
)
"""Request fields that proxies and frameworks use to rewrite the URI the app sees; not in the key by default."""

CREDENTIAL_FIELDS: Final = ("authorization", "cookie")

_DEFAULT_PORTS: Final = {"http": ":80", "https": ":443"}


def normal_host(scheme: str, host: str) -> str:
    """`host[:port]` as the key compares it: lower case, the scheme's default port left out."""
    text = host.strip().lower()
    default = _DEFAULT_PORTS.get(scheme)
    return text[: -len(default)] if default and text.endswith(default) else text


@dataclass(frozen=True, slots=True)
class Request:
    """A request as the cache sees it; what the rules ask of its headers is read once, at construction."""

    method: str
    host: str
    path: str
    query: str
    headers: Headers
    scheme: str = "http"
    directives: Directives = field(init=False, repr=False, compare=False)
    """Request Cache-Control; `Pragma: no-cache` counts only without it (RFC 9111 5.4)."""
    authorized: bool = field(init=False, repr=False, compare=False)
    cookie: bool = field(init=False, repr=False, compare=False)
    conditional: bool = field(init=False, repr=False, compare=False)
    """Whether it carries a validator the cache may answer with a 304 (If-None-Match, If-Modified-Since)."""
    ranged: bool = field(init=False, repr=False, compare=False)
    """A GET with `Range` (RFC 9110 14.2: other methods ignore it)."""
    forwarding: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cache_control: list[str] = []
        pragma: list[str] = []
        forwarding: list[tuple[str, str]] = []
        authorized = cookie = conditional = ranged = False
        for name, value in self.headers:
            if name == "cache-control":
                cache_control.append(value)
            elif name == "pragma":
                pragma.append(value)
            elif name == "authorization":
                authorized = True
            elif name == "cookie":
                cookie = True
            elif name in CONDITIONAL_FIELDS:
                conditional = True
            elif name == "range":
                ranged = self.method == "GET"
            elif name in FORWARDING_FIELDS:
                forwarding.append((name, value))
        if cache_control:
            directives: Directives = parse_cache_control(cache_control)
        else:
            directives = {"no-cache": None} if "no-cache" in ",".join(pragma).lower() else {}
        # frozen: the derived fields are set once here, as dataclasses itself does
        object.__setattr__(self, "directives", directives)
        object.__setattr__(self, "authorized", authorized)
        object.__setattr__(self, "cookie", cookie)
        object.__setattr__(self, "conditional", conditional)
        object.__setattr__(self, "ranged", ranged)
        object.__setattr__(self, "forwarding", tuple(forwarding))

    def untrusted_forwarding(self, trusted: Collection[str]) -> bool:
        """Whether it carries a URI-rewriting field the app has not declared trusted (it then bypasses)."""
        return any(name not in trusted for name, _ in self.forwarding)

    def url(self, trusted: Collection[str] = ()) -> str:
        """The hash of the effective request URI, with the values of trusted forwarding fields."""
        return url_hash(
            normal_host(self.scheme, self.host),
            self.path,
            self.query,
            scheme=self.scheme,
            keyed=keyed_values(self.forwarding, trusted),
        )


def keyed_values(forwarding: Collection[tuple[str, str]], trusted: Collection[str]) -> str:
    """The trusted forwarding fields' part of the key ("" when there are none)."""
    if not forwarding:
        return ""
    return "\x00".join(f"{name}={value}" for name, value in sorted(forwarding) if name in trusted)
