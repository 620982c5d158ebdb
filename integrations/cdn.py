"""CDN cache tags: reading tag headers, writing them for downstream CDNs, and purging by tag over HTTP.

Limits, as the vendors document them (all measured on the header value,
without the field name, in bytes):

* Fastly `Surrogate-Key`: space-separated keys; each key at most 1,024 bytes,
  the whole header at most 16,384 bytes
  (https://www.fastly.com/documentation/reference/http/http-headers/Surrogate-Key/).
* Cloudflare `Cache-Tag`: comma-separated tags; no per-tag limit, but the
  header in aggregate at most 16 KB; spaces are not allowed inside a tag
  (https://developers.cloudflare.com/cache/how-to/purge-cache/purge-by-tags/).
* Varnish `xkey` (vmod_xkey): space-separated keys. Varnish itself rejects a
  backend response header longer than its `http_resp_hdr_len` parameter
  (8 KB by default), so that default is used as the limit here.

`HttpPurgeHook` needs httpx (`pip install httpx`); the header helpers need nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from cachetier.errors import ConfigError

if TYPE_CHECKING:
    import httpx

__all__ = ["DIALECTS", "HttpPurgeHook", "TagDialect", "parse_tag_header", "render_tag_headers"]


@dataclass(frozen=True, slots=True)
class TagDialect:
    """How one CDN reads tags from a response header."""

    header: str
    separator: str
    max_tag_bytes: int | None
    max_header_bytes: int | None


DIALECTS: Final[Mapping[str, TagDialect]] = {
    "fastly": TagDialect("Surrogate-Key", " ", 1024, 16_384),
    "cloudflare": TagDialect("Cache-Tag", ",", None, 16 * 1024),
    "varnish": TagDialect("xkey", " ", None, 8 * 1024),
}

_SEPARATORS: Final = re.compile(r"[,\s]+")
# Visible ASCII except the comma: valid in every dialect above, safe in any HTTP
# stack (no latin-1 surprises) and it survives a round trip through parse_tag_header.
_RENDERABLE: Final = re.compile(r"[\x21-\x2b\x2d-\x7e]+")


def parse_tag_header(value: str) -> list[str]:
    """Tags from a `Cache-Tag`, `Surrogate-Key` or `xkey` value.

    Commas and whitespace both separate (origins mix them); empty items are
    dropped and duplicates removed, keeping first-seen order.
    """
    return list(dict.fromkeys(tag for tag in _SEPARATORS.split(value) if tag))


def render_tag_headers(tags: Sequence[str], dialects: Sequence[str]) -> list[tuple[str, str]]:
    """One `(header name, value)` per dialect ("fastly", "cloudflare", "varnish") that has tags to send.

    Tags are de-duplicated in order. A tag that is not visible ASCII, or that
    contains a comma or whitespace, is dropped (it would be split or rejected
    downstream). A tag longer than the dialect's per-tag limit is dropped on
    its own, and the list is cut at the last tag that fits the header limit,
    never in the middle of a tag; the CDN then simply does not index the
    response under the tags left out.

    Raises:
        ConfigError: an unknown dialect name.
    """
    unique = [tag for tag in dict.fromkeys(tags) if _RENDERABLE.fullmatch(tag)]
    headers: list[tuple[str, str]] = []
    for name in dialects:
        dialect = DIALECTS.get(name.lower())
        if dialect is None:
            raise ConfigError(f"unknown CDN tag dialect {name!r}; expected one of {sorted(DIALECTS)}")
        value = _join_within_limits(unique, dialect)
        if value:
            headers.append((dialect.header, value))
    return headers


def _join_within_limits(tags: Sequence[str], dialect: TagDialect) -> str:
    kept: list[str] = []
    size = 0
    for tag in tags:  # ASCII only, so len() is the byte count
        if dialect.max_tag_bytes is not None and len(tag) > dialect.max_tag_bytes:
            continue
        added = len(tag) + (len(dialect.separator) if kept else 0)
        if dialect.max_header_bytes is not None and size + added > dialect.max_header_bytes:
            break
        kept.append(tag)
        size += added
    return dialect.separator.join(kept)


def _tags_body(tags: list[str]) -> Any:
    return {"tags": tags}


class HttpPurgeHook:
    """A `cachetier.protocols.PurgeHook` that POSTs invalidated tags to a CDN's purge endpoint.

    Add it with `cache.add_purge_hook(hook)`. Each purge sends JSON built by
    `body` (default `{"tags": [...]}`, Cloudflare's shape; Fastly wants
    `lambda tags: {"surrogate_keys": tags}`) with `headers` (e.g. an API
    token), at most `max_tags_per_request` tags per request (Cloudflare's
    purge API has accepted 30 per call; check your plan). Every batch is tried;
    afterwards the first failure (a non-2xx answer, a timeout, a connection
    error) is raised, so the manager logs it and counts it in `purge_failures`.

    Args:
        url: the purge endpoint.
        headers: sent with every request.
        body: builds the JSON body from one batch of tags.
        max_tags_per_request: batch size, at least 1.
        timeout: seconds per request (connect, read, write and pool).
        client: an `httpx.AsyncClient` to use instead of an owned one; it is
            not closed by `aclose()`.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: Callable[[list[str]], Any] = _tags_body,
        max_tags_per_request: int = 30,
        timeout: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if isinstance(max_tags_per_request, bool) or not isinstance(max_tags_per_request, int):
            raise ConfigError("max_tags_per_request must be an int")
        if max_tags_per_request < 1:
            raise ConfigError(f"max_tags_per_request must be at least 1, got {max_tags_per_request}")
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("HttpPurgeHook needs httpx: pip install httpx") from exc
        self.url = url
        self._headers = dict(headers or {})
        self._body = body
        self.max_tags_per_request = max_tags_per_request
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout)
        self._timeout = timeout

    async def purge_tags(self, tags: Sequence[str]) -> None:
        """Purge `tags`, batch by batch; raises the first failure after trying every batch."""
        unique = list(dict.fromkeys(tags))
        size = self.max_tags_per_request
        batches = [unique[start : start + size] for start in range(0, len(unique), size)]
        first_error: Exception | None = None
        # One batch after another: purge APIs rate-limit, and order keeps logs readable.
        for batch in batches:
            try:
                await self._send(batch)
            except Exception as exc:
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    async def _send(self, batch: list[str]) -> None:
        response = await self._client.post(
            self.url, json=self._body(batch), headers=self._headers, timeout=self._timeout
        )
        response.raise_for_status()  # httpx raises for every status outside 2xx

    async def aclose(self) -> None:
        """Close the HTTP client if this hook created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> HttpPurgeHook:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"HttpPurgeHook({self.url!r})"
