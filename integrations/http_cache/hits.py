"""Parsed forms of stored values, memoised on the identity of the stored object.

An L1 hit returns the very object that was stored (or last filled from L2),
so parsing it, computing its freshness facts and building its client headers
need only happen once per stored object rather than once per request. Stored
values are never mutated, which is what makes identity a valid key.
"""

from __future__ import annotations

from typing import Final

from cachetier.integrations.http_cache.policy import Options
from cachetier.integrations.http_cache.responses import Prepared, prepare
from cachetier.integrations.http_cache.storage import StoredResponse, Variant, parse_index

MAX_ITEMS: Final = 4096
MAX_BODY_BYTES: Final = 64 * 1024 * 1024


class ParsedValues:
    """Parsed variant indexes and prepared entries of one middleware, keyed by `id()` of the stored value.

    Each memo entry keeps its stored value alive, so the `id` cannot be
    reused by another object while the entry exists; the `is` check makes
    that explicit. Bounded by count and by body bytes (values L1 has
    dropped stay alive until the memo is cleared). Safe under threads:
    single dict operations are atomic and a lost size update only shifts
    the next clearing.
    """

    def __init__(self, options: Options, max_items: int = MAX_ITEMS, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.options = options
        self.max_items = max_items
        self.max_body_bytes = max_body_bytes
        self._indexes: dict[int, tuple[object, list[Variant]]] = {}
        self._entries: dict[int, tuple[object, Prepared]] = {}
        self._body_bytes = 0

    def variants(self, data: object) -> list[Variant]:
        """`parse_index(data)`, parsed once per stored object."""
        known = self._indexes.get(id(data))
        if known is not None and known[0] is data:
            return known[1]
        variants = parse_index(data)
        if isinstance(data, dict):
            if len(self._indexes) >= self.max_items:
                self._indexes.clear()
            self._indexes[id(data)] = (data, variants)
        return variants

    def prepared(self, data: object) -> Prepared | None:
        """The stored response prepared for serving, or None when `data` is not a well-formed entry."""
        known = self._entries.get(id(data))
        if known is not None and known[0] is data:
            return known[1]
        entry = StoredResponse.from_dict(data)
        if entry is None:
            return None
        prepared = prepare(entry, self.options)
        size = len(entry.body)
        if len(self._entries) >= self.max_items or self._body_bytes + size > self.max_body_bytes:
            self._entries.clear()
            self._body_bytes = 0
        self._entries[id(data)] = (data, prepared)
        self._body_bytes += size
        return prepared
