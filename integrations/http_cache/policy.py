"""Decisions of a shared cache (RFC 9111): may this response be stored, may that one be served?

Every function here is pure; the ASGI and WSGI drivers only move bytes and
call the cache according to what these return.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Final, TypedDict
from urllib.parse import urljoin, urlsplit

from cachetier import ConfigError
from cachetier.integrations.cdn import render_tag_headers
from cachetier.integrations.http_cache.conditional import has_validator
from cachetier.integrations.http_cache.directives import Directives, delta_seconds, parse_cache_control, parse_targeted
from cachetier.integrations.http_cache.freshness import (
    HEURISTICALLY_CACHEABLE,
    Heuristics,
    corrected_initial_age,
    current_age,
    explicit_lifetime,
    freshness_lifetime,
)
from cachetier.integrations.http_cache.headers import Headers, get_all, get_first
from cachetier.integrations.http_cache.request import Request
from cachetier.integrations.http_cache.storage import StoredResponse, vary_names

UNDERSTOOD_STATUS: Final = frozenset(
    {200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 307, 308}
    | {400, 401, 403, 404, 405, 406, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 429, 451}
    | {500, 501, 502, 503, 504, 505}
)
"""Final status codes whose semantics this cache knows; 206 (no partial storage) and 304 are not stored."""

STORABLE_METHODS: Final = ("GET",)
LOOKUP_METHODS: Final = ("GET", "HEAD")
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


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
    trusted_forwarding_headers: forwarding fields (`X-Forwarded-Host`, `Forwarded`, ...) your proxy sets
        and overwrites; they become part of the key. A request carrying any other one bypasses the cache.
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
        values["trusted_forwarding_headers"] = frozenset(name.lower() for name in values["trusted_forwarding_headers"])
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


@dataclass(frozen=True, slots=True)
class ResponsePolicy:
    """The directives that govern a response, and whether they came from a targeted field."""

    directives: Directives
    targeted: bool

    def has(self, name: str) -> bool:
        return name in self.directives

    def unqualified(self, name: str) -> bool:
        return name in self.directives and not self.directives[name]

    def seconds(self, name: str) -> int | None:
        return delta_seconds(self.directives.get(name))


def response_policy(headers: Headers, options: Options) -> ResponsePolicy:
    """RFC 9213: the first target field with a valid, non-empty value replaces Cache-Control and Expires."""
    for name in options.targets:
        values = get_all(headers, name)
        if values:
            parsed = parse_targeted(", ".join(values))
            if parsed:
                return ResponsePolicy(parsed, targeted=True)
    return ResponsePolicy(parse_cache_control(get_all(headers, "cache-control")), targeted=False)


def lifetime_of(entry: StoredResponse, policy: ResponsePolicy, options: Options) -> float | None:
    return freshness_lifetime(
        entry.status,
        policy.directives,
        entry.headers,
        entry.response_time,
        options.heuristics,
        targeted=policy.targeted,
    )


def authorization_allows(policy: ResponsePolicy) -> bool:
    """RFC 9111 3.5: a shared cache may reuse a response to an authorized request only with these."""
    return policy.has("public") or policy.has("s-maxage") or policy.has("must-revalidate")


def credentials_allow(request: Request, policy: ResponsePolicy, vary: Collection[str], options: Options) -> bool:
    """Whether a response with `policy` and `vary` (field names) may be shared with a request's credentials.

    RFC 9111 3.5 for `Authorization`; and unless `cache_credentialed`, each of `Cookie` and
    `Authorization` needs `public`, `s-maxage` or a `Vary` naming it: apps forget `private` on
    session pages, and another user must never be served one.
    """
    if request.authorized and not authorization_allows(policy):
        return False
    if options.cache_credentialed or not (request.cookie or request.authorized):
        return True
    if policy.has("public") or policy.has("s-maxage"):
        return True
    return (not request.cookie or "cookie" in vary) and (not request.authorized or "authorization" in vary)


def storable(request: Request, status: int, headers: Headers, received: float, options: Options) -> bool:
    """RFC 9111 3 for a shared cache, plus: Set-Cookie is not stored (unless allowed), nor `Vary: *`,
    nor a response with neither freshness nor a validator (it could never be reused).

    A status that is not cacheable by default (302, 401, 500, ...) needs explicit freshness
    (`max-age`, `s-maxage`, `Expires`) or `public`; a validator alone does not make it storable."""
    if request.method not in STORABLE_METHODS or status not in UNDERSTOOD_STATUS:
        return False
    policy = response_policy(headers, options)
    if "no-store" in request.directives:
        return False
    if policy.has("no-store") and not policy.has("must-understand"):
        return False
    if policy.unqualified("private"):
        return False
    if get_first(headers, "set-cookie") is not None and not options.cache_set_cookie:
        return False
    vary = vary_names(headers)
    if vary is None or not credentials_allow(request, policy, vary, options):
        return False
    if not (
        status in HEURISTICALLY_CACHEABLE
        or policy.has("public")
        or policy.has("must-understand")
        or explicit_lifetime(policy.directives, headers, received, targeted=policy.targeted) is not None
    ):
        return False
    lifetime = freshness_lifetime(
        status, policy.directives, headers, received, options.heuristics, targeted=policy.targeted
    )
    extra = max(policy.seconds("stale-if-error") or 0, policy.seconds("stale-while-revalidate") or 0)
    return bool(lifetime) or bool(extra) or has_validator(headers)


def storage_ttl(entry: StoredResponse, now: float, options: Options) -> float:
    """Seconds to keep an entry in the cache: its remaining freshness, the stale windows it allows,
    and `stale_retention` when it carries a validator (so it can still be revalidated); 0 = don't keep."""
    policy = response_policy(entry.headers, options)
    remaining = max(0.0, (lifetime_of(entry, policy, options) or 0.0) - current_age(entry, now))
    extra = max(
        policy.seconds("stale-if-error") or 0, policy.seconds("stale-while-revalidate") or 0, options.stale_on_error
    )
    retention = options.stale_retention if has_validator(entry.headers) else 0.0
    return min(options.max_ttl, remaining + extra + retention)


class Use(enum.Enum):
    """What to do with a stored entry for a request."""

    FRESH = "fresh"  # serve it
    STALE = "stale"  # serve it stale (client allowed via max-stale)
    STALE_REVALIDATE = "stale-while-revalidate"  # serve it stale, revalidate in the background
    VALIDATE = "validate"  # ask the origin (conditionally when there is an entry)
    GATEWAY_TIMEOUT = "only-if-cached"  # 504: nothing usable and the client won't wait for the origin


@dataclass(frozen=True, slots=True)
class Decision:
    use: Use
    age: float = 0.0
    stale_if_error: bool = False  # whether the entry may stand in if the origin fails


@dataclass(frozen=True, slots=True)
class EntryFacts:
    """What `decide` needs from a stored entry that does not change while it is stored."""

    policy: ResponsePolicy
    lifetime: float
    initial_age: float  # RFC 9111 4.2.3 corrected initial age
    response_time: float
    no_cache: bool  # an unqualified `no-cache`: validate before every use

    def age(self, now: float) -> float:
        """The entry's current age (RFC 9111 4.2.3), as `current_age` computes it."""
        resident = now - self.response_time
        return self.initial_age + (resident if resident > 0.0 else 0.0)

    def fresh_age(self, now: float) -> float | None:
        """The entry's age when `decide` serves it FRESH to a request that asks nothing of the cache
        (no Cache-Control, Pragma or Authorization); None when such a request would not get it fresh."""
        age = self.age(now)
        return age if self.lifetime > age and not self.no_cache else None


def entry_facts(entry: StoredResponse, options: Options) -> EntryFacts:
    policy = response_policy(entry.headers, options)
    lifetime = lifetime_of(entry, policy, options) or 0.0
    return EntryFacts(
        policy, lifetime, corrected_initial_age(entry), entry.response_time, policy.unqualified("no-cache")
    )


def decide(
    request: Request, entry: StoredResponse | None, now: float, options: Options, facts: EntryFacts | None = None
) -> Decision:
    """RFC 9111 4.2 / 4.2.4 / 5.2.1 and RFC 5861 for one request against one selected entry.

    `facts` are `entry_facts(entry, options)` when the caller already has them.
    """
    asked = request.directives
    if entry is None:
        return Decision(Use.GATEWAY_TIMEOUT if "only-if-cached" in asked else Use.VALIDATE)
    if facts is None:
        facts = entry_facts(entry, options)
    policy = facts.policy
    if (request.authorized or request.cookie) and not credentials_allow(request, policy, entry.vary, options):
        return Decision(Use.GATEWAY_TIMEOUT if "only-if-cached" in asked else Use.VALIDATE)
    lifetime = facts.lifetime
    age = facts.age(now)
    must_validate = facts.no_cache or "no-cache" in asked
    max_age = delta_seconds(asked.get("max-age"))
    if max_age is not None and (max_age == 0 or age > max_age):
        must_validate = True
    fresh = lifetime > age
    min_fresh = delta_seconds(asked.get("min-fresh"))
    if min_fresh is not None and lifetime - age < min_fresh:
        fresh = False
    if fresh and not must_validate:
        return Decision(Use.FRESH, age)
    staleness = max(0.0, age - lifetime)
    # must-revalidate / proxy-revalidate forbid any stale use; s-maxage implies proxy-revalidate
    # (RFC 9111 5.2.2.10) for max-stale, but an explicit stale-* extension from the origin still applies.
    revalidate_only = policy.has("must-revalidate") or policy.has("proxy-revalidate") or facts.no_cache
    windows: list[float] = [
        s for s in (policy.seconds("stale-if-error"), delta_seconds(asked.get("stale-if-error"))) if s is not None
    ]
    if options.stale_on_error > 0 and not policy.has("s-maxage"):
        windows.append(options.stale_on_error)
    stale_if_error = not revalidate_only and bool(windows) and staleness <= max(windows)
    if not must_validate and not revalidate_only:
        if "max-stale" in asked and not policy.has("s-maxage"):
            allowed = asked["max-stale"]
            limit = delta_seconds(allowed)
            if not allowed or (limit is not None and staleness <= limit):
                return Decision(Use.STALE, age)
        swr = policy.seconds("stale-while-revalidate")
        if swr is not None and staleness <= swr:
            return Decision(Use.STALE_REVALIDATE, age)
    if "only-if-cached" in asked:
        return Decision(Use.GATEWAY_TIMEOUT, age)
    return Decision(Use.VALIDATE, age, stale_if_error)


def invalidated_urls(request: Request, status: int, headers: Headers, options: Options) -> list[str]:
    """URL hashes whose entries an unsafe request invalidates (RFC 9111 4.4).

    Only after a non-error response; `Location` and `Content-Location` count
    only when they point at the same origin.
    """
    if request.method in SAFE_METHODS or not 200 <= status < 400:
        return []
    trusted = options.trusted_forwarding_headers
    urls = [request.url(trusted)]
    base = f"{request.scheme}://{request.host}{request.path}"
    for name in ("location", "content-location"):
        value = get_first(headers, name)
        if not value:
            continue
        target = urlsplit(urljoin(base, value.strip()))
        if target.scheme == request.scheme and target.netloc.lower() == request.host.lower() and target.path:
            urls.append(dataclasses.replace(request, path=target.path, query=target.query).url(trusted))
    return list(dict.fromkeys(urls))
