"""A blocking facade over `CacheManager` for WSGI apps, sync decorators and scripts.

It owns one event loop in a daemon thread and runs the async core there, so
there is one implementation of the caching logic, not two. L1 hits are
answered in the caller's thread (`CacheManager.get_local`) without crossing
to the loop thread; everything else is one hop. Loaders run in the caller's
thread, never on the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, wait
from typing import Any, Generic, TypeVar, overload

from cachetier.api_types import MSetItem
from cachetier.errors import CacheClosedError, DeserializationError
from cachetier.keys import check_key, check_tags
from cachetier.manager import CacheManager
from cachetier.protocols import PurgeHook
from cachetier.sentinel import MISS
from cachetier.stats import CacheStats
from cachetier.typed import convert

_T = TypeVar("_T")
_D = TypeVar("_D")
_CANCELLED_RETRIES = 3  # calls restarted after joining a load another caller abandoned


class SyncCache:
    """Blocking methods mirroring `CacheManager`'s; `loader`s here are plain sync callables.

    Build the manager without using it elsewhere first: it becomes bound to
    this facade's loop. Call `close()` (or use `with`) to stop the thread.
    """

    def __init__(self, manager: CacheManager) -> None:
        self.manager = manager
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="cachetier-sync", daemon=True)
        self._submitting = threading.Lock()  # no call is submitted once close() has been
        self._closed = False
        self._thread.start()

    def _serve(self) -> None:
        self._loop.run_forever()
        # close() stopped the loop: cancel what still runs, so no caller waits forever.
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        if tasks:
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.close()

    def _submit(self, coroutine: Coroutine[Any, Any, _T]) -> Future[_T]:
        with self._submitting:
            if self._closed:
                coroutine.close()
                raise CacheClosedError("this SyncCache is closed")
            return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def _result(self, future: Future[_T]) -> _T:
        try:
            return future.result()
        except CancelledError:
            if self._closed:
                raise CacheClosedError("this SyncCache was closed during the call") from None
            raise

    def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run a coroutine on the facade's loop and wait for its result.

        Raises `CacheClosedError` once `close()` has been called.
        """
        return self._result(self._submit(coroutine))

    @overload
    def get(self, key: str, loader: None = None, *, namespace: str | None = None) -> Any | None: ...

    @overload
    def get(self, key: str, loader: None = None, *, default: _D, namespace: str | None = None) -> Any | _D: ...

    @overload
    def get(
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
    def get(self, key: str, loader: None = None, *, type: type[_T], namespace: str | None = None) -> _T | None: ...

    @overload
    def get(
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

    def get(self, key: str, loader: Callable[[], Any] | None = None, *, default: Any = None, **options: Any) -> Any:
        """As `CacheManager.get` (options included: `ttl`, `tags`, `namespace`, `type`, ...), blocking."""
        value = self.manager.get_local(key, namespace=options.get("namespace"))
        if value is not MISS:
            wanted = options.get("type")
            if wanted is None:
                return value
            try:
                return convert(value, wanted)
            except DeserializationError:
                pass  # does not fit the type: the manager treats it as a miss (and reloads it)
        if loader is None:
            return self.run(self.manager.get(key, default=default, **options))
        return self._run_with_loader(lambda bridge: self.manager.get(key, bridge, **options), loader)

    def _run_with_loader(
        self, start: Callable[[Callable[[], Awaitable[Any]]], Coroutine[Any, Any, _T]], loader: Callable[[], Any]
    ) -> _T:
        """Run a manager call whose loader executes here, in the calling thread.

        The manager keeps deciding whether and when to load (so its
        single-flight still applies), but the loader runs where the caller's
        thread-locals (a Flask app context, a DB session) live, and a loader
        that calls other cached functions cannot exhaust a worker pool.
        """
        for _ in range(_CANCELLED_RETRIES):
            try:
                return self._run_once_with_loader(start, loader)
            except CancelledError:
                # Not this thread's doing (it would have raised its own interrupt): the call
                # joined a load that another caller's interruption ended. Start it again.
                continue
        return self._run_once_with_loader(start, loader)

    def _run_once_with_loader(
        self, start: Callable[[Callable[[], Awaitable[Any]]], Coroutine[Any, Any, _T]], loader: Callable[[], Any]
    ) -> _T:
        wanted: Future[None] = Future()
        result: Future[Any] = Future()

        async def bridge() -> Any:
            wanted.set_result(None)
            return await asyncio.wrap_future(result)

        outcome = self._submit(start(bridge))
        try:
            pending: list[Future[Any]] = [outcome, wanted]
            wait(pending, return_when=FIRST_COMPLETED)
            if wanted.done():
                try:
                    result.set_result(loader())
                except BaseException as exc:
                    result.set_exception(exc)
            return self._result(outcome)
        finally:
            if not result.done():
                # This thread stopped waiting (Ctrl-C, a timeout signal) before its loader ran:
                # end the call, so that callers of the same key do not wait on it for ever.
                result.cancel()
                outcome.cancel()

    def set(self, key: str, value: Any, **options: Any) -> bool:
        """As `CacheManager.set`: True when L2 took the write."""
        return self.run(self.manager.set(key, value, **options))

    def delete(self, key: str, **options: Any) -> bool:
        return self.run(self.manager.delete(key, **options))

    def exists(self, key: str, **options: Any) -> bool:
        return self.run(self.manager.exists(key, **options))

    def expire(self, key: str, seconds: float, **options: Any) -> bool:
        return self.run(self.manager.expire(key, seconds, **options))

    def increment(self, key: str, by: int = 1, **options: Any) -> int | None:
        return self.run(self.manager.increment(key, by, **options))

    def decrement(self, key: str, by: int = 1, **options: Any) -> int | None:
        return self.run(self.manager.decrement(key, by, **options))

    def mget(self, keys: Iterable[str], **options: Any) -> dict[str, Any]:
        return self.run(self.manager.mget(list(keys), **options))

    def mset(self, items: Mapping[str, Any] | Iterable[MSetItem], **options: Any) -> bool:
        """As `CacheManager.mset` (the seed's `{"key", "value", "options"}` entries too): True when L2 took them."""
        return self.run(self.manager.mset(items, **options))

    def invalidate_by_tag(self, tag: str, **options: Any) -> int:
        return self.run(self.manager.invalidate_by_tag(tag, **options))

    def invalidate_by_tags(self, tags: Iterable[str], **options: Any) -> int:
        return self.run(self.manager.invalidate_by_tags(list(tags), **options))

    def clear(self, **options: Any) -> int:
        return self.run(self.manager.clear(**options))

    def refresh(self, key: str, loader: Callable[[], Any], **options: Any) -> Any:
        return self._run_with_loader(lambda bridge: self.manager.refresh(key, bridge, **options), loader)

    def get_stats(self) -> CacheStats:
        return self.run(self.manager.get_stats())

    def is_healthy(self) -> bool:
        return self.run(self.manager.is_healthy())

    def cache_aside(
        self,
        key: str,
        loader: Callable[[], _T],
        *,
        ttl: float | None = None,
        tags: Iterable[str] | None = None,
        namespace: str | None = None,
        type: Any = None,
    ) -> SyncCacheAside[_T]:
        """A reusable handle on one key and its loader: `.get()`, `.refresh()`, `.invalidate()`.

        With `type`, values come back as that type (see `CacheManager.get`).
        """
        check_key(key)
        tag_tuple = tuple(check_tags(tags))
        return SyncCacheAside(self, key, loader, ttl=ttl, tags=tag_tuple, namespace=namespace, type=type)

    @property
    def adapter_type(self) -> str:
        """As `CacheManager.adapter_type`."""
        return self.manager.adapter_type

    @property
    def selection_reason(self) -> str:
        """As `CacheManager.selection_reason`."""
        return self.manager.selection_reason

    def add_purge_hook(self, hook: PurgeHook) -> None:
        """Also tell `hook` about every later tag invalidation (it runs on the facade's loop)."""
        self.manager.add_purge_hook(hook)

    @property
    def purge_failures(self) -> int:
        """As `CacheManager.purge_failures`."""
        return self.manager.purge_failures

    def start(self) -> SyncCache:
        """Connect now instead of on first use (chooses the backend when config says auto)."""
        self.run(self.manager.start())
        return self

    def close(self) -> None:
        """Close the manager and stop the loop thread; idempotent."""
        with self._submitting:
            if self._closed:
                return
            closing = asyncio.run_coroutine_threadsafe(self.manager.close(), self._loop)
            self._closed = True
        try:
            closing.result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)

    def __enter__(self) -> SyncCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SyncCacheAside(Generic[_T]):
    """`CacheManager.cache_aside`'s handle for blocking code: one key bound to its loader."""

    __slots__ = ("_cache", "key", "loader", "namespace", "tags", "ttl", "type")

    def __init__(
        self,
        cache: SyncCache,
        key: str,
        loader: Callable[[], _T],
        *,
        ttl: float | None,
        tags: tuple[str, ...],
        namespace: str | None,
        type: Any = None,
    ) -> None:
        self._cache = cache
        self.key = key
        self.loader = loader
        self.ttl = ttl
        self.tags = tags
        self.namespace = namespace
        self.type = type

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"ttl": self.ttl, "tags": self.tags, "namespace": self.namespace}
        if self.type is not None:
            options["type"] = self.type
        return options

    def get(self) -> _T:
        """The cached value, loading and storing it on a miss (single-flight; the loader runs in this thread)."""
        value: _T = self._cache.get(self.key, self.loader, **self._options())
        return value

    def refresh(self) -> _T:
        """Reload and store unconditionally."""
        value: _T = self._cache.refresh(self.key, self.loader, **self._options())
        return value

    def invalidate(self) -> bool:
        return self._cache.delete(self.key, namespace=self.namespace)
