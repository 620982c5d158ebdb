"""Type aliases shared by the public API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, TypedDict, TypeVar

_T = TypeVar("_T")

Loader: TypeAlias = Callable[[], Awaitable[_T]] | Callable[[], _T]
"""A zero-argument function, sync or async, that produces the value on a miss."""


class EntryOptions(TypedDict, total=False):
    """Per-entry options for `CacheManager.mset`."""

    ttl: float | None
    tags: list[str] | tuple[str, ...]
    compress: bool


MSetItem: TypeAlias = tuple[str, Any] | tuple[str, Any, EntryOptions]
