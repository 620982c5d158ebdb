"""The wrapper behind `@cache_method`: resolving its cache, calling through it, typing its results.

A wrapt `FunctionWrapper` subclass in the manner of wrapt's own `caching.py`:
its state lives in `_self_*` attributes and it offers `.invalidate()` and
`.refresh()`, also on bound methods (`service.get_user.invalidate(1)`).
The public decorators are in `cachetier.integrations.decorators`.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any, Final

import wrapt

from cachetier.errors import ConfigError, DeserializationError, SerializationError
from cachetier.integrations.call_keys import CallKeys, KeyBy, KeySpec, TagSpec
from cachetier.manager import CacheManager
from cachetier.sync import SyncCache
from cachetier.typed import convert, return_type

AnyCache = CacheManager | SyncCache
CacheSource = AnyCache | Callable[[], AnyCache] | None

logger = logging.getLogger("cachetier")

NO_CACHE_MARK: Final = "__cachetier_no_cache__"  # set by `no_cache`
_UNRESOLVED: Final = object()
_default_cache: AnyCache | None = None
_default_lock = threading.Lock()


def set_default_cache(cache: AnyCache | None) -> None:
    """Use `cache` where a decorator was given none (`None` forgets it; it is not closed).

    Decorated functions look the default up at each call, so they can be
    defined at import time and the app factory sets the cache later. A call
    made while no default is set raises `ConfigError`: a cache made up on the
    spot would be one the app never closes and whose entries its
    invalidations never reach.
    """
    global _default_cache
    with _default_lock:
        _default_cache = cache


def _get_default_cache(qualname: str) -> AnyCache:
    cache = _default_cache
    if cache is None:
        raise ConfigError(
            f"{qualname} was called before any cache was set: pass cache=... to its decorator "
            "or call cachetier.integrations.decorators.set_default_cache(cache) in the app factory"
        )
    return cache


def _check_cache(func: Callable[..., Any], is_async: bool, cache: CacheSource) -> None:
    if isinstance(cache, CacheManager) and not is_async:
        raise TypeError(
            f"{func.__qualname__} is a sync function: give it a cachetier.sync.SyncCache, "
            "not a CacheManager (whose methods must be awaited)"
        )


def _raw_function(wrapped: Any) -> Callable[..., Any]:
    """The plain function inside a classmethod/staticmethod (their objects lack a signature on 3.11)."""
    func = wrapped.__func__ if isinstance(wrapped, classmethod | staticmethod) else wrapped
    if not callable(func):
        raise TypeError(f"cache_method can only decorate functions and methods, not {type(wrapped).__name__}")
    return func


class BoundCachedFunctionWrapper(wrapt.BoundFunctionWrapper[..., Any]):
    """A cached method bound to an instance or class, so `.invalidate()` knows its `self`/`cls`."""

    def _self_split(self, args: tuple[Any, ...]) -> tuple[Callable[..., Any], Any, tuple[Any, ...]]:
        # Mirrors wrapt's own dispatch in BoundFunctionWrapper.__call__.
        if self._self_binding in ("classmethod", "staticmethod"):
            return self.__wrapped__, getattr(self.__wrapped__, "__self__", None), args
        if self._self_instance is None and args:  # Class.method(instance, ...)
            instance, rest = args[0], args[1:]
            return self.__wrapped__.__get__(instance, type(instance)), instance, rest
        return self.__wrapped__, self._self_instance, args

    def invalidate(self, *args: Any, **kwargs: Any) -> Any:
        """As `CachedFunctionWrapper.invalidate`, for this binding."""
        _, instance, rest = self._self_split(args)
        return self._self_parent._self_invalidate(instance, rest, kwargs)

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """As `CachedFunctionWrapper.refresh`, for this binding."""
        wrapped, instance, rest = self._self_split(args)
        return self._self_parent._self_refresh(wrapped, instance, rest, kwargs)


class CachedFunctionWrapper(wrapt.FunctionWrapper[..., Any]):
    """The object `@cache_method(...)` returns; see the module docstring for keys and failures."""

    __bound_function_wrapper__ = BoundCachedFunctionWrapper

    def __init__(
        self,
        wrapped: Any,
        *,
        cache: CacheSource,
        ttl: float | None,
        tags: TagSpec,
        key: KeySpec,
        namespace: str | None,
        key_by: KeyBy = None,
    ) -> None:
        func = _raw_function(wrapped)
        is_async = inspect.iscoroutinefunction(func)
        _check_cache(func, is_async, cache)
        if key_by is not None and key is not None:
            raise ConfigError(f"{func.__qualname__}: key_by applies to generated keys; with key= put it in the key")
        self._self_func = func
        self._self_is_async = is_async
        self._self_qualname = func.__qualname__
        self._self_key, self._self_tags, self._self_namespace, self._self_key_by = key, tags, namespace, key_by
        self._self_class_tags: tuple[str, ...] = ()
        self._self_keys = self._self_build_keys()
        self._self_cache_source = cache
        self._self_cache: AnyCache | None = None
        self._self_lock = threading.Lock()
        self._self_ttl = ttl
        self._self_type: Any = _UNRESOLVED
        call = self._self_call_async if is_async else self._self_call_sync
        super().__init__(wrapped, call)

    def _self_build_keys(self) -> CallKeys:
        func = self._self_func
        prefix = f"{self._self_namespace or func.__module__}:{func.__qualname__}"
        return CallKeys(
            func,
            key=self._self_key,
            tags=self._self_tags,
            prefix=prefix,
            key_by=self._self_key_by,
            extra_tags=self._self_class_tags,
        )

    def _self_adopt_class(
        self, *, cache: CacheSource, namespace: str | None, ttl: float | None, tags: tuple[str, ...], key_by: KeyBy
    ) -> None:
        """Take `@cache_class`'s settings where the method's own decorator left them unset; add its tags."""
        if self._self_cache_source is None:
            _check_cache(self._self_func, self._self_is_async, cache)
            self._self_cache_source = cache
        if self._self_namespace is None:
            self._self_namespace = namespace
        if self._self_ttl is None:
            self._self_ttl = ttl
        if self._self_key_by is None and self._self_key is None:
            self._self_key_by = key_by
        self._self_class_tags = tags
        self._self_keys = self._self_build_keys()

    # -- resolving the cache -------------------------------------------------------

    def _self_resolve(self) -> AnyCache:
        source = self._self_cache_source
        if source is None:
            return _get_default_cache(self._self_qualname)
        if isinstance(source, CacheManager | SyncCache):
            return source
        if self._self_cache is None:
            with self._self_lock:
                if self._self_cache is None:
                    resolved = source()
                    if not isinstance(resolved, CacheManager | SyncCache):
                        raise TypeError(f"cache factory returned {type(resolved).__name__}, not a cache")
                    self._self_cache = resolved
        return self._self_cache

    def _self_manager(self) -> CacheManager:
        cache = self._self_resolve()
        return cache.manager if isinstance(cache, SyncCache) else cache

    def _self_sync(self) -> SyncCache:
        cache = self._self_resolve()
        if not isinstance(cache, SyncCache):
            raise TypeError(
                f"{self._self_qualname} is a sync function but its cache is a CacheManager; "
                "use a cachetier.sync.SyncCache (or set_default_cache(SyncCache(...)))"
            )
        return cache

    # -- calls ---------------------------------------------------------------------

    def _self_return_type(self) -> Any | None:
        # Resolved on first call, not at decoration: the annotation may name a class defined later.
        if self._self_type is _UNRESOLVED:
            self._self_type = return_type(self._self_func)
        return self._self_type

    def _self_typed(self, value: Any, loaded: bool) -> tuple[Any, bool]:
        """`value` as the return annotation says, and whether it fits.

        A cached value that does not fit (the type changed since it was
        stored) is reported so the caller reloads it; a value the function
        itself just returned is passed on as it is.
        """
        tp = self._self_return_type()
        if tp is None:
            return value, True
        try:
            return convert(value, tp), True
        except SerializationError as exc:  # a type msgspec cannot build: stop trying
            logger.warning("cachetier: results of %s are not typed: %s", self._self_qualname, exc)
            self._self_type = None
            return value, True
        except DeserializationError as exc:
            if not loaded:
                logger.info("cachetier: cached result of %s reloaded: %s", self._self_qualname, exc)
            return value, loaded

    async def _self_call_async(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        key, tags = self._self_keys.entry(instance, args, kwargs)
        manager = self._self_manager()
        loaded: list[bool] = []

        def load() -> Any:
            loaded.append(True)  # this call's value comes from the function, not the cache
            return wrapped(*args, **kwargs)

        value = await manager.get(key, load, ttl=self._self_ttl, tags=tags)
        typed, fits = self._self_typed(value, bool(loaded))
        if fits:
            return typed
        fresh = await manager.refresh(key, load, ttl=self._self_ttl, tags=tags)
        return self._self_typed(fresh, True)[0]

    def _self_call_sync(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        key, tags = self._self_keys.entry(instance, args, kwargs)
        cache = self._self_sync()
        loaded: list[bool] = []

        def load() -> Any:
            loaded.append(True)
            return wrapped(*args, **kwargs)

        value = cache.get(key, load, ttl=self._self_ttl, tags=tags)
        typed, fits = self._self_typed(value, bool(loaded))
        if fits:
            return typed
        return self._self_typed(cache.refresh(key, load, ttl=self._self_ttl, tags=tags), True)[0]

    def _self_invalidate(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        key, _ = self._self_keys.entry(instance, args, kwargs)
        if self._self_is_async:
            return self._self_manager().delete(key)
        return self._self_sync().delete(key)

    def _self_refresh(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        key, tags = self._self_keys.entry(instance, args, kwargs)
        if self._self_is_async:
            return self._self_refresh_async(key, tags, lambda: wrapped(*args, **kwargs))
        value = self._self_sync().refresh(key, lambda: wrapped(*args, **kwargs), ttl=self._self_ttl, tags=tags)
        return self._self_typed(value, True)[0]

    async def _self_refresh_async(self, key: str, tags: list[str], load: Callable[[], Any]) -> Any:
        value = await self._self_manager().refresh(key, load, ttl=self._self_ttl, tags=tags)
        return self._self_typed(value, True)[0]

    def invalidate(self, *args: Any, **kwargs: Any) -> Any:
        """Remove the entry these arguments would use (awaitable for async functions); True when one was cached."""
        return self._self_invalidate(None, args, kwargs)

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function now and store its result (awaitable for async functions)."""
        return self._self_refresh(_raw_function(self.__wrapped__), None, args, kwargs)
