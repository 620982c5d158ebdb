"""The middleware's settings: `Settings` (the keyword options) validated into one frozen `Options`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, TypedDict

from cachetier import ConfigError
from cachetier.integrations.cdn import render_tag_headers
from cachetier.integrations.http_cache.freshness import Heuristics
from cachetier.integrations.http_cache.request import FORWARDING_FIELDS


@dataclass(frozen=True, slots=True)
class Options:
    """Middleware settings shared by the ASGI and WSGI drivers (see `CacheMiddleware` for each)."""

    prefix: str = "http"
    target_header: str = "cachetier-cache-control"
    strip_target_header: bool = True
    tag_header: str = "cache-tag"
    strip_tag_header: bool = True
    cdn_dialects: tuple[str, ...] = ()
    cache_set_cookie: bool = False
    generate_etags: bool = True
    send_date: bool = False
    max_body_size: int = 1024 * 1024
    stale_retention: float = 86_400.0
    stale_on_error: float = 0.0
    max_ttl: float = 365 * 86_400.0
    heuristics: Heuristics = field(default_factory=Heuristics)
    max_variants: int = 16
    lock_timeout: float = 30.0
    cache_credentialed: bool = False
    trusted_forwarding_headers: frozenset[str] = frozenset()

    @property
    def tag_headers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.tag_header.lower(), "cache-tag", "surrogate-key", "xkey")))

    @property
    def targets(self) -> tuple[str, ...]:
        """RFC 9213 target list, most specific first."""
        return (self.target_header.lower(), "cdn-cache-control")


class Settings(TypedDict, total=False):
    """Keyword options of both `CacheMiddleware`s.

    key_prefix: prefix of the middleware's keys (in the cache's own namespace, so tag purges reach them).
    target_header: our RFC 9213 targeted field, preferred over `CDN-Cache-Control` and `Cache-Control`;
        stripped from responses unless `strip_target_header=False`.
    tag_header: where the app puts tags (`Surrogate-Key` and `xkey` are read too); stripped from
        responses unless `strip_tag_header=False`.
    cdn_dialects: re-emit tags for downstream CDNs ("fastly", "cloudflare", "varnish").
    cache_set_cookie: store responses carrying `Set-Cookie` (off by default: they are per-user).
    generate_etags: give stored 200s without an ETag a strong, deterministic hash-of-body ETag.
    send_date: send the stored `Date` (the one the app sent, or the one added when storing). Off by
        default: uvicorn, hypercorn and gunicorn add their own `Date`, and a response may carry only
        one (RFC 9110 6.6.1); `Age` gives downstream caches the stored age either way.
    max_body_size: bodies up to this many bytes are buffered and stored; larger ones stream through unstored.
    stale_retention: seconds an entry with a validator is kept past its freshness, so it can be revalidated.
    stale_on_error: seconds of staleness allowed when the app fails (5xx or an exception) even without
        `stale-if-error`, as reverse proxies offer (nginx `proxy_cache_use_stale error`); 0 = off. Never
        overrides must-revalidate, proxy-revalidate, no-cache or s-maxage.
    max_ttl: upper bound on any entry's storage time.
    heuristic_fraction / heuristic_max: heuristic freshness (RFC 9111 4.2.2) for Last-Modified responses.
    max_variants: variants kept per URL (oldest dropped).
    lock_timeout: seconds a request waits for a concurrent identical miss before asking the app itself.
    cache_credentialed: off by default: a request with `Cookie` or `Authorization` is neither answered
        from storage nor stored unless the response may be shared (`public`, `s-maxage`, or a `Vary`
        naming that field; `Authorization` also needs RFC 9111 3.5's public/s-maxage/must-revalidate).
        On: only RFC 9111 3.5 applies (for apps whose cookies never change a page).
    trusted_forwarding_headers: forwarding fields (`X-Forwarded-Host`, `Forwarded`, ...; one of
        `request.FORWARDING_FIELDS`) your proxy sets and overwrites; they become part of the key. A request
        carrying any other one bypasses the cache.
    """

    key_prefix: str
    target_header: str
    strip_target_header: bool
    tag_header: str
    strip_tag_header: bool
    cdn_dialects: Sequence[str]
    cache_set_cookie: bool
    generate_etags: bool
    send_date: bool
    max_body_size: int
    stale_retention: float
    stale_on_error: float
    max_ttl: float
    heuristic_fraction: float
    heuristic_max: float
    max_variants: int
    lock_timeout: float
    cache_credentialed: bool
    trusted_forwarding_headers: Sequence[str]


def options_from(settings: Settings) -> Options:
    """Validated `Options` from the middleware's keyword settings."""
    values: dict[str, Any] = dict(settings)
    if "key_prefix" in values:
        values["prefix"] = values.pop("key_prefix")
    if "cdn_dialects" in values:
        values["cdn_dialects"] = tuple(values["cdn_dialects"])
        render_tag_headers(["probe"], values["cdn_dialects"])  # raises ConfigError for unknown dialects
    if "trusted_forwarding_headers" in values:
        given = values["trusted_forwarding_headers"]
        trusted = frozenset(name.lower() for name in ([given] if isinstance(given, str) else given))
        if not trusted <= FORWARDING_FIELDS:
            others = sorted(trusted - FORWARDING_FIELDS)
            raise ConfigError(f"trusted_forwarding_headers must be among {sorted(FORWARDING_FIELDS)}, got {others}")
        values["trusted_forwarding_headers"] = trusted
    fraction = values.pop("heuristic_fraction", 0.1)
    ceiling = values.pop("heuristic_max", 86_400.0)
    values["heuristics"] = Heuristics(fraction, ceiling)
    unknown = set(values) - {f.name for f in fields(Options)}
    if unknown:
        raise TypeError(f"unknown CacheMiddleware options: {sorted(unknown)}")
    options = Options(**values)
    if options.max_body_size < 0 or options.max_variants < 1 or options.lock_timeout <= 0:
        raise ConfigError("max_body_size must be >= 0, max_variants >= 1 and lock_timeout > 0")
    if not options.prefix or ":" in options.prefix:
        raise ConfigError(f"key_prefix must be non-empty and without ':', got {options.prefix!r}")
    return options
