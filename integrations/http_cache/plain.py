"""Plain GET and HEAD requests, whose fresh hits both drivers answer without building a `Request`.

A request is plain when it carries no Cache-Control, Pragma, Authorization,
Cookie (unless credentialed requests are shared), Range or untrusted
forwarding field. `decide` then serves a fresh stored entry FRESH whatever
its other fields say (the Vary fields aside, which selection compares), and
`served` answers with `responses.whole`: its validators (If-None-Match,
If-Modified-Since) only choose between the stored response and a 304
(`responses.validators_match`), and HEAD only drops the body. So a driver
needs from such a request only its URL's cache keys, its method and its
validators: `asgi_scope.PlainGets` and `wsgi_environ.PlainEnvirons` read
those, memoising the keys per URL, and the drivers serve a hit when
`EntryFacts.fresh_age` says the entry is fresh.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

from cachetier.integrations.http_cache.conditional import CONDITIONAL_FIELDS
from cachetier.integrations.http_cache.headers import Headers
from cachetier.integrations.http_cache.request import FORWARDING_FIELDS, keyed_values, normal_host
from cachetier.integrations.http_cache.storage import index_key, url_hash

ASKING_FIELDS: Final = frozenset(("cache-control", "pragma", "authorization", "range"))
"""Request fields that change what the cache may answer; any one (or an untrusted forwarding field,
or a Cookie unless shared) makes a request not plain."""

MAX_URLS: Final = 4096
MAX_URL_BYTES: Final = 2048

ASKING, HOST, KEYED, VALIDATOR = 0, 1, 2, 3
"""Roles of a request field in the scan for a plain request."""

Keys = tuple[str, str]
"""(URL hash, index key) of a request, as `flow.lookup` derives them."""

Plain = tuple[Keys, Headers | None]
"""A plain request's keys and its validators (None when it has none)."""


def field_roles(share_cookies: bool, trusted: Collection[str]) -> dict[str, int]:
    """The role of every request field the scan for a plain request looks at (lower-case names)."""
    roles = dict.fromkeys(ASKING_FIELDS | (FORWARDING_FIELDS - frozenset(trusted)), ASKING)
    if not share_cookies:
        roles["cookie"] = ASKING
    roles.update(dict.fromkeys(CONDITIONAL_FIELDS, VALIDATOR))
    roles["host"] = HOST
    roles.update(dict.fromkeys(trusted, KEYED))
    return roles


def url_keys(
    prefix: str,
    scheme: str,
    host: str,
    path: str,
    query: str,
    forwarding: Collection[tuple[str, str]],
    trusted: Collection[str],
) -> Keys:
    """The keys `flow.lookup` reads for a request with these parts (`Request.url`, then `index_key`)."""
    digest = url_hash(normal_host(scheme, host), path, query, scheme=scheme, keyed=keyed_values(forwarding, trusted))
    return digest, index_key(prefix, digest)


def remember(
    memo: dict[tuple[object, ...], Keys], url: tuple[object, ...], keys: Keys, size: int, bounds: tuple[int, int]
) -> None:
    """Keep `keys` for `url` (of `size` bytes) in `memo` within `bounds` (max URLs, max bytes of one URL):
    a longer URL is not kept, and the memo is cleared when full, so a scan of unique URLs costs
    memory only up to max URLs times max bytes."""
    max_urls, max_url_bytes = bounds
    if size > max_url_bytes:
        return
    if len(memo) >= max_urls:
        memo.clear()
    memo[url] = keys


class PlainReader:
    """What both drivers' readers of plain requests keep: the key prefix, the memo's bounds, the trusted
    forwarding fields, the role of each request field by lower-case name (`field_roles`) and the memo of
    keys per URL (kept within its bounds by `remember`)."""

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
        self.bounds = (max_urls, max_url_bytes)
        self.trusted = frozenset(trusted)
        self.roles_by_name = field_roles(share_cookies, trusted)
        self._keys: dict[tuple[Any, ...], Keys] = {}
