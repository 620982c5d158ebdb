"""Filling a miss: one loader run per key in this process, one across processes, bounded in time.

The race this module exists for: a loader reads the source, and before its
value is stored, someone writes, deletes or invalidates the key (in this
process or another). Storing the loaded value then would serve data older
than a write that returned, to every process, until its TTL. Leases close it
("Scaling Memcache at Facebook", NSDI 2013): the read that misses takes a
lease token in L2 in the same round trip (`LeasingAdapter.get_or_lease`);
every write, delete, expire, clear and tag invalidation revokes the leases it
touches; the loaded value is stored only while its lease holds, checked
atomically in L2 (`set_leased`), and reaches L1 only when L2 took it. A miss
still costs two round trips (lease-read, leased store) around the loader.

The same lease gives cross-process single-flight: a caller that finds the
lease held elsewhere polls for the holder's value for up to `lease_wait`
seconds, then runs the loader itself without storing. In this process,
callers of one key share one flight (`SingleFlight`), keyed by the manager's
generation so a caller arriving after an invalidation never joins a load that
began before it. When L2 is down no lease can be had: the value is stored
plainly, guarded by the in-process checks alone (the write is then dropped
and replayed as a delete on recovery, see `cachetier.guard`).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cachetier.config import CacheConfig
from cachetier.entries import EntryEncoder
from cachetier.errors import LoaderTimeoutError
from cachetier.framing import Frame
from cachetier.guard import GuardedAdapter
from cachetier.l1 import L1Store
from cachetier.protocols import Lease
from cachetier.sentinel import MISS
from cachetier.singleflight import SingleFlight

_FIRST_POLL = 0.005  # seconds; doubles up to _LAST_POLL while another process holds the lease
_LAST_POLL = 0.1

Write = Callable[[str, bytes, float, float, "tuple[str, ...]"], Awaitable[bool]]


class MissLoader:
    """Runs loaders for one `CacheManager` (which owns the tiers and the generation)."""

    def __init__(
        self,
        *,
        l1: L1Store,
        l2: GuardedAdapter,
        entries: EntryEncoder,
        config: CacheConfig,
        generation: Callable[[], int],
        write: Write,
    ) -> None:
        self._l1 = l1
        self._l2 = l2
        self._entries = entries
        self._config = config
        self._generation = generation
        self._write = write
        self._flights = SingleFlight()
        self._loading: dict[str, list[int]] = {}  # key -> [writes since its loads began, loads running]
        self.loader_calls = 0

    def written(self, full: str) -> None:
        """Note a write of `full`, so a load of it that began earlier does not overwrite it."""
        loading = self._loading.get(full)
        if loading is not None:
            loading[0] += 1

    async def load(
        self,
        full: str,
        loader: Callable[[], Any],
        ttl: float | None,
        tags: tuple[str, ...],
        compress: bool | None,
        time_limit: float | None,
    ) -> Any:
        """The value of `full` from L2, else `loader()`'s (stored when nothing newer landed meanwhile)."""
        generation = self._generation()

        async def read_or_load() -> Any:
            lease = await self._lease(full)
            if lease.value is not None:
                value = self.decoded(full, lease.value, generation)
                if value is not MISS:
                    return value
            try:
                loaded, written = await self.call_loader(full, loader, time_limit)
                seconds = self._config.default_ttl if ttl is None else ttl
                data, expires_at = self._entries.encode(loaded, seconds, tags, compress)
            except Exception:
                if lease.token is not None:
                    # Give the lease back, or every reader would wait `lease_wait` for a value that
                    # never comes, for `lease_ttl`. Deleting the (missing) key revokes it; at worst
                    # it removes a value written meanwhile: a spurious miss, never a stale read.
                    await self._l2.delete(full)
                raise
            value = self._entries.decode_value(full, data)  # what every later read of it will give
            current = generation == self._generation() and not written
            if lease.token is not None:
                # Redeemed whatever happened meanwhile: L2 knows whether a change revoked the lease,
                # and a store it refuses releases the lease too. Left unredeemed, the lease would
                # keep every other process waiting `lease_wait` for `lease_ttl`.
                await self._store_leased(full, value, data, seconds, expires_at, tags, lease.token, current)
            elif current and not lease.busy:  # no lease to be had (L2 down, or an adapter without leases)
                await self._write(full, data, seconds, expires_at, tags)
            return value

        # The load runs as a task of its own: a caller that goes away (a closed
        # connection cancels its request) must not cancel it for the others.
        return await self._flights.run(f"{full}\x00{generation}", read_or_load)

    async def _lease(self, full: str) -> Lease:
        """A value, a lease of ours, or (after `lease_wait`) a busy lease held by another process."""
        lease = await self._l2.get_or_lease(full, self._config.lease_ttl)
        if not lease.busy:
            return lease
        deadline = time.monotonic() + self._config.lease_wait
        pause = _FIRST_POLL
        while lease.busy and time.monotonic() < deadline:
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LAST_POLL)
            lease = await self._l2.get_or_lease(full, self._config.lease_ttl)
        return lease

    def decoded(self, full: str, data: bytes, generation: int) -> Any:
        """The value of bytes read from L2 (or `MISS`), copied to L1 when no invalidation came since `generation`."""
        if not self._config.l1_enabled:  # no L1 copy to make: the value is all that is needed
            return self._entries.decode_value(full, data)
        frame = self._entries.decode(full, data)
        if frame is None:
            return MISS
        if generation == self._generation():
            self.fill_l1(full, frame, len(data))
        return frame.value

    def fill_l1(self, full: str, frame: Frame, size: int) -> None:
        if frame.expires_at is None:  # counters change in place in L2; never copy them to L1
            return
        self._l1.fill(full, frame.value, self._entries.l1_expiry(frame.expires_at), frame.tags, size)

    async def _store_leased(
        self,
        full: str,
        value: Any,
        data: bytes,
        seconds: float,
        expires_at: float,
        tags: tuple[str, ...],
        token: int,
        current: bool,
    ) -> None:
        generation = self._generation()
        stored = await self._l2.set_leased(full, data, seconds, tags, token)
        # L1 follows L2's verdict (a revoked lease means something newer exists there), and takes
        # nothing when an invalidation in this process or a write of ours landed during the load.
        if stored and current and generation == self._generation() and self._config.l1_enabled:
            self._l1.set(full, value, self._entries.l1_expiry(expires_at), tags, len(data))

    async def reload(
        self,
        full: str,
        loader: Callable[[], Any],
        seconds: float,
        tags: tuple[str, ...],
        compress: bool | None,
        time_limit: float | None,
    ) -> Any:
        """Run `loader` and write its result over whatever is cached (a write: it revokes leases).

        Not written when an invalidation finished, or this process wrote `full`, while it ran.
        """
        generation = self._generation()
        loaded, written = await self.call_loader(full, loader, time_limit)
        data, expires_at = self._entries.encode(loaded, seconds, tags, compress)
        if generation == self._generation() and not written:
            self.written(full)
            await self._write(full, data, seconds, expires_at, tags)
        return self._entries.decode_value(full, data)

    async def call_loader(self, full: str, loader: Callable[[], Any], time_limit: float | None) -> tuple[Any, bool]:
        """`loader()`'s result, and whether this process wrote `full` while it ran."""
        loading = self._loading.setdefault(full, [0, 0])
        loading[1] += 1
        writes = loading[0]
        try:
            value = await self._call(loader, time_limit)
        finally:
            loading[1] -= 1
            if not loading[1]:
                del self._loading[full]
        return value, writes != loading[0]

    async def _call(self, loader: Callable[[], Any], time_limit: float | None) -> Any:
        self.loader_calls += 1
        result = loader()
        if not inspect.isawaitable(result):
            return result
        if time_limit is None:
            return await result
        try:
            async with asyncio.timeout(time_limit) as scope:
                return await result
        except TimeoutError:
            if scope.expired():  # ours, not a TimeoutError the loader raised itself
                raise LoaderTimeoutError(f"the loader did not finish within {time_limit} s") from None
            raise
