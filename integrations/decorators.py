"""`@cache_method` and `@cache_class`: memoise sync and async functions and methods in a cachetier cache.

Built on wrapt in the manner of wrapt's own `caching.py`: a `FunctionWrapper`
subclass keeps its state in `_self_*` attributes and offers `.invalidate()` and
`.refresh()`, also on bound methods (`service.get_user.invalidate(1)`).

Keys and tags of a call are built by `cachetier.integrations.call_keys` (read
it for what a generated key covers); an argument that cannot be encoded
raises `CacheKeyError` at the call, naming it, rather than a silent miss.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

import wrapt

from cachetier.errors import ConfigError
from cachetier.factory import create_cache
from cachetier.integrations.call_keys import CacheKeyError, CallKeys, KeySpec, TagSpec
from cachetier.integrations.decorator_types import (
    AsyncCachedClassMethod,
    AsyncCachedFunction,
    CachedClassMethod,
    CachedFunction,
)
from cachetier.manager import CacheManager
from cachetier.sync import SyncCache

__all__ = [
    "AsyncCachedClassMethod",
    "AsyncCachedFunction",
    "CacheKeyError",
    "CachedClassMethod",
    "CachedFunction",
    "CachedFunctionWrapper",
    "cache_class",
    "cache_method",
    "no_cache",
    "set_default_cache",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
O = TypeVar("O")  # noqa: E741  # the owner class of a classmethod
C = TypeVar("C", bound=type)
F = TypeVar("F")

AnyCache = CacheManager | SyncCache
CacheSource = AnyCache | Callable[[], AnyCache] | None

_NO_CACHE_MARK = "__cachetier_no_cache__"
_default_cache: AnyCache | None = None
_default_lock = threading.Lock()


def set_default_cache(cache: AnyCache | None) -> None:
    """Use `cache` where a decorator was given none (`None` forgets it; it is not closed).

    Unset, the default is built by `create_cache()` on first use: a
    `SyncCache` around it when that first use is a sync function.
    """
    global _default_cache
    with _default_lock:
        _default_cache = cache


def _get_default_cache(is_async: bool) -> AnyCache:
    global _default_cache
    with _default_lock:
        if _default_cache is None:
            _default_cache = create_cache() if is_async else SyncCache(create_cache())
        return _default_cache


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
    ) -> None:
        func = _raw_function(wrapped)
        is_async = inspect.iscoroutinefunction(func)
        if isinstance(cache, CacheManager) and not is_async:
            raise TypeError(
                f"{func.__qualname__} is a sync function: give it a cachetier.sync.SyncCache, "
                "not a CacheManager (whose methods must be awaited)"
            )
        self._self_is_async = is_async
        self._self_qualname = func.__qualname__
        prefix = f"{namespace or func.__module__}:{func.__qualname__}"
        self._self_keys = CallKeys(func, key=key, tags=tags, prefix=prefix)
        self._self_cache_source = cache
        self._self_cache: AnyCache | None = None
        self._self_lock = threading.Lock()
        self._self_ttl = ttl
        call = self._self_call_async if is_async else self._self_call_sync
        super().__init__(wrapped, call)

    # -- resolving the cache -------------------------------------------------------

    def _self_resolve(self) -> AnyCache:
        source = self._self_cache_source
        if source is None:
            return _get_default_cache(self._self_is_async)
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

    async def _self_call_async(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        key, tags = self._self_keys.entry(instance, args, kwargs)
        return await self._self_manager().get(key, lambda: wrapped(*args, **kwargs), ttl=self._self_ttl, tags=tags)

    def _self_call_sync(
        self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        key, tags = self._self_keys.entry(instance, args, kwargs)
        return self._self_sync().get(key, lambda: wrapped(*args, **kwargs), ttl=self._self_ttl, tags=tags)

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
            return self._self_manager().refresh(key, lambda: wrapped(*args, **kwargs), ttl=self._self_ttl, tags=tags)
        return self._self_sync().refresh(key, lambda: wrapped(*args, **kwargs), ttl=self._self_ttl, tags=tags)

    def invalidate(self, *args: Any, **kwargs: Any) -> Any:
        """Remove the entry these arguments would use (awaitable for async functions); True when one was cached."""
        return self._self_invalidate(None, args, kwargs)

    def refresh(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function now and store its result (awaitable for async functions)."""
        return self._self_refresh(_raw_function(self.__wrapped__), None, args, kwargs)


class _Decorator:
    """What `cache_method(...)` returns; its overloads carry the decorated function's types."""

    def __init__(self, **options: Any) -> None:
        self._options = options

    # Tried in order: a coroutine function is also a Callable[P, R], and a
    # classmethod under this decorator reaches mypy as a function whose first
    # parameter is type[O]. mypy flags these deliberate overlaps.
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, func: Callable[Concatenate[type[O], P], Coroutine[Any, Any, T]]
    ) -> AsyncCachedClassMethod[type[O], P, T]: ...
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, func: Callable[P, Coroutine[Any, Any, T]]
    ) -> AsyncCachedFunction[P, T]: ...
    @overload
    def __call__(self, func: Callable[Concatenate[type[O], P], R]) -> CachedClassMethod[type[O], P, R]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> CachedFunction[P, R]: ...

    def __call__(self, func: Any) -> Any:
        return CachedFunctionWrapper(func, **self._options)


def cache_method(
    *,
    cache: CacheSource = None,
    ttl: float | None = None,
    tags: TagSpec = (),
    key: KeySpec = None,
    namespace: str | None = None,
) -> _Decorator:
    """Cache a sync or async function or method's results; concurrent misses load once.

    Args:
        cache: a `CacheManager` (async functions), a `SyncCache` (sync
            functions; async ones use its `.manager`), a zero-argument callable
            returning either (resolved on first call), or None for the default
            (`set_default_cache`).
        ttl: seconds; the cache's default TTL when None.
        tags: tags or templates such as `"user:{user_id}"` formatted with the
            bound arguments, or a callable taking the function's arguments.
        key: a template like `tags`, or a callable taking the function's
            arguments; used verbatim (no namespace prefix) so other code can
            address the entry. Generated when None.
        namespace: first part of generated keys (default: the module name).

    A sync function runs in the calling thread (the `SyncCache` only
    coordinates single-flight on its loop). An async function given a
    `SyncCache` uses its manager on the caller's event loop;
    with Redis or PostgreSQL give async code its own `CacheManager` instead,
    since their connections belong to one loop.

    Raises:
        TypeError: a sync function given a `CacheManager` (at decoration).
        ConfigError: a template names something that is not a parameter.
    """
    return _Decorator(cache=cache, ttl=ttl, tags=tags, key=key, namespace=namespace)


def no_cache(func: F) -> F:
    """Leave this method uncached when its class is decorated with `@cache_class`."""
    target = func.__func__ if isinstance(func, classmethod | staticmethod) else func
    setattr(target, _NO_CACHE_MARK, True)
    return func


def cache_class(
    *,
    cache: CacheSource = None,
    namespace: str | None = None,
    default_ttl: float | None = None,
    exclude: Iterable[str] = (),
    include_private: bool = False,
) -> Callable[[C], C]:
    """Apply `cache_method` to the methods a class defines itself (not inherited ones).

    Public methods, classmethods and staticmethods are wrapped; dunder methods,
    properties, methods named in `exclude` or marked `@no_cache`, and methods
    already decorated with `@cache_method` (their own settings win) are not.
    `_private` methods are wrapped only with `include_private=True`.

    Raises:
        ConfigError: `exclude` names a method the class does not define.
    """
    excluded = frozenset(exclude)

    def decorate(cls: C) -> C:
        unknown = excluded - set(vars(cls))
        if unknown:
            raise ConfigError(f"cache_class: {cls.__qualname__} defines no {sorted(unknown)} to exclude")
        for name, member in list(vars(cls).items()):
            if name in excluded or name.startswith("__") or (name.startswith("_") and not include_private):
                continue
            if isinstance(member, CachedFunctionWrapper):
                continue
            target = member.__func__ if isinstance(member, classmethod | staticmethod) else member
            if not inspect.isfunction(target) or getattr(target, _NO_CACHE_MARK, False):
                continue
            setattr(
                cls,
                name,
                CachedFunctionWrapper(member, cache=cache, ttl=default_ttl, tags=(), key=None, namespace=namespace),
            )
        return cls

    return decorate
