"""`CacheManager`: the policy layer over an in-process L1 and a pluggable L2.

Coherence rules kept here:

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
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar, overload

from cachetier.api_types import Loader, MSetItem
from cachetier.aside import CacheAside
from cachetier.bulk import BulkOps
from cachetier.changes import KeyChanges, check_step
from cachetier.codecs import Codec, JsonCodec
from cachetier.config import CacheConfig
from cachetier.entries import EntryEncoder
from cachetier.errors import CacheClosedError, DeserializationError, InvalidLoaderError
from cachetier.feed import BackendLink
from cachetier.guard import GuardedAdapter
from cachetier.keys import check_key, check_tags, check_ttl
from cachetier.l1 import MAX_FREQ, L1Store
from cachetier.loading import MissLoader
from cachetier.naming import KeyNaming
from cachetier.protocols import L2Adapter, PurgeHook
from cachetier.purge import PurgeNotifier
from cachetier.sentinel import MISS, Missing
from cachetier.stats import CacheStats
from cachetier.tracing import trace_calls
from cachetier.typed import TypedCodec

_now = time.time  # a module global: one lookup less on every hit
_T = TypeVar("_T")
_D = TypeVar("_D")


logger = logging.getLogger("cachetier")


class CacheManager:
    """Two-tier async cache. Backend faults never raise from its methods; mistakes do.

    Args:
        adapter: the L2 store (see `cachetier.protocols.L2Adapter`).
        config: settings; `CacheConfig()` defaults when omitted.
        codec: value codec; JSON by default.
        reason: one line saying why this adapter was chosen (shown in stats);
            adapters that choose for themselves (`SelectingAdapter`) report their own.
        on_close: extra cleanup run by `close()` (used by `create_for_testing`).
        purge_hooks: notified after each tag invalidation (e.g. a CDN purge).
    """

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
            fill_l1=self._loads.fill_l1,
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
            trace_calls(self)

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

    # -- reads ------------------------------------------------------------------

    @overload
    async def get(self, key: str, loader: None = None, *, namespace: str | None = None) -> Any | None: ...

    @overload
    async def get(
        self,
        key: str,
        loader: None = None,
        *,
        default: _D,
        namespace: str | None = None,
    ) -> Any | _D: ...

    @overload
    async def get(
        self,
        key: str,
        loader: Callable[[], Awaitable[_T]],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        compress: bool | None = None,
        namespace: str | None = None,
        loader_timeout: float | None = None,
    ) -> _T: ...

    @overload
    async def get(
        self,
        key: str,
        loader: Callable[[], _T],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        compress: bool | None = None,
        namespace: str | None = None,
        loader_timeout: float | None = None,
    ) -> _T: ...

    @overload
    async def get(
        self, key: str, loader: None = None, *, type: type[_T], namespace: str | None = None
    ) -> _T | None: ...

    @overload
    async def get(
        self,
        key: str,
        loader: Callable[[], Any],
        *,
        type: type[_T],
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        compress: bool | None = None,
        namespace: str | None = None,
        loader_timeout: float | None = None,
    ) -> _T: ...

    async def get(self, key: str, loader: Loader[Any] | None = None, **options: Any) -> Any:
        """The cached value, else `loader()`'s result (stored), else `default`.

        Keyword options: `ttl`, `tags`, `compress` (for the loaded value),
        `namespace`, `default`, `loader_timeout` (seconds; `config.loader_timeout`
        when omitted), `type` (a dataclass, msgspec Struct, attrs class,
        TypedDict or pydantic model the value is returned as, from either tier;
        a cached value that no longer fits it is a miss, reloaded when a loader
        is given). Concurrent calls with a loader for the same missing key
        run it once, in this process and across processes sharing the L2 (see
        `cachetier.loading`); its exception reaches every waiter and nothing is
        stored. A loader running past its timeout raises `LoaderTimeoutError`
        to every waiter.
        """
        # The L1 hit path is kept lean: filling six keyword defaults on every call
        # costs about a tenth of a hit, so calls with options take `_get_with`.
        if loader is not None and not callable(loader):
            raise InvalidLoaderError(f"loader must be callable, got {type(loader).__name__}")
        if options or key.__class__ is not str:
            return await self._get_with(key, loader, **options)
        full = self._prefix + key  # checked only on a miss: L1 holds no invalid key, so a hit proves it valid
        # `L1Store.get`'s hit, written out: the call was a fifth of a hit's cost. Anything else goes through it.
        entry = self._l1_entries.get(full)
        if entry is not None and entry.expires_at > _now():
            if entry.freq < MAX_FREQ:
                entry.freq += 1
            self._l1.hits += 1
            return entry.value
        value = self._l1_get(full)
        if value is not MISS:
            return value
        check_key(key)
        if loader is None:
            value = await self._read_l2(full)
            return None if value is MISS else value
        return await self._load(full, loader, None, (), None, self.config.loader_timeout)

    async def _get_with(
        self,
        key: str,
        loader: Loader[Any] | None = None,
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        compress: bool | None = None,
        namespace: str | None = None,
        default: Any = None,
        loader_timeout: float | None = None,
        type: Any = None,
    ) -> Any:
        full = self._naming.full_key(key, namespace)
        full_tags = self._naming.full_tags(tags) if tags else ()
        limit = self.config.loader_timeout if loader_timeout is None else check_ttl(loader_timeout, "loader_timeout")
        value = self._l1_get(full)
        if value is MISS:
            if loader is None:
                value = await self._read_l2(full)
                if value is MISS:
                    return default
            else:
                value = await self._load(full, loader, ttl, full_tags, compress, limit)
        if type is None:
            return value
        try:
            return self._typed.convert(value, type)
        except DeserializationError as exc:
            logger.info("cachetier: cached %r does not fit %r (%s); treated as a miss", full, type, exc)
        if loader is None:
            return default
        return self._typed.convert(
            await self._loads.reload(full, loader, self._naming.ttl(ttl), full_tags, compress, limit), type
        )

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

    async def exists(self, key: str, *, namespace: str | None = None) -> bool:
        full = self._naming.full_key(key, namespace)
        if self._l1.get(full) is not MISS:
            return True
        self._check_open()
        return await self._l2.exists(full)

    async def mget(self, keys: Iterable[str], *, namespace: str | None = None, type: Any = None) -> dict[str, Any]:
        """Values of the keys that are cached; misses are absent from the result.

        One L2 round trip for the L1 misses. With `type`, each value is returned
        as that type; a value that does not fit it is absent.
        """
        return await self._bulk.mget(keys, namespace=namespace, type=type)

    # -- writes -----------------------------------------------------------------

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

    async def set(
        self,
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        compress: bool | None = None,
        namespace: str | None = None,
    ) -> bool:
        """Store `value` for `ttl` seconds (default: `config.default_ttl`) with `tags`.

        Returns True when L2 took it, False when L2 was down and the value was
        kept in this process's L1 only (counted as a dropped write; on
        recovery the key is deleted from L2, so no process reads an older
        value there). Raises `SerializationError` for values the codec cannot
        encode.
        """
        full = self._naming.full_key(key, namespace)
        self._loads.written(full)
        return await self._store(full, value, ttl, self._naming.full_tags(tags), compress)

    async def mset(
        self,
        items: Mapping[str, Any] | Iterable[MSetItem],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        compress: bool | None = None,
        namespace: str | None = None,
    ) -> bool:
        """Store many values in one L2 round trip; True when L2 took them (see `set`).

        `items` is a mapping, `(key, value)` / `(key, value, EntryOptions)`
        tuples, or the seed's `{"key", "value", "options"}` dicts; options
        override the keyword defaults for that key.
        """
        return await self._bulk.mset(items, ttl=ttl, tags=tags, compress=compress, namespace=namespace)

    @overload
    async def refresh(
        self,
        key: str,
        loader: Callable[[], Awaitable[_T]],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        compress: bool | None = None,
        namespace: str | None = None,
    ) -> _T: ...

    @overload
    async def refresh(
        self,
        key: str,
        loader: Callable[[], _T],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        compress: bool | None = None,
        namespace: str | None = None,
    ) -> _T: ...

    @overload
    async def refresh(
        self,
        key: str,
        loader: Callable[[], Any],
        *,
        type: type[_T],
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        compress: bool | None = None,
        namespace: str | None = None,
    ) -> _T: ...

    async def refresh(
        self,
        key: str,
        loader: Loader[Any],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        compress: bool | None = None,
        namespace: str | None = None,
        type: Any = None,
    ) -> Any:
        """Run `loader` and store its result whether or not the key was cached (returned as `type`, if given).

        As with `get`, the result is not stored when an invalidation finished,
        or this process wrote the key, while the loader ran.
        """
        full, full_tags = self._naming.full_key(key, namespace), self._naming.full_tags(tags)
        value = await self._loads.reload(
            full, loader, self._naming.ttl(ttl), full_tags, compress, self.config.loader_timeout
        )
        return value if type is None else self._typed.convert(value, type)

    async def increment(
        self, key: str, by: int = 1, *, ttl: float | None = None, namespace: str | None = None
    ) -> int | None:
        """Atomically add `by` (a missing key starts at 0 and gets `ttl`).

        Returns the new value, or None when L2 is unavailable (the count is
        not kept locally: a counter that silently forks per process is worse
        than an explicit unknown). Raises `NotAnIntegerError` for a non-integer
        `by` or stored value.
        """
        return await self._changes.increment(key, by, ttl, namespace)

    async def decrement(
        self, key: str, by: int = 1, *, ttl: float | None = None, namespace: str | None = None
    ) -> int | None:
        """`increment` by `-by`."""
        return await self._changes.increment(key, -check_step(by), ttl, namespace)

    async def expire(self, key: str, seconds: float, *, namespace: str | None = None) -> bool:
        """Give a live key a new TTL; False when it is not cached (or L2 is down)."""
        return await self._changes.expire(key, seconds, namespace)

    # -- invalidation -------------------------------------------------------------

    async def delete(self, key: str, *, namespace: str | None = None) -> bool:
        """Remove a key from both tiers; True when either held it."""
        return await self._changes.delete(key, namespace)

    async def invalidate_by_tag(self, tag: str) -> int:
        """Remove every entry of this cache tagged `tag` (whatever namespace its key is under), from both tiers.

        Returns the L2 count removed.
        """
        return await self._changes.invalidate_tags([tag])

    async def invalidate_by_tags(self, tags: Iterable[str]) -> int:
        """Remove every entry carrying any of `tags`; each entry counts once."""
        return await self._changes.invalidate_tags(tags)

    def add_purge_hook(self, hook: PurgeHook) -> None:
        """Also tell `hook` about every later tag invalidation."""
        self._purge.hooks.append(hook)

    @property
    def purge_failures(self) -> int:
        """Purge hook calls that raised (the invalidations themselves stood)."""
        return self._purge.failures

    async def clear(self, *, namespace: str | None = None) -> int:
        """Remove every entry of this cache's namespace (or `namespace`); never other keys."""
        return await self._changes.clear(namespace)

    # -- helpers, health, lifecycle -------------------------------------------------

    @overload
    def cache_aside(
        self,
        key: str,
        loader: Callable[[], Awaitable[_T]],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        namespace: str | None = None,
    ) -> CacheAside[_T]: ...

    @overload
    def cache_aside(
        self,
        key: str,
        loader: Callable[[], _T],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        namespace: str | None = None,
    ) -> CacheAside[_T]: ...

    @overload
    def cache_aside(
        self,
        key: str,
        loader: Callable[[], Any],
        *,
        type: type[_T],
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        namespace: str | None = None,
    ) -> CacheAside[_T]: ...

    def cache_aside(
        self,
        key: str,
        loader: Loader[Any],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        namespace: str | None = None,
        type: Any = None,
    ) -> CacheAside[Any]:
        """A reusable handle on one key and its loader: `.get()`, `.refresh()`, `.invalidate()`."""
        check_key(key)
        return CacheAside(self, key, loader, ttl=ttl, tags=tuple(check_tags(tags)), namespace=namespace, type=type)

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

    async def start(self) -> CacheManager:
        """Connect now instead of on first use (chooses the backend when config says auto)."""
        await self._l2_ready()
        await self._l2.ping()
        return self

    async def __aenter__(self) -> CacheManager:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
