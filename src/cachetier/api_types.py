"""Type aliases shared by the public API, and the one reading of `mset`'s accepted item shapes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, TypeAlias, TypedDict, TypeVar

from cachetier.errors import InvalidKeyError

_T = TypeVar("_T")

Loader: TypeAlias = Callable[[], Awaitable[_T]] | Callable[[], _T]
"""A zero-argument function, sync or async, that produces the value on a miss."""


class EntryOptions(TypedDict, total=False):
    """Per-entry options for `CacheManager.mset`."""

    ttl: float | None
    tags: list[str] | tuple[str, ...]
    compress: bool


class MSetEntry(TypedDict, total=False):
    """The seed's `mset` entry: `{"key": ..., "value": ..., "options": {"ttl": ..., "tags": [...]}}`."""

    key: str
    value: Any
    options: EntryOptions


MSetItem: TypeAlias = tuple[str, Any] | tuple[str, Any, EntryOptions] | MSetEntry
_OPTION_NAMES: Final = frozenset(EntryOptions.__annotations__)
_ENTRY_NAMES: Final = frozenset({"key", "value", "options"})


def mset_items(items: Mapping[str, Any] | Iterable[MSetItem]) -> list[tuple[str, Any, EntryOptions]]:
    """Every accepted `mset` item as `(key, value, options)`.

    Accepted: a mapping of key to value; `(key, value)` and
    `(key, value, options)` tuples; the seed's `{"key", "value", "options"}`
    dicts (options optional). Keys themselves are checked where they are used.

    Raises:
        InvalidKeyError: an item of none of these shapes, naming its position;
            nothing is written when any item is malformed.
    """
    if isinstance(items, Mapping):
        return [(key, value, {}) for key, value in items.items()]
    normalised: list[tuple[str, Any, EntryOptions]] = []
    for position, item in enumerate(items):
        if isinstance(item, Mapping):
            unknown = set(item) - _ENTRY_NAMES
            if unknown or "key" not in item or "value" not in item:
                raise InvalidKeyError(
                    f"mset item {position}: expected {{'key', 'value', 'options'}}, got keys {sorted(map(str, item))}"
                )
            options = item.get("options") or {}
            normalised.append((item["key"], item["value"], _options(position, options)))
        elif isinstance(item, tuple | list) and len(item) in (2, 3):
            options = item[2] if len(item) == 3 else {}
            normalised.append((item[0], item[1], _options(position, options)))
        else:
            raise InvalidKeyError(
                f"mset item {position}: expected (key, value[, options]) or {{'key', 'value', 'options'}}, "
                f"got {type(item).__name__}"
            )
    return normalised


def _options(position: int, options: object) -> EntryOptions:
    if not isinstance(options, Mapping) or not set(options) <= _OPTION_NAMES:
        shown = sorted(map(str, options)) if isinstance(options, Mapping) else type(options).__name__
        raise InvalidKeyError(f"mset item {position}: options may hold {sorted(_OPTION_NAMES)}, got {shown}")
    return options  # type: ignore[return-value]  # checked above: a mapping of EntryOptions names
