"""The L2 storage contract: bytes in, bytes out, keyed by already-namespaced strings.

Adapters are dumb storage (dogpile's backend split): policy such as namespacing,
serialization, default TTLs and degrading on faults lives in the manager. Every
adapter must pass `cachetier.testing.L2ContractSuite`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable


class L2Entry(NamedTuple):
    """One write for `L2Adapter.mset`."""

    key: str
    value: bytes
    ttl: float
    tags: Sequence[str] = ()


class L2Adapter(Protocol):
    """What the manager needs from a second-tier store.

    TTLs are positive seconds (fractions allowed, adapters round up to their
    resolution). Tags are recorded atomically with the value: after
    `invalidate_tags` returns, no key written with one of those tags before
    the call is readable. An adapter may over-invalidate (a spurious miss)
    but never leave a stale read. Faults are raised as `cachetier.errors.BackendError`
    (or any exception); the manager's guard handles them.
    """

    @property
    def name(self) -> str:
        """Short adapter name reported by `CacheManager.adapter_type`."""
        ...

    async def get(self, key: str) -> bytes | None: ...

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """One value (or None) per key, in order."""
        ...

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        """Store `value`, replacing any earlier value and its tags."""
        ...

    async def mset(self, entries: Sequence[L2Entry]) -> None: ...

    async def delete(self, key: str) -> bool:
        """True when a live key was removed."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def expire(self, key: str, ttl: float) -> bool:
        """Reset the TTL of a live key; False when the key is absent."""
        ...

    async def incr(self, key: str, by: int, ttl: float) -> int:
        """Atomically add `by`; a missing key starts at 0 and gets `ttl`.

        The value is stored as its ASCII decimal form. Raises
        `NotAnIntegerError` when the stored value is not an integer.
        """
        ...

    async def invalidate_tags(self, tags: Sequence[str]) -> int:
        """Remove every key carrying any of `tags`; return how many were removed."""
        ...

    async def clear(self, prefix: str) -> int:
        """Remove every key starting with `prefix` (never other keys)."""
        ...

    async def ping(self) -> None:
        """Return when the backend answers; raise when it does not."""
        ...

    async def stats(self) -> dict[str, Any]:
        """Backend-specific figures for `get_stats()` (entry counts, pool size...)."""
        ...

    async def close(self) -> None: ...


class PurgeHook(Protocol):
    """Told about tag invalidations after they happen, e.g. to purge a CDN.

    It receives the tags as the application named them (without namespace).
    A hook that raises is logged and counted; the invalidation still stands.
    """

    async def purge_tags(self, tags: Sequence[str]) -> None: ...


@runtime_checkable
class InvalidationSource(Protocol):
    """Optional adapter capability: tell this process when other clients change keys.

    With it, the manager drops its L1 copies of keys that another process
    wrote, deleted or let expire, instead of serving them until `l1_max_ttl`.
    """

    async def subscribe_invalidations(
        self, prefix: str, on_change: Callable[[Sequence[str] | None], None]
    ) -> Callable[[], Awaitable[None]]:
        """Call `on_change` with changed keys under `prefix`, or None when changes
        may have been missed (a dropped connection): then every copy is suspect.
        Returns a coroutine function that unsubscribes."""
        ...
