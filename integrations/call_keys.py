"""How a call of a cached function becomes a cache key and tags.

Generated keys are `<prefix>:<hash>`, the hash being xxh3_128 over the
canonical JSON (orjson, sorted keys) of the arguments bound to the signature
with defaults applied, so `f(1)`, `f(x=1)` and `f(1, y=2)` (2 being the
default) share one entry. A method's instance is left out, so instances share
results, unless the decorator names a `key_by` attribute (or callable), or the
class defines `__cache_key__()`: that value then stands in for it. A class
(`cls`, or any class passed as an argument) is encoded by its qualified name:
a classmethod's result usually depends on the class it builds.

Functions that one factory makes share their qualified name; when such a
closure captured variables, the encodable ones (numbers, strings, JSON-like
containers, classes) are hashed into the prefix, so `make_getter(1)` and
`make_getter(2)` keep their own entries. Closures that differ only in what
cannot be encoded (a client, a lock) still share them: give those `key=` or
`namespace=`.
"""

from __future__ import annotations

import inspect
import string
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import xxhash

from cachetier.errors import ConfigError, SerializationError

KeySpec = str | Callable[..., str] | None
TagSpec = Iterable[str] | Callable[..., Iterable[str]]
KeyBy = str | Callable[[Any], object] | None
"""An attribute name of the instance, or a callable taking it, whose value goes into generated keys."""


class CacheKeyError(SerializationError):
    """An argument of a cached call cannot be encoded into its cache key."""


def _encode_default(value: object) -> str:
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _captured_suffix(func: Callable[..., Any]) -> str:
    """`:<hash>` of the encodable values `func` captured from its enclosing function, or ""."""
    cells = getattr(func, "__closure__", None)
    if not cells:
        return ""
    captured: dict[str, str] = {}
    for name, cell in zip(func.__code__.co_freevars, cells, strict=True):
        try:
            captured[name] = orjson.dumps(
                cell.cell_contents, default=_encode_default, option=orjson.OPT_SORT_KEYS
            ).decode()
        except (ValueError, TypeError):  # an empty cell, or a value with no stable encoding
            continue
    if not captured:
        return ""
    return ":" + xxhash.xxh3_64_hexdigest(orjson.dumps(captured, option=orjson.OPT_SORT_KEYS))


def _template_fields(template: str) -> set[str]:
    fields: set[str] = set()
    for _, field, _, _ in string.Formatter().parse(template):
        if field is not None:
            fields.add(field.split(".", 1)[0].split("[", 1)[0])
    return fields


class CallKeys:
    """The key and tags of each call of one function, from its signature and the decorator's settings.

    Raises `ConfigError` when a template names something that is not a parameter.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        key: KeySpec,
        tags: TagSpec,
        prefix: str,
        key_by: KeyBy = None,
        extra_tags: tuple[str, ...] = (),
    ) -> None:
        if isinstance(tags, str):
            raise ConfigError(f"{func.__qualname__}: tags must be a list of str, not a single str")
        self.signature = inspect.signature(func)
        self.qualname = func.__qualname__
        self.prefix = prefix + _captured_suffix(func)
        self.key = key
        self.key_by = key_by
        self.tags: tuple[str, ...] | Callable[..., Iterable[str]] = tags if callable(tags) else tuple(tags)
        self.extra_tags = extra_tags  # a class's tags, templates too, added to the function's own
        params = self.signature.parameters.values()
        self._var_keyword = next((p.name for p in params if p.kind is inspect.Parameter.VAR_KEYWORD), None)
        self._check_templates()

    def _check_templates(self) -> None:
        if self._var_keyword is not None:
            return  # template fields may arrive through **kwargs
        templates = [self.key] if isinstance(self.key, str) else []
        if not callable(self.tags):
            templates.extend(self.tags)
        templates.extend(self.extra_tags)
        for template in templates:
            unknown = _template_fields(template) - set(self.signature.parameters)
            if unknown:
                raise ConfigError(f"{self.qualname}: template {template!r} names {sorted(unknown)}, not parameters")

    def entry(self, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, list[str]]:
        """Key and tags of one call; `instance` is the bound self/cls, or None for a plain call.

        Key and tag callables get the call's own arguments, without `self`/`cls`
        (the seed's key generators take `(query, limit)`); templates may still
        name `self` (`"{self.tenant_id}:{user_id}"`).
        """
        full_args = args if instance is None else (instance, *args)
        try:
            bound = self.signature.bind(*full_args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.qualname}(): {exc}") from None
        bound.apply_defaults()
        if callable(self.key):
            key = self.key(*args, **kwargs)
        elif isinstance(self.key, str):
            key = self.key.format_map(self._fields(bound.arguments))
        else:
            key = f"{self.prefix}:{self._hash(instance, bound.arguments)}"
        if callable(self.tags):
            tags = list(self.tags(*args, **kwargs))
        else:
            fields = self._fields(bound.arguments)
            tags = [tag.format_map(fields) for tag in self.tags]
        if self.extra_tags:
            fields = self._fields(bound.arguments)
            tags.extend(tag.format_map(fields) for tag in self.extra_tags)
        return key, tags

    def _fields(self, arguments: dict[str, Any]) -> dict[str, Any]:
        fields = dict(arguments)
        if self._var_keyword is not None:
            fields.update(fields.pop(self._var_keyword, {}))
        return fields

    def _hash(self, instance: Any, arguments: dict[str, Any]) -> str:
        encodable = dict(arguments)
        if instance is not None:
            first = next(iter(self.signature.parameters))
            del encodable[first]
            if isinstance(instance, type):
                encodable[first] = instance
            elif self.key_by is not None:
                encodable[first] = self._key_by_value(instance)
            elif hasattr(instance, "__cache_key__"):
                encodable[first] = instance.__cache_key__()
        try:
            data = orjson.dumps(encodable, default=_encode_default, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            raise self._key_error(encodable) from None
        return xxhash.xxh3_128_hexdigest(data)

    def _key_by_value(self, instance: Any) -> object:
        if callable(self.key_by):
            return self.key_by(instance)
        try:
            return getattr(instance, str(self.key_by))
        except AttributeError:
            raise ConfigError(
                f"{self.qualname}: key_by={self.key_by!r} but {type(instance).__name__} has no such attribute"
            ) from None

    def _key_error(self, encodable: dict[str, Any]) -> CacheKeyError:
        """Name the argument that failed, re-encoding one at a time (only on this error path)."""
        for name, value in encodable.items():
            try:
                orjson.dumps(value, default=_encode_default, option=orjson.OPT_SORT_KEYS)
            except TypeError as exc:
                return CacheKeyError(
                    f"cannot build a cache key for {self.qualname}(): argument {name!r} "
                    f"({type(value).__name__}) is not JSON-encodable ({exc}); pass key=... to the decorator"
                )
        return CacheKeyError(f"cannot build a cache key for {self.qualname}()")  # pragma: no cover
