"""The static types of functions decorated with `cache_method`, so mypy keeps their signatures.

They describe `cachetier.integrations.decorators.CachedFunctionWrapper` as
type checkers see it: calls keep the function's parameters and result,
`invalidate`/`refresh` take the same arguments (awaitable for async
functions), and `__get__` drops the first parameter when a method is reached
through an instance, or a classmethod through its class (the self-typed
overloads are wrapt's own trick in its stubs). They are protocols, never
instantiated.

For mypy, put `@cache_method()` above `@classmethod` (a function whose first
parameter is a `type[...]` is typed as a classmethod): on Python 3.13+ it is
also the only order in which `Class.method.invalidate()` stays bound to the
class. A cached staticmethod reached through an instance looks bound to mypy
(its self-type check is lenient), so call cached staticmethods through the
class. Everything works at runtime either way.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, Self, TypeVar, overload

P = ParamSpec("P")
P2 = ParamSpec("P2")
R_co = TypeVar("R_co", covariant=True)
R2 = TypeVar("R2")
O = TypeVar("O")  # noqa: E741  # the owner's type, as in wrapt's stubs
O_contra = TypeVar("O_contra", contravariant=True)


class CachedFunction(Protocol[P, R_co]):
    """A cached sync function or method."""

    __name__: str
    __qualname__: str

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Remove the entry these arguments use; True when one was cached."""
        ...

    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        """Call the function now and store its result."""
        ...

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None, /) -> Self: ...
    @overload
    def __get__(
        self: CachedFunction[Concatenate[O, P2], R2], instance: O, owner: type[Any] | None = None, /
    ) -> CachedFunction[P2, R2]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None, /) -> Self: ...


class AsyncCachedFunction(Protocol[P, R_co]):
    """A cached async function or method; `R_co` is what awaiting a call gives."""

    __name__: str
    __qualname__: str

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R_co]: ...

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, bool]:
        """Remove the entry these arguments use; True when one was cached."""
        ...

    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R_co]:
        """Call the function now and store its result."""
        ...

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None, /) -> Self: ...
    @overload
    def __get__(
        self: AsyncCachedFunction[Concatenate[O, P2], R2], instance: O, owner: type[Any] | None = None, /
    ) -> AsyncCachedFunction[P2, R2]: ...
    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None, /) -> Self: ...


class CachedClassMethod(Protocol[O_contra, P, R_co]):
    """A cached sync classmethod (`@cache_method()` above `@classmethod`): bound on every access."""

    __name__: str
    __qualname__: str

    def __call__(self, owner: O_contra, /, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def __get__(self, instance: object, owner: type[Any] | None = None, /) -> CachedFunction[P, R_co]: ...


class AsyncCachedClassMethod(Protocol[O_contra, P, R_co]):
    """A cached async classmethod (`@cache_method()` above `@classmethod`): bound on every access."""

    __name__: str
    __qualname__: str

    def __call__(self, owner: O_contra, /, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R_co]: ...

    def __get__(self, instance: object, owner: type[Any] | None = None, /) -> AsyncCachedFunction[P, R_co]: ...
