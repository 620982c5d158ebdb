"""`@cache_method` and `@cache_class`: memoise sync and async functions and methods in a cachetier cache.

Built on wrapt in the manner of wrapt's own `caching.py` (the wrapper is in
`cachetier.integrations.cached_function`): it offers `.invalidate()` and
`.refresh()`, also on bound methods (`service.get_user.invalidate(1)`).

Keys and tags of a call are built by `cachetier.integrations.call_keys` (read
it for what a generated key covers); an argument that cannot be encoded
raises `CacheKeyError` at the call, naming it, rather than a silent miss.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

from cachetier.errors import ConfigError
from cachetier.integrations.cached_function import (
    NO_CACHE_MARK,
    BoundCachedFunctionWrapper,
    CachedFunctionWrapper,
    CacheSource,
    set_default_cache,
)
from cachetier.integrations.call_keys import CacheKeyError, KeyBy, KeySpec, TagSpec
from cachetier.integrations.decorator_types import (
    AsyncCachedClassMethod,
    AsyncCachedFunction,
    CachedClassMethod,
    CachedFunction,
)

__all__ = [
    "AsyncCachedClassMethod",
    "AsyncCachedFunction",
    "BoundCachedFunctionWrapper",
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
    key_generator: KeySpec = None,
    namespace: str | None = None,
    key_by: KeyBy = None,
) -> _Decorator:
    """Cache a sync or async function or method's results; concurrent misses load once.

    Args:
        cache: a `CacheManager` (async functions), a `SyncCache` (sync
            functions; async ones use its `.manager`), a zero-argument callable
            returning either (resolved on first call), or None for the default
            (`set_default_cache`, looked up at each call).
        ttl: seconds; the class's `default_ttl`, else the cache's default TTL, when None.
        tags: tags or templates such as `"user:{user_id}"` formatted with the
            bound arguments, or a callable taking the function's arguments
            (a method's without `self`/`cls`).
        key: a template like `tags`, or a callable taking the function's
            arguments (a method's without `self`/`cls`, as the seed's key
            generators); used verbatim (no namespace prefix) so other code can
            address the entry. Generated when None.
        key_generator: the seed's name for `key`; give one of the two.
        namespace: first part of generated keys (default: the class's
            `@cache_class` namespace, else the module name). It stays inside
            the cache's own namespace: `clear()` and tag invalidations reach it.
        key_by: for methods, an attribute name (e.g. `"tenant_id"`) or a
            callable taking the instance, whose value goes into generated keys.
            Without it (and without a `__cache_key__()` method) the instance is
            left out, so all instances share results.

    Results come back as the return annotation says (`-> User` gives a `User`
    whether it came from the function, L1 or L2): dataclasses, msgspec
    Structs, attrs classes, TypedDicts, pydantic models and containers of
    them (see `cachetier.typed`). A cached result that no longer fits the
    annotation is reloaded.

    A sync function runs in the calling thread (the `SyncCache` only
    coordinates single-flight on its loop). An async function given a
    `SyncCache` uses its manager on the caller's event loop;
    with Redis or PostgreSQL give async code its own `CacheManager` instead,
    since their connections belong to one loop.

    Raises:
        TypeError: a sync function given a `CacheManager` (at decoration).
        ConfigError: a template names something that is not a parameter, both
            `key` and `key_generator` (or `key` and `key_by`) are given (at
            decoration), or no cache is given and none is set (at call).
    """
    if key is not None and key_generator is not None:
        raise ConfigError("cache_method: give key= or key_generator= (the same setting), not both")
    chosen = key if key is not None else key_generator
    return _Decorator(cache=cache, ttl=ttl, tags=tags, key=chosen, namespace=namespace, key_by=key_by)


def no_cache(func: F) -> F:
    """Leave this method uncached when its class is decorated with `@cache_class`."""
    target = func.__func__ if isinstance(func, classmethod | staticmethod) else func
    setattr(target, NO_CACHE_MARK, True)
    return func


def cache_class(
    *,
    cache: CacheSource = None,
    namespace: str | None = None,
    default_ttl: float | None = None,
    tags: Iterable[str] = (),
    key_by: KeyBy = None,
    exclude: Iterable[str] = (),
    include_private: bool = False,
) -> Callable[[C], C]:
    """Apply `cache_method` to the methods a class defines itself (not inherited ones).

    Public methods, classmethods and staticmethods are wrapped; dunder methods,
    properties, methods named in `exclude` or marked `@no_cache` are not.
    `_private` methods are wrapped only with `include_private=True`. Methods
    decorated with `@cache_method` keep their own settings and take the
    class's (`cache`, `namespace`, `default_ttl`, `key_by`) where they left
    them unset; `tags` are added to every cached method's own.

    Raises:
        ConfigError: `exclude` names a method the class does not define, or a
            tag template names something a method has no parameter for.
    """
    excluded = frozenset(exclude)
    if isinstance(tags, str):
        raise ConfigError("cache_class: tags must be a list of str, not a single str")
    class_tags = tuple(tags)

    def decorate(cls: C) -> C:
        unknown = excluded - set(vars(cls))
        if unknown:
            raise ConfigError(f"cache_class: {cls.__qualname__} defines no {sorted(unknown)} to exclude")
        for name, member in list(vars(cls).items()):
            target = member.__func__ if isinstance(member, classmethod | staticmethod) else member
            if isinstance(target, CachedFunctionWrapper):  # wrapt proxies __class__: test this first
                target._self_adopt_class(
                    cache=cache, namespace=namespace, ttl=default_ttl, tags=class_tags, key_by=key_by
                )
                continue
            if name in excluded or name.startswith("__") or (name.startswith("_") and not include_private):
                continue
            if not inspect.isfunction(target) or getattr(target, NO_CACHE_MARK, False):
                continue
            wrapper = CachedFunctionWrapper(member, cache=None, ttl=None, tags=(), key=None, namespace=None)
            wrapper._self_adopt_class(cache=cache, namespace=namespace, ttl=default_ttl, tags=class_tags, key_by=key_by)
            setattr(cls, name, wrapper)
        return cls

    return decorate
