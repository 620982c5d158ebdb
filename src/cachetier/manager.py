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

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar, overload

from cachetier.api_types import EntryOptions, Loader, MSetItem
from cachetier.aside import CacheAside
from cachetier.codecs import Codec, JsonCodec
from cachetier.config import CacheConfig
from cachetier.entries import EntryEncoder
from cachetier.errors import CacheClosedError, NotAnIntegerError
from cachetier.guard import GuardedAdapter
from cachetier.keys import MAX_KEY_BYTES, check_key, check_namespace, check_tags, check_ttl
from cachetier.l1 import L1Store
from cachetier.loading import MissLoader
from cachetier.protocols import InvalidationSource, L2Adapter, L2Entry, PurgeHook
from cachetier.purge import PurgeNotifier
from cachetier.sentinel import MISS, Missing
from cachetier.stats import CacheStats, L1Stats, L2Stats

_T = TypeVar("_T")
_D = TypeVar("_D")
_FAST_KEY_CHARS = MAX_KEY_BYTES // 4  # any str this short is within the byte limit


logger = logging.getLogger("cachetier")


async def _no_feed() -> None:
    return None


def _all_short(keys: list[str]) -> bool:
    """Every key a non-empty str without NUL, short enough to be within the byte limit uncounted."""
    try:
        joined = "".join(keys)  # TypeError unless every key is a str
    except TypeError:
        return False
    return bool(keys) and "\x00" not in joined and min(map(len, keys)) > 0 and max(map(len, keys)) <= _FAST_KEY_CHARS


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
        l1_entries = self.config.max_memory_entries if self.config.l1_enabled else 0
        self._l1 = L1Store(l1_entries, self.config.max_memory_bytes)
        self._l1_get = self._l1.get  # bound once: `get` serves L1 hits in well under a microsecond
        self._l2 = GuardedAdapter(
            adapter,
            namespace_prefix=f"{self._namespace}:",
            failure_threshold=self.config.failure_threshold,
            recovery_timeout=self.config.recovery_timeout,
        )
        self._reason = reason
        self._selector: object | None = None  # a resolved `SelectingAdapter`, once bypassed
        self._on_close = on_close
        self._generation = 0
        self._loads = MissLoader(
            l1=self._l1,
            l2=self._l2,
            entries=self._entries,
            config=self.config,
            generation=lambda: self._generation,
            store=self._store,
        )
        self._unsubscribe: Callable[[], Awaitable[None]] | None = None  # set once subscribed (or not)
        self._watching: asyncio.Future[None] | None = None
        self._closed = False
        self._purge = PurgeNotifier(purge_hooks)

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
        return str(getattr(self._selector or self._l2.adapter, "reason", "given explicitly"))

    def _full_key(self, key: str, namespace: str | None) -> str:
        check_key(key)
        if namespace is None:
            return f"{self._namespace}:{key}"
        return f"{check_namespace(namespace)}:{key}"

    def _full_tags(self, tags: Iterable[str] | None, namespace: str | None) -> tuple[str, ...]:
        prefix = self._namespace if namespace is None else check_namespace(namespace)
        return tuple(f"{prefix}:{tag}" for tag in check_tags(tags))

    def _ttl(self, ttl: float | None) -> float:
        return self.config.default_ttl if ttl is None else check_ttl(ttl)

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

    async def get(self, key: str, loader: Loader[Any] | None = None, **options: Any) -> Any:
        """The cached value, else `loader()`'s result (stored), else `default`.

        Keyword options: `ttl`, `tags`, `compress` (for the loaded value),
        `namespace`, `default`, `loader_timeout` (seconds; `config.loader_timeout`
        when omitted). Concurrent calls with a loader for the same missing key
        run it once, in this process and across processes sharing the L2 (see
        `cachetier.loading`); its exception reaches every waiter and nothing is
        stored. A loader running past its timeout raises `LoaderTimeoutError`
        to every waiter.
        """
        # The L1 hit path is kept lean: filling six keyword defaults on every call
        # costs about a tenth of a hit, so calls with options take `_get_with`.
        if options or type(key) is not str:
            return await self._get_with(key, loader, **options)
        full = self._prefix + key  # checked only on a miss: L1 holds no invalid key, so a hit proves it valid
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
    ) -> Any:
        full = self._full_key(key, namespace)
        value = self._l1_get(full)
        if value is not MISS:
            return value
        if loader is None:
            value = await self._read_l2(full)
            return default if value is MISS else value
        limit = self.config.loader_timeout if loader_timeout is None else check_ttl(loader_timeout, "loader_timeout")
        return await self._load(full, loader, ttl, self._full_tags(tags, namespace), compress, limit)

    async def _load(
        self,
        full: str,
        loader: Loader[Any],
        ttl: float | None,
        tags: tuple[str, ...],
        compress: bool | None,
        time_limit: float | None,
    ) -> Any:
        if self._unsubscribe is None or self._closed:
            await self._l2_ready()
        return await self._loads.load(full, loader, None if ttl is None else check_ttl(ttl), tags, compress, time_limit)

    def get_local(self, key: str, *, namespace: str | None = None) -> Any | Missing:
        """The L1 copy or `MISS`, without touching L2 or awaiting.

        Safe to call from threads other than the manager's event loop (the
        sync facade serves L1 hits this way without a thread hop).
        """
        return self._l1.peek(self._full_key(key, namespace))

    async def _read_l2(self, full: str) -> Any | Missing:
        if self._unsubscribe is None or self._closed:  # a sync check first: no coroutine per call
            await self._l2_ready()
        generation = self._generation
        data = await self._l2.get(full)
        if data is None:
            return MISS
        if not self.config.l1_enabled:  # no L1 copy to make: the value is all that is needed
            return self._entries.decode_value(full, data)
        frame = self._entries.decode(full, data)
        if frame is None:
            return MISS
        if generation == self._generation:
            self._loads.fill_l1(full, frame, len(data))
        return frame.value

    async def _watch_remote_changes(self) -> None:
        """Subscribe once to the backend's change feed, if it has one, before L1 holds anything.

        Concurrent first calls all wait for the one subscription: a read that filled
        L1 before the feed was up could keep a copy whose change nobody reports.
        """
        if self._watching is None:
            self._watching = asyncio.ensure_future(self._subscribe())
        await asyncio.shield(self._watching)

    async def _subscribe(self) -> None:
        unsubscribe: Callable[[], Awaitable[None]] = _no_feed
        try:
            adapter: Any = self._l2.adapter
            resolve = getattr(adapter, "resolve", None)  # SelectingAdapter picks its backend on first use
            try:
                if resolve is not None:
                    adapter = await resolve()
                    # Later calls go straight to the chosen backend: one await less per operation.
                    # The selector stays reachable for its `reason`; closing either closes the backend.
                    self._selector, self._l2.adapter = self._l2.adapter, adapter
                if not (self.config.l1_enabled and self.config.l1_change_feed):
                    return
                if isinstance(adapter, InvalidationSource):
                    unsubscribe = await adapter.subscribe_invalidations(self._prefix, self._on_remote_change)
            except Exception as exc:
                logger.warning("cachetier: no change feed from %s (%s); L1 copies live up to l1_max_ttl", adapter, exc)
        finally:
            self._unsubscribe = unsubscribe

    def _on_remote_change(self, keys: Sequence[str] | None) -> None:
        self._generation += 1  # reads in flight may carry the old value: don't let them fill L1
        if keys is None:
            self._l1.clear(self._prefix)
        else:
            self._l1.delete_many(keys)

    async def _l2_ready(self) -> None:
        """Refuse use after close; subscribe to the change feed before L1 can hold anything."""
        self._check_open()
        if self._unsubscribe is None:
            await self._watch_remote_changes()

    async def exists(self, key: str, *, namespace: str | None = None) -> bool:
        full = self._full_key(key, namespace)
        if self._l1.get(full) is not MISS:
            return True
        self._check_open()
        return await self._l2.exists(full)

    async def mget(self, keys: Iterable[str], *, namespace: str | None = None) -> dict[str, Any]:
        """Values of the keys that are cached; misses are absent from the result."""
        key_list = keys if type(keys) is list else list(keys)
        if namespace is None and _all_short(key_list):
            prefix = self._prefix  # as in `get`: short keys need no UTF-8 length check
            fulls = [prefix + key for key in key_list]
        else:
            fulls = [self._full_key(key, namespace) for key in key_list]
        found: dict[str, Any] = {}
        if self.config.l1_enabled:
            missing: list[str] = []  # as the caller wrote them
            missing_full: list[str] = []  # namespaced
            l1_get = self._l1.get
            for key, full in zip(key_list, fulls, strict=True):
                value = l1_get(full)
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
        if self._unsubscribe is None or self._closed:  # a sync check first: no coroutine per call
            await self._l2_ready()
        generation = self._generation
        blobs = await self._l2.mget(missing_full)
        if not self.config.l1_enabled:
            return self._entries.decode_values(missing, blobs, self._prefix if namespace is None else f"{namespace}:")
        fill = generation == self._generation
        for key, full, data in zip(missing, missing_full, blobs, strict=True):
            if data is None:
                continue
            frame = self._entries.decode(full, data)
            if frame is None:
                continue
            if fill:
                self._loads.fill_l1(full, frame, len(data))
            found[key] = frame.value
        return found

    # -- writes -----------------------------------------------------------------

    async def _store(
        self, full: str, value: Any, ttl: float | None, tags: tuple[str, ...], compress: bool | None
    ) -> bool:
        seconds = self._ttl(ttl)
        data, expires_at = self._entries.encode(value, seconds, tags, compress)
        if self._unsubscribe is None or self._closed:  # a sync check first: no coroutine per call
            await self._l2_ready()
        generation = self._generation
        stored = await self._l2.set(full, data, seconds, tags)
        if not self.config.l1_enabled:
            return stored
        if generation == self._generation:
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
        full = self._full_key(key, namespace)
        self._loads.written(full)
        return await self._store(full, value, ttl, self._full_tags(tags, namespace), compress)

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

        `items` is a mapping, or `(key, value)` / `(key, value, EntryOptions)`
        tuples whose options override the keyword defaults for that key.
        """
        pairs: Iterable[Any] = items.items() if isinstance(items, Mapping) else items
        entries: list[L2Entry] = []
        local: list[tuple[str, Any, float, tuple[str, ...], int]] = []
        for item in pairs:
            options: EntryOptions = item[2] if len(item) == 3 else {}
            full = self._full_key(item[0], namespace)
            seconds = self._ttl(options.get("ttl", ttl))
            entry_tags = self._full_tags(options.get("tags", tags), namespace)
            data, expires_at = self._entries.encode(item[1], seconds, entry_tags, options.get("compress", compress))
            entries.append(L2Entry(full, data, seconds, entry_tags))
            local.append((full, item[1], self._entries.l1_expiry(expires_at), entry_tags, len(data)))
        if not entries:
            return True
        for entry in entries:  # only once every item encoded: a bad item writes nothing
            self._loads.written(entry.key)
        await self._l2_ready()
        generation = self._generation
        stored = await self._l2.mset(entries)
        unchanged = generation == self._generation
        for full, value, expires_at, entry_tags, size in local:
            if unchanged:
                self._l1.set(full, value, expires_at, entry_tags, size)
            else:
                self._l1.delete(full)
        return stored

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

    async def refresh(
        self,
        key: str,
        loader: Loader[Any],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        compress: bool | None = None,
        namespace: str | None = None,
    ) -> Any:
        """Run `loader` and store its result whether or not the key was cached.

        As with `get`, the result is not stored when an invalidation finished,
        or this process wrote the key, while the loader ran.
        """
        full = self._full_key(key, namespace)
        full_tags = self._full_tags(tags, namespace)
        generation = self._generation
        value, written = await self._loads.call_loader(full, loader, self.config.loader_timeout)
        if generation == self._generation and not written:
            self._loads.written(full)
            await self._store(full, value, ttl, full_tags, compress)
        return value

    async def increment(
        self, key: str, by: int = 1, *, ttl: float | None = None, namespace: str | None = None
    ) -> int | None:
        """Atomically add `by` (a missing key starts at 0 and gets `ttl`).

        Returns the new value, or None when L2 is unavailable (the count is
        not kept locally: a counter that silently forks per process is worse
        than an explicit unknown). Raises `NotAnIntegerError` for a non-integer
        `by` or stored value.
        """
        if isinstance(by, bool) or not isinstance(by, int):
            raise NotAnIntegerError(f"by must be an int, got {type(by).__name__}")
        full = self._full_key(key, namespace)
        seconds = self._ttl(ttl)
        self._check_open()
        result = await self._l2.incr(full, by, seconds)
        self._generation += 1
        self._l1.delete(full)
        return result

    async def decrement(
        self, key: str, by: int = 1, *, ttl: float | None = None, namespace: str | None = None
    ) -> int | None:
        """`increment` by `-by`."""
        return await self.increment(key, -by, ttl=ttl, namespace=namespace)

    async def expire(self, key: str, seconds: float, *, namespace: str | None = None) -> bool:
        """Give a live key a new TTL; False when it is not cached (or L2 is down)."""
        full = self._full_key(key, namespace)
        check_ttl(seconds, "seconds")
        self._check_open()
        changed = await self._l2.expire(full, seconds)
        self._generation += 1
        self._l1.delete(full)
        return changed

    # -- invalidation -------------------------------------------------------------

    async def delete(self, key: str, *, namespace: str | None = None) -> bool:
        """Remove a key from both tiers; True when either held it."""
        full = self._full_key(key, namespace)
        self._check_open()
        removed = await self._l2.delete(full)
        self._generation += 1
        return self._l1.delete(full) or removed

    async def invalidate_by_tag(self, tag: str, *, namespace: str | None = None) -> int:
        """Remove every entry tagged `tag` from both tiers; return the L2 count removed."""
        return await self.invalidate_by_tags([tag], namespace=namespace)

    async def invalidate_by_tags(self, tags: Iterable[str], *, namespace: str | None = None) -> int:
        """Remove every entry carrying any of `tags`; each entry counts once."""
        full_tags = self._full_tags(tags, namespace)
        if not full_tags:
            return 0
        self._check_open()
        removed = await self._l2.invalidate_tags(full_tags)
        self._generation += 1
        local = self._l1.invalidate_tags(full_tags)
        if self._purge.hooks:
            await self._purge.notify(check_tags(tags))
        return max(removed, local)

    def add_purge_hook(self, hook: PurgeHook) -> None:
        """Also tell `hook` about every later tag invalidation."""
        self._purge.hooks.append(hook)

    @property
    def purge_failures(self) -> int:
        """Purge hook calls that raised (the invalidations themselves stood)."""
        return self._purge.failures

    async def clear(self, *, namespace: str | None = None) -> int:
        """Remove every entry of this cache's namespace (or `namespace`); never other keys."""
        prefix = f"{self._namespace if namespace is None else check_namespace(namespace)}:"
        self._check_open()
        removed = await self._l2.clear(prefix)
        self._generation += 1
        self._l1.clear(prefix)
        return removed

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

    def cache_aside(
        self,
        key: str,
        loader: Loader[Any],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        namespace: str | None = None,
    ) -> CacheAside[Any]:
        """A reusable handle on one key and its loader: `.get()`, `.refresh()`, `.invalidate()`."""
        check_key(key)
        return CacheAside(self, key, loader, ttl=ttl, tags=tuple(check_tags(tags)), namespace=namespace)

    async def is_healthy(self) -> bool:
        """Whether L2 answers a ping now (the L1 keeps serving either way)."""
        return not self._closed and await self._l2.ping()

    async def get_stats(self) -> CacheStats:
        l1, l2 = self._l1, self._l2
        backend = await l2.stats() if not self._closed else {}
        return CacheStats(
            adapter=l2.name,
            reason=self.selection_reason,
            l1=L1Stats(entries=len(l1), hits=l1.hits, requests=l1.hits + l1.misses, memory_bytes=l1.size_bytes),
            l2=L2Stats(
                healthy=l2.healthy,
                latency_ms=l2.latency_ms,
                hits=l2.hits,
                misses=l2.misses,
                errors=l2.errors,
                dropped_writes=l2.dropped_writes,
                circuit=l2.breaker.state,
                stats=backend,
            ),
            loader_calls=self._loads.loader_calls,
        )

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
            self._l1.clear()
            if self._watching is not None and not self._watching.done():
                await asyncio.wait([self._watching])  # a feed set up after close would never be left
            if self._unsubscribe is not None:
                try:
                    await self._unsubscribe()
                except Exception as exc:  # a backend fault: the backend is still closed below
                    logger.warning("cachetier: leaving the change feed failed (%s: %s)", type(exc).__name__, exc)
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
