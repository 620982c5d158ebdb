"""Caching patterns over one `CacheManager`: cache-aside, read-through, write-through, refresh-ahead.

Write-behind is left out on purpose: acknowledging a write before the system
of record has it needs a durable queue, which a cache is not.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, TypeVar, cast, overload

from cachetier import CacheAside, CacheManager, InvalidTTLError, Loader
from cachetier.typed import convert

__all__ = ["CachePatterns"]

T = TypeVar("T")
AsyncLoader = Callable[[], Awaitable[T]]
SyncLoader = Callable[[], T]
logger = logging.getLogger("cachetier")

_ENVELOPE: Final = "__cachetier_refresh_ahead__"


def _wrap(value: Any, loaded_at: float) -> dict[str, Any]:
    return {_ENVELOPE: 1, "value": value, "loaded_at": loaded_at}


def _unwrap(entry: Any) -> tuple[Any, float] | None:
    if isinstance(entry, dict) and entry.get(_ENVELOPE) == 1 and "loaded_at" in entry:
        return entry.get("value"), float(entry["loaded_at"])
    return None


class CachePatterns:
    """The usual caching patterns, named, over `cache`.

    Entries written by `refresh_ahead` hold the value together with its load
    time; read them through `refresh_ahead` only. Call `aclose()` (or use
    `async with`) to wait for background refreshes before closing the cache.
    """

    def __init__(self, cache: CacheManager) -> None:
        self.cache = cache
        self._refreshing: dict[tuple[str, str | None], asyncio.Task[None]] = {}
        self.refresh_failures = 0

    # Async and sync loaders get separate overloads: with the `Loader[T]` union
    # mypy cannot infer T from an async function (it tries both members).
    @overload
    def cache_aside(
        self,
        key: str,
        loader: AsyncLoader[T],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        namespace: str | None = None,
        type: Any = None,
    ) -> CacheAside[T]: ...
    @overload
    def cache_aside(
        self,
        key: str,
        loader: SyncLoader[T],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        namespace: str | None = None,
        type: Any = None,
    ) -> CacheAside[T]: ...
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
        """A handle on `key` and its loader (`CacheManager.cache_aside`): `.get()`, `.refresh()`, `.invalidate()`.

        With `type`, values come back as that type (see `CacheManager.get`).
        """
        return self.cache.cache_aside(key, loader, ttl=ttl, tags=tags, namespace=namespace, type=type)

    @overload
    async def read_through(
        self,
        key: str,
        loader: AsyncLoader[T],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        namespace: str | None = None,
        type: Any = None,
    ) -> T: ...
    @overload
    async def read_through(
        self,
        key: str,
        loader: SyncLoader[T],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        namespace: str | None = None,
        type: Any = None,
    ) -> T: ...
    async def read_through(
        self,
        key: str,
        loader: Loader[Any],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        namespace: str | None = None,
        type: Any = None,
    ) -> Any:
        """The cached value, else `loader()`'s, stored; concurrent misses load once; as `type` when given."""
        return await self.cache.get(key, loader, ttl=ttl, tags=tags, namespace=namespace, type=type)

    async def write_through(
        self,
        key: str,
        value: T,
        writer: Callable[[T], Awaitable[object] | object],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        namespace: str | None = None,
    ) -> T:
        """Write `value` to the system of record with `writer`, then cache it; return `value`.

        If `writer` raises, the cache is not touched and the exception
        propagates. A read-through load that was running meanwhile does not
        overwrite the new value (the manager drops a loader's result when a
        write finished while it ran).
        """
        result = writer(value)
        if inspect.isawaitable(result):
            await result
        await self.cache.set(key, value, ttl=ttl, tags=tags, namespace=namespace)
        return value

    async def refresh_ahead(
        self,
        key: str,
        loader: AsyncLoader[T],
        ttl: float,
        *,
        refresh_ratio: float = 0.8,
        tags: Iterable[str] | None = None,
        namespace: str | None = None,
        type: Any = None,
    ) -> T:
        """The cached value; once older than `refresh_ratio * ttl` seconds it is reloaded in the background.

        `loader` is async: reloads run as tasks on the caller's event loop.
        With `type`, the value comes back as that type (see `CacheManager.get`).

        Callers keep getting the cached value while one background task per key
        reloads it, so a hot key never expires into a miss. A miss loads in the
        caller (single-flight). A failed background load is logged and counted
        in `refresh_failures`; the old value keeps being served until it
        expires. The reload is not stored when the entry was invalidated or
        replaced while it ran (checked just before storing: best effort).

        Raises:
            InvalidTTLError: `ttl` is not positive, or `refresh_ratio` is not in (0, 1].
            DeserializationError: the cached value does not fit `type` (invalidate it, or let it expire).
        """
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
            raise InvalidTTLError(f"refresh_ahead needs a positive ttl in seconds, got {ttl!r}")
        if not 0 < refresh_ratio <= 1:
            raise InvalidTTLError(f"refresh_ratio must be in (0, 1], got {refresh_ratio!r}")
        tag_list = list(tags or ())

        async def load() -> dict[str, Any]:
            return _wrap(await loader(), time.time())

        entry: Any = await self.cache.get(key, cast(Loader[Any], load), ttl=ttl, tags=tag_list, namespace=namespace)
        unwrapped = _unwrap(entry)
        if unwrapped is None:  # written by something other than refresh_ahead: replace it now
            entry = await self.cache.refresh(key, cast(Loader[Any], load), ttl=ttl, tags=tag_list, namespace=namespace)
            unwrapped = _unwrap(entry)
            assert unwrapped is not None
        value, loaded_at = unwrapped
        if time.time() - loaded_at >= refresh_ratio * ttl:
            self._schedule(key, namespace, loaded_at, load, ttl, tag_list)
        return cast(T, value if type is None else convert(value, type))

    def _schedule(
        self,
        key: str,
        namespace: str | None,
        loaded_at: float,
        load: Callable[[], Awaitable[dict[str, Any]]],
        ttl: float,
        tags: list[str],
    ) -> None:
        slot = (key, namespace)
        if slot in self._refreshing:
            return
        task = asyncio.create_task(self._refresh(key, namespace, loaded_at, load, ttl, tags))
        self._refreshing[slot] = task
        task.add_done_callback(lambda _: self._refreshing.pop(slot, None))

    async def _refresh(
        self,
        key: str,
        namespace: str | None,
        loaded_at: float,
        load: Callable[[], Awaitable[dict[str, Any]]],
        ttl: float,
        tags: list[str],
    ) -> None:
        try:
            fresh = await load()
            # The core's refresh() stores unconditionally; re-read so a reload that
            # raced an invalidation (or a newer refresh) does not bring old data back.
            current = _unwrap(await self.cache.get(key, namespace=namespace))
            if current is None or current[1] != loaded_at:
                return
            await self.cache.set(key, fresh, ttl=ttl, tags=tags, namespace=namespace)
        except Exception as exc:
            self.refresh_failures += 1
            logger.warning("cachetier: refresh-ahead of %r failed; serving the cached value: %s", key, exc)

    async def wait_idle(self) -> None:
        """Return once the background refreshes running now have finished."""
        while self._refreshing:
            await asyncio.gather(*self._refreshing.values(), return_exceptions=True)

    async def aclose(self) -> None:
        """Wait for background refreshes; the cache itself is left open."""
        await self.wait_idle()

    async def __aenter__(self) -> CachePatterns:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
