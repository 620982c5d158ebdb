"""Changes that L1 cannot mirror: deletes, expiries, counters, tag invalidations and clears.

Each goes to L2 first; then the manager's generation moves on (so reads and
loads that were in flight do not fill L1 with what they fetched before the
change), then L1 drops what the change touched. A write, by contrast, puts its
new value in L1 (`CacheManager.set`), so it is not here.

The last two steps run even when the call is cancelled (a request whose client
went away): the change may have reached L2 already, and an L1 copy kept then
would outlive it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from cachetier.errors import NotAnIntegerError
from cachetier.guard import GuardedAdapter
from cachetier.keys import check_namespace, check_tags, check_ttl
from cachetier.l1 import L1Store
from cachetier.naming import KeyNaming
from cachetier.purge import PurgeNotifier


def check_step(by: int) -> int:
    """`by` of `increment`/`decrement`: an int, and not a bool."""
    if isinstance(by, bool) or not isinstance(by, int):
        raise NotAnIntegerError(f"by must be an int, got {type(by).__name__}")
    return by


class KeyChanges:
    """One manager's deletes, expiries, counters, invalidations and clears (see the module docstring)."""

    def __init__(
        self,
        *,
        l1: L1Store,
        l2: GuardedAdapter,
        naming: KeyNaming,
        purge: PurgeNotifier,
        changed: Callable[[], None],
        check_open: Callable[[], None],
    ) -> None:
        self._l1 = l1
        self._l2 = l2
        self._naming = naming
        self._purge = purge
        self._changed = changed
        self._check_open = check_open

    async def increment(self, key: str, by: int, ttl: float | None, namespace: str | None) -> int | None:
        full = self._naming.full_key(key, namespace)
        seconds = self._naming.ttl(ttl)
        self._check_open()
        try:
            return await self._l2.incr(full, check_step(by), seconds)
        finally:
            self._changed()
            self._l1.delete(full)

    async def expire(self, key: str, seconds: float, namespace: str | None) -> bool:
        full = self._naming.full_key(key, namespace)
        check_ttl(seconds, "seconds")
        self._check_open()
        try:
            return await self._l2.expire(full, seconds)
        finally:
            self._changed()
            self._l1.delete(full)

    async def delete(self, key: str, namespace: str | None) -> bool:
        full = self._naming.full_key(key, namespace)
        self._check_open()
        removed = False
        try:
            removed = await self._l2.delete(full)
        finally:
            self._changed()
            removed = self._l1.delete(full) or removed
        return removed

    async def invalidate_tags(self, tags: Iterable[str]) -> int:
        full_tags = self._naming.full_tags(tags)
        if not full_tags:
            return 0
        self._check_open()
        removed, local = 0, 0
        try:
            removed = await self._l2.invalidate_tags(full_tags)
        finally:
            self._changed()
            local = self._l1.invalidate_tags(full_tags)
        if self._purge.hooks:
            await self._purge.notify(check_tags(tags))
        return max(removed, local)

    async def clear(self, namespace: str | None) -> int:
        prefix = f"{self._naming.namespace if namespace is None else check_namespace(namespace)}:"
        self._check_open()
        try:
            return await self._l2.clear(prefix)
        finally:
            self._changed()
            self._l1.clear(prefix)
