"""An in-process L2 for tests and single-process apps; gone when the process exits."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from cachetier.adapters.memory_leases import LeaseBook
from cachetier.errors import NotAnIntegerError
from cachetier.protocols import L2Entry, Lease

_MIN_SWEEP = 1024  # entries before the first sweep of expired ones


class MemoryAdapter:
    """Dict-backed storage with lazy expiry; every method is atomic because it never awaits.

    Expired entries go when read, and in a sweep each time the number of
    entries doubles, so keys written once and never read again are reclaimed
    at amortized O(1) per write.
    """

    name = "memory"

    def __init__(self) -> None:
        self._values: dict[str, tuple[bytes, float]] = {}
        self._key_tags: dict[str, tuple[str, ...]] = {}
        self._tag_keys: dict[str, set[str]] = {}
        self._sweep_at = _MIN_SWEEP
        self._leases = LeaseBook()

    def _live(self, key: str) -> bytes | None:
        item = self._values.get(key)
        if item is None:
            return None
        if item[1] <= time.monotonic():
            self._remove(key)
            return None
        return item[0]

    def _remove(self, key: str) -> bool:
        found = self._values.pop(key, None) is not None
        for tag in self._key_tags.pop(key, ()):
            keys = self._tag_keys.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tag_keys[tag]
        return found

    def _sweep(self) -> None:
        now = time.monotonic()
        for key in [key for key, (_, expires) in self._values.items() if expires <= now]:
            self._remove(key)
        self._sweep_at = max(_MIN_SWEEP, 2 * len(self._values))

    def _store(self, key: str, value: bytes, ttl: float, tags: Sequence[str]) -> None:
        self._leases.revoke(key)
        self._remove(key)
        if len(self._values) >= self._sweep_at:
            self._sweep()
        self._values[key] = (value, time.monotonic() + ttl)
        if tags:
            self._key_tags[key] = tuple(tags)
            for tag in tags:
                self._tag_keys.setdefault(tag, set()).add(key)

    async def get(self, key: str) -> bytes | None:
        return self._live(key)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        return [self._live(key) for key in keys]

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        self._store(key, value, ttl, tags)

    async def mset(self, entries: Sequence[L2Entry]) -> None:
        for entry in entries:
            self._store(entry.key, entry.value, entry.ttl, entry.tags)

    async def get_or_lease(self, key: str, lease_ttl: float) -> Lease:
        value = self._live(key)
        return Lease(value) if value is not None else self._leases.take(key, lease_ttl)

    async def set_leased(self, key: str, value: bytes, ttl: float, tags: Sequence[str], token: int) -> bool:
        if not self._leases.redeem(key, tags, token):
            return False
        self._store(key, value, ttl, tags)
        return True

    async def delete(self, key: str) -> bool:
        self._leases.revoke(key)
        return self._live(key) is not None and self._remove(key)

    async def exists(self, key: str) -> bool:
        return self._live(key) is not None

    async def expire(self, key: str, ttl: float) -> bool:
        self._leases.revoke(key)
        value = self._live(key)
        if value is None:
            return False
        self._values[key] = (value, time.monotonic() + ttl)
        return True

    async def incr(self, key: str, by: int, ttl: float) -> int:
        current = self._live(key)
        if current is None:
            self._store(key, str(by).encode(), ttl, ())
            return by
        try:
            number = int(current) + by
        except ValueError:
            raise NotAnIntegerError(f"value at {key!r} is not an integer") from None
        self._values[key] = (str(number).encode(), self._values[key][1])
        return number

    async def invalidate_tags(self, tags: Sequence[str]) -> int:
        self._leases.revoke_tags(tags)
        keys = set().union(*(self._tag_keys.get(tag, ()) for tag in tags))
        now = time.monotonic()
        live = sum(1 for key in keys if self._values.get(key, (b"", -math.inf))[1] > now)
        for key in keys:
            self._remove(key)
        return live

    async def clear(self, prefix: str) -> int:
        self._leases.revoke_prefix(prefix)
        doomed = [key for key in self._values if key.startswith(prefix)]
        return sum(self._live(key) is not None and self._remove(key) for key in doomed)

    async def ping(self) -> None:
        return None

    async def stats(self) -> dict[str, Any]:
        self._sweep()
        return {"entries": len(self._values), "tags": len(self._tag_keys)}

    async def close(self) -> None:
        self._values.clear()
        self._key_tags.clear()
        self._tag_keys.clear()
        self._leases.clear()
