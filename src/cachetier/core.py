"""`CacheCore`: the state of a `CacheManager`, its two tiers, and how they are read, written and closed.

`CacheManager` (`cachetier.manager`) is this plus the public data API; the split
keeps each module to one job. Coherence rules kept here:

* A write goes to L2 first, then L1; an invalidation goes to L2, then bumps the
  manager's generation, then clears L1. A read that fetched from L2 fills L1
  only if no invalidation finished while it was in flight, so an L1 copy can
  never resurrect a value that a returned `delete`/`invalidate_by_tag`
  removed; and it never overwrites an L1 entry, which can only be newer.
  Writes do not bump the generation, so write traffic on other keys does not
  stop reads and loaders from filling the cache.
* A loader's result is stored only under an L2 lease that no write, delete,
  expire, clear or tag invalidation (from any process) revoked while it ran
  (`cachetier.loading`); nor when an invalidation finished in this process,
  or this process wrote the key, meanwhile. The callers still receive it.
* L1 copies expire no later than their L2 copy (the frame carries its expiry)
  and no later than `l1_max_ttl`, which bounds staleness of L1s in other
  processes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

from cachetier.api_types import Loader
from cachetier.bulk import BulkOps
from cachetier.changes import KeyChanges
from cachetier.codecs import Codec, JsonCodec
from cachetier.config import CacheConfig
from cachetier.entries import EntryEncoder
from cachetier.errors import CacheClosedError
from cachetier.feed import BackendLink
from cachetier.guard import GuardedAdapter
from cachetier.keys import check_ttl
from cachetier.l1 import L1Store
from cachetier.loading import MissLoader
from cachetier.naming import KeyNaming
from cachetier.protocols import L2Adapter, PurgeHook
from cachetier.purge import PurgeNotifier
from cachetier.sentinel import MISS, Missing
from cachetier.stats import CacheStats
from cachetier.tracing import trace_calls
from cachetier.typed import TypedCodec

if TYPE_CHECKING:
    from cachetier.manager import CacheManager

logger = logging.getLogger("cachetier")


class CacheCore:
    """A `CacheManager`'s tiers and lifecycle; its constructor is `CacheManager`'s (arguments documented there)."""

    def __init__(
        self,
        adapter: L2Adapter,
        config: CacheConfig | None = None,
        *,
        codec: Codec | None = None,
        reason: str | None = None,
        on_close: Callable[[], Awaitable[None]] | None = None,
        purge_hooks: Sequence[PurgeHook] = (),
    ) -> None:
        self.config = config or CacheConfig()
        self._entries = EntryEncoder(codec or JsonCodec(), self.config)
        self._namespace = self.config.namespace
        self._prefix = f"{self._namespace}:"
        self._naming = KeyNaming(self._namespace, self.config.default_ttl)
        l1_entries = self.config.max_memory_entries if self.config.l1_enabled else 0
        self._l1 = L1Store(l1_entries, self.config.max_memory_bytes)
        self._l1_get = self._l1.get  # bound once: `get` serves L1 hits in well under a microsecond
        self._l1_entries = self._l1.entries
        self._l2 = GuardedAdapter(
            adapter,
            namespace_prefix=f"{self._namespace}:",
            failure_threshold=self.config.failure_threshold,
            recovery_timeout=self.config.recovery_timeout,
        )
        self._reason = reason
        self._on_close = on_close
        self._generation = 0
        self._loads = MissLoader(
            l1=self._l1,
            l2=self._l2,
            entries=self._entries,
            config=self.config,
            generation=lambda: self._generation,
            write=self._write,
        )
        self._link = BackendLink(self._l2, self.config, self._prefix, self._on_remote_change, self._l1)
        self._ready = False  # connected and subscribed, and not closed: the hot paths check only this
        self._typed = TypedCodec()
        self._bulk = BulkOps(
            l1=self._l1,
            l2=self._l2,
            entries=self._entries,
            config=self.config,
            naming=self._naming,
            typed=self._typed,
            generation=lambda: self._generation,
            changed=self._changed,
            ready=self._l2_ready,
            written=self._loads.written,
        )
        self._closed = False
        self._purge = PurgeNotifier(purge_hooks)
        self._changes = KeyChanges(
            l1=self._l1,
            l2=self._l2,
            naming=self._naming,
            purge=self._purge,
            changed=self._changed,
            check_open=self._check_open,
        )
        if logger.isEnabledFor(logging.DEBUG):
            trace_calls(cast("CacheManager", self))  # the only class built on this one

    # -- naming -----------------------------------------------------------------

    @property
    def adapter_type(self) -> str:
        """Name of the L2 in use: 'redis', 'postgres', 'sqlite' or 'memory'."""
        return self._l2.name

    @property
    def selection_reason(self) -> str:
        """One line saying why this L2 is in use (including any fallback at start)."""
        if self._reason is not None:
            return self._reason
        return str(getattr(self._link.selector or self._l2.adapter, "reason", "given explicitly"))

    async def _load(
        self,
        full: str,
        loader: Loader[Any],
        ttl: float | None,
        tags: tuple[str, ...],
        compress: bool | None,
        time_limit: float | None,
    ) -> Any:
        if not self._ready:
            await self._l2_ready()
        return await self._loads.load(full, loader, None if ttl is None else check_ttl(ttl), tags, compress, time_limit)

    def get_local(self, key: str, *, namespace: str | None = None) -> Any | Missing:
        """The L1 copy or `MISS`, without touching L2 or awaiting.

        Safe to call from threads other than the manager's event loop (the
        sync facade serves L1 hits this way without a thread hop).
        """
        return self._l1.peek(self._naming.full_key(key, namespace))

    async def _read_l2(self, full: str) -> Any | Missing:
        if not self._ready:  # a sync check first: no coroutine per call
            await self._l2_ready()
        generation = self._generation
        data = await self._l2.get(full)
        if data is None:
            return MISS
        return self._loads.decoded(full, data, generation)

    def _changed(self) -> None:
        self._generation += 1  # reads in flight may carry the old value: don't let them fill L1

    def _on_remote_change(self, keys: Sequence[str] | None) -> None:
        self._changed()
        if keys is None:
            self._l1.clear(self._prefix)
        else:
            self._l1.delete_many(keys)

    async def _l2_ready(self) -> None:
        """Refuse use after close; subscribe to the change feed before L1 can hold anything."""
        self._check_open()
        if not self._ready:
            await self._link.connect()
            self._ready = not self._closed

    async def _store(
        self, full: str, value: Any, ttl: float | None, tags: tuple[str, ...], compress: bool | None
    ) -> bool:
        seconds = self._naming.ttl(ttl)
        data, expires_at = self._entries.encode(value, seconds, tags, compress)
        return await self._write(full, data, seconds, expires_at, tags)

    async def _write(self, full: str, data: bytes, seconds: float, expires_at: float, tags: tuple[str, ...]) -> bool:
        """Write encoded bytes to L2, then L1; True when L2 took them."""
        if not self._ready:  # a sync check first: no coroutine per call
            await self._l2_ready()
        generation = self._generation
        try:
            stored = await self._l2.set(full, data, seconds, tags)
        except BaseException:  # cancelled: L2 may have the value already, and this process's own
            self._changed()  # writes are not echoed back (the feed's NOLOOP), so no L1 copy may outlive it
            self._l1.delete(full)
            raise
        if not self.config.l1_enabled:
            return stored
        if generation == self._generation:
            # L1 holds what L2 would give back, so a value reads the same from either tier.
            value = self._entries.decode_value(full, data)
            self._l1.set(full, value, self._entries.l1_expiry(expires_at), tags, len(data))
        else:  # a change (maybe another process's write to this key) landed meanwhile: L2 decides
            self._l1.delete(full)
        return stored

    def add_purge_hook(self, hook: PurgeHook) -> None:
        """Also tell `hook` about every later tag invalidation."""
        self._purge.hooks.append(hook)

    @property
    def purge_failures(self) -> int:
        """Purge hook calls that raised (the invalidations themselves stood)."""
        return self._purge.failures

    async def is_healthy(self) -> bool:
        """Whether L2 answers a ping now (the L1 keeps serving either way)."""
        return not self._closed and await self._l2.ping()

    async def get_stats(self) -> CacheStats:
        backend = await self._l2.stats() if not self._closed else {}
        return CacheStats.of(self._l1, self._l2, self.selection_reason, backend, self._loads.loader_calls)

    def _check_open(self) -> None:
        if self._closed:
            raise CacheClosedError("this CacheManager is closed")

    async def close(self) -> None:
        """Release the backend; idempotent."""
        if self._closed:
            return
        try:
            if self._on_close is not None:
                await self._on_close()
        finally:
            self._closed = True
            self._ready = False
            self._l1.clear()
            await self._link.close()
            await self._l2.close()

    async def start(self) -> Self:
        """Connect now instead of on first use (chooses the backend when config says auto)."""
        await self._l2_ready()
        await self._l2.ping()
        return self

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
