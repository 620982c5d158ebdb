"""Many keys in one L2 round trip: `mget` and `mset`, with the manager's tiers and naming.

Kept apart from the manager because batching is its own job: checking keys in
bulk cheaply, splitting L1 hits from misses, and filling or dropping the L1
copies of a whole batch by one generation check.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from cachetier.api_types import MSetItem, mset_items
from cachetier.config import CacheConfig
from cachetier.entries import EntryEncoder
from cachetier.errors import DeserializationError, InvalidKeyError
from cachetier.guard import GuardedAdapter
from cachetier.l1 import L1Store
from cachetier.naming import KeyNaming, all_short
from cachetier.protocols import L2Entry
from cachetier.sentinel import MISS
from cachetier.typed import TypedCodec

logger = logging.getLogger("cachetier")


def _key_list(keys: Iterable[str]) -> list[str]:
    if isinstance(keys, str | bytes):
        raise InvalidKeyError("mget takes an iterable of keys, not a single key")
    try:
        return list(keys)
    except TypeError:
        raise InvalidKeyError(f"mget takes an iterable of keys, got {type(keys).__name__}") from None


class BulkOps:
    """`mget`/`mset` for one `CacheManager`, which owns the tiers and the generation."""

    def __init__(
        self,
        *,
        l1: L1Store,
        l2: GuardedAdapter,
        entries: EntryEncoder,
        config: CacheConfig,
        naming: KeyNaming,
        typed: TypedCodec,
        generation: Callable[[], int],
        changed: Callable[[], None],
        ready: Callable[[], Awaitable[None]],
        written: Callable[[str], None],
    ) -> None:
        self._l1 = l1
        self._l2 = l2
        self._entries = entries
        self.config = config
        self._naming = naming
        self._typed = typed
        self._generation = generation
        self._changed = changed
        self._ready = ready
        self._written = written

    async def mget(self, keys: Iterable[str], *, namespace: str | None, type: Any) -> dict[str, Any]:
        """`CacheManager.mget`; values that do not fit `type` (when given) are left out like misses."""
        key_list = keys if keys.__class__ is list else _key_list(keys)
        found = await self._mget(key_list, namespace)
        if type is None:
            return found
        typed: dict[str, Any] = {}
        for key, value in found.items():
            try:
                typed[key] = self._typed.convert(value, type)
            except DeserializationError as exc:
                logger.info("cachetier: cached %r does not fit %r (%s); treated as a miss", key, type, exc)
        return typed

    async def _mget(self, key_list: list[str], namespace: str | None) -> dict[str, Any]:
        if namespace is None and all_short(key_list):
            prefix = self._naming.prefix  # as in `get`: short keys need no UTF-8 length check
            fulls = [prefix + key for key in key_list]
        else:
            fulls = [self._naming.full_key(key, namespace) for key in key_list]
        found: dict[str, Any] = {}
        if self.config.l1_enabled:
            missing: list[str] = []  # as the caller wrote them
            missing_full: list[str] = []  # namespaced
            for key, full, value in zip(key_list, fulls, self._l1.get_many(fulls), strict=True):
                if value is MISS:
                    missing.append(key)
                    missing_full.append(full)
                else:
                    found[key] = value
        else:
            missing, missing_full = key_list, fulls
            self._l1.misses += len(fulls)  # what an always-empty L1 would have counted
        if not missing:
            return found
        await self._ready()
        generation = self._generation()
        blobs = await self._l2.mget(missing_full)
        copy = self.config.l1_enabled and generation == self._generation() and self._l1.wants_any(missing_full)
        if not copy:
            # Nothing goes to L1, so only values are read, not headers: L1 is off; or an invalidation
            # landed meanwhile (these may be older than it); or a full L1 is reading keys it has not
            # seen lately (a listing, a scan), which it only notes down (`L1Store.fill_many`).
            log_prefix = self._naming.prefix if namespace is None else f"{namespace}:"
            found.update(self._entries.decode_values(missing, blobs, log_prefix))
            if self.config.l1_enabled:
                self._l1.remember([full for full, data in zip(missing_full, blobs, strict=True) if data is not None])
            return found
        frames = self._entries.decode_frames(missing_full, blobs)
        # As `MissLoader.fill_l1`, with the L1 cap computed once for the batch.
        cap = self._entries.l1_expiry(math.inf)
        fills = []
        for key, full, data, frame in zip(missing, missing_full, blobs, frames, strict=True):
            if frame is None or data is None:
                continue
            value, expires_at, tags = frame
            if expires_at is not None:  # counters change in place in L2; never copy them to L1
                fills.append((full, value, expires_at if expires_at < cap else cap, tags, len(data)))
            found[key] = value
        self._l1.fill_many(fills)
        return found

    async def mset(
        self,
        items: Mapping[str, Any] | Iterable[MSetItem],
        *,
        ttl: float | None,
        tags: Iterable[str] | None,
        compress: bool | None,
        namespace: str | None,
    ) -> bool:
        """`CacheManager.mset`: every item encoded before anything is written, then one L2 round trip."""
        entries: list[L2Entry] = []
        local: list[tuple[str, bytes, float, tuple[str, ...]]] = []
        given: object = items  # checked at run time: callers without a type checker pass anything
        if not isinstance(given, Mapping | Iterable) or isinstance(given, str | bytes):
            raise InvalidKeyError(f"mset takes a mapping or an iterable of items, got {type(items).__name__}")
        for key, value, options in mset_items(items):
            full = self._naming.full_key(key, namespace)
            seconds = self._naming.ttl(options.get("ttl", ttl))
            entry_tags = self._naming.full_tags(options.get("tags", tags))
            data, expires_at = self._entries.encode(value, seconds, entry_tags, options.get("compress", compress))
            entries.append(L2Entry(full, data, seconds, entry_tags))
            local.append((full, data, self._entries.l1_expiry(expires_at), entry_tags))
        if not entries:
            return True
        for entry in entries:  # only once every item encoded: a bad item writes nothing
            self._written(entry.key)
        await self._ready()
        generation = self._generation()
        try:
            stored = await self._l2.mset(entries)
        except BaseException:  # cancelled: as `CacheManager._write`, no L1 copy may outlive what L2 took
            self._changed()
            self._l1.delete_many([full for full, *_ in local])
            raise
        unchanged = generation == self._generation()
        for full, data, expires_at, entry_tags in local:
            if unchanged and self.config.l1_enabled:
                self._l1.set(full, self._entries.decode_value(full, data), expires_at, entry_tags, len(data))
            else:
                self._l1.delete(full)
        return stored
