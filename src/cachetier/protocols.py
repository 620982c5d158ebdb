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


class Lease(NamedTuple):
    """What `LeasingAdapter.get_or_lease` found: a value, a lease granted to the caller, or neither.

    Exactly one of three outcomes: `value` is the stored bytes (no lease was
    needed); or `token` is a lease this caller now holds, so it should load the
    value and store it with `set_leased(..., token)`; or both are None and
    `busy` is True because another client holds the key's lease and is loading
    it (wait for its value and ask again). `Lease(None, None, False)` means no
    lease could be had at all (the backend is down): load, and store plainly.
    """

    value: bytes | None
    token: int | None = None
    busy: bool = False


@runtime_checkable
class LeasingAdapter(Protocol):
    """Leases, as memcache does them ("Scaling Memcache at Facebook", NSDI 2013).

    A read that misses takes a lease token in the same atomic step. Every
    write, delete, expire, `clear` of the key's prefix and `invalidate_tags` of
    one of the value's tags revokes the leases it touches, so a loader that read
    its data before one of those returned can never store it after. Tokens are
    positive and increase over time; a lease lives `lease_ttl` seconds and only
    one is held per key at a time. Every built-in adapter implements this; the
    manager falls back to plain reads and writes for adapters that do not.
    """

    async def get_or_lease(self, key: str, lease_ttl: float) -> Lease:
        """The value, or a new lease on the missing key, or `busy` when another client holds it."""
        ...

    async def set_leased(self, key: str, value: bytes, ttl: float, tags: Sequence[str], token: int) -> bool:
        """Store `value` only while `token` is still the key's lease (then release it).

        False when the lease was revoked by a write, delete, expire, clear or
        an invalidation of one of `tags` that happened after it was granted,
        or expired; nothing is stored then.
        """
        ...


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
