"""`CacheManager`: the public API of the two-tier cache (reads, writes, invalidation, cache-aside).

Its state, the wiring of its tiers, the coherence rules and the lifecycle are
`cachetier.core.CacheCore`'s; the work of each call is mostly in
`cachetier.loading` (misses and loaders), `cachetier.bulk` (mget/mset) and
`cachetier.changes` (deletes, expiries, counters, invalidations).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar, overload

from cachetier.api_types import Loader, MSetItem
from cachetier.aside import CacheAside
from cachetier.changes import check_step
from cachetier.core import CacheCore
from cachetier.errors import DeserializationError, InvalidLoaderError
from cachetier.keys import check_key, check_tags, check_ttl
from cachetier.l1 import MAX_FREQ
from cachetier.sentinel import MISS

_now = time.time  # a module global: one lookup less on every hit
_T = TypeVar("_T")
_D = TypeVar("_D")


logger = logging.getLogger("cachetier")


class CacheManager(CacheCore):
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
