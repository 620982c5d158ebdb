"""Decisions of a shared cache (RFC 9111): may this response be stored, may that one be served?

Every function here is pure; the ASGI and WSGI drivers only move bytes and
call the cache according to what these return.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin, urlsplit

from cachetier.integrations.http_cache.conditional import has_validator
from cachetier.integrations.http_cache.directives import Directives, delta_seconds, parse_cache_control, parse_targeted
from cachetier.integrations.http_cache.freshness import (
    HEURISTICALLY_CACHEABLE,
    corrected_initial_age,
    current_age,
    explicit_lifetime,
    freshness_lifetime,
)
from cachetier.integrations.http_cache.headers import Headers, get_all, get_first
from cachetier.integrations.http_cache.options import Options as Options
from cachetier.integrations.http_cache.options import Settings as Settings
from cachetier.integrations.http_cache.options import options_from as options_from
from cachetier.integrations.http_cache.request import Request
from cachetier.integrations.http_cache.storage import StoredResponse, vary_names

UNDERSTOOD_STATUS: Final = frozenset(
    {200, 201, 202, 203, 204, 205, 300, 301, 302, 303, 307, 308}
    | {400, 401, 403, 404, 405, 406, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 426, 429, 451}
    | {500, 501, 502, 503, 504, 505}
)
"""Final status codes whose semantics this cache knows (what `must-understand` asks about)."""

UNSTORED_STATUS: Final = frozenset({206, 304})
"""RFC 9111 3: storing these needs rules of their own; a 206 covering the whole representation is stored
as the 200 it equals (`ranges`), a partial one is not; a 304 only updates a stored response. Any other
final status is stored with explicit freshness (299, 499 and 599 included)."""

STORABLE_METHODS: Final = ("GET",)
LOOKUP_METHODS: Final = ("GET", "HEAD")
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


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

    A status that is not cacheable by default (302, 401, 500, 299, 599, ...) needs explicit freshness
    (`max-age`, `s-maxage`, `Expires`) or `public`; a validator alone does not make it storable."""
    if request.method not in STORABLE_METHODS or status < 200 or status in UNSTORED_STATUS:
        return False
    policy = response_policy(headers, options)
    if "no-store" in request.directives:
        return False
    # RFC 9111 5.2.2.3: must-understand stores only statuses the cache understands, and then outranks no-store
    understood = policy.has("must-understand") and status in UNDERSTOOD_STATUS
    if policy.has("must-understand") and not understood:
        return False
    if policy.has("no-store") and not understood:
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
