"""Typed values: turning what the JSON codec reads back into the caller's own type, with msgspec.

Stored bytes stay plain JSON (the `JsonCodec` format, unchanged), so entries
written before typed reads existed stay readable. What a read returns without
a type is what JSON gives (a dataclass comes back as a dict, a tuple as a
list); with a type (`convert(value, User)`, `get(key, type=User)`, a decorated
method's return annotation) it comes back as that type: dataclasses,
`msgspec.Struct`, attrs classes, `TypedDict`s, `NamedTuple`s, containers of
them, and pydantic models when pydantic is installed. No pickle: a type is
only ever built from JSON data by its own validation.

Encoding side: `to_builtin` is the codec's fallback for objects orjson does not
know (Structs, attrs classes, pydantic models, named tuples); it keeps
datetimes, Decimals and bytes as they are, so the codec tags them as usual.
"""

from __future__ import annotations

import datetime as dt
import logging
import typing
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final, TypeVar, overload

import msgspec

from cachetier.errors import DeserializationError, SerializationError

__all__ = ["TypedCodec", "convert", "needs_conversion", "return_type", "to_builtin"]

_T = TypeVar("_T")
logger = logging.getLogger("cachetier")

# Types the JSON codec already brings back as themselves (tagged or native), so to_builtin leaves them alone.
_KEPT: Final = (dt.datetime, dt.date, dt.time, Decimal, bytes, bytearray, memoryview)
# Types whose JSON reading is already what the annotation says: converting them would only cost time.
_PLAIN: Final[frozenset[Any]] = frozenset({Any, object, str, int, bool, type(None), None})


def _is_pydantic_model(tp: Any) -> bool:
    # Duck-typed: pydantic stays an optional dependency, never imported here.
    return isinstance(tp, type) and hasattr(tp, "model_validate") and hasattr(tp, "__pydantic_fields__")


def _dec_hook(tp: Any, obj: Any) -> Any:
    if _is_pydantic_model(tp):
        return tp.model_validate(obj)  # pydantic's ValidationError is a ValueError: msgspec reports it
    raise NotImplementedError(f"type {tp!r} is not supported")


def to_builtin(obj: Any) -> Any:
    """`obj` as JSON-ready builtins (dict, list, ...) for the codec's fallback hook.

    Raises `TypeError` for objects with no such form (the codec reports it as
    `SerializationError`).
    """
    if _is_pydantic_model(type(obj)):
        return _dump_model(obj)
    return msgspec.to_builtins(obj, builtin_types=_KEPT, enc_hook=_enc_hook)


def _dump_model(obj: Any) -> Any:
    # by_alias: model_validate reads aliases back; mode="python" keeps datetimes for the codec's tags.
    return obj.model_dump(mode="python", by_alias=True)


def _enc_hook(obj: Any) -> Any:
    if _is_pydantic_model(type(obj)):  # a model inside a Struct or attrs class
        return _dump_model(obj)
    raise TypeError(f"type {type(obj).__name__} is not JSON serializable")


def needs_conversion(tp: Any) -> bool:
    """False when JSON already reads back as `tp` (Any, object, str, int, bool, None, dicts and lists of them)."""
    try:
        if tp in _PLAIN:
            return False
    except TypeError:  # an unhashable annotation object: let msgspec judge it
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is dict:
        return len(args) != 2 or args[0] is not str or needs_conversion(args[1])
    if origin is list:
        return len(args) != 1 or needs_conversion(args[0])
    return True


class TypedCodec:
    """Converts decoded values to a given type; keeps one msgspec JSON decoder per type.

    Thread-safe enough for its use: a decoder built twice by two threads is
    the same decoder, and the dict assignment is atomic.
    """

    __slots__ = ("_decoders",)

    def __init__(self) -> None:
        self._decoders: dict[Any, msgspec.json.Decoder[Any]] = {}

    @overload
    def convert(self, value: object, tp: type[_T]) -> _T: ...
    @overload
    def convert(self, value: object, tp: Any) -> Any: ...

    def convert(self, value: object, tp: Any) -> Any:
        """`value` (as a codec decoded it, or as a caller gave it) as an instance of `tp`.

        Raises:
            DeserializationError: the value does not fit `tp` (e.g. a field was
                added since it was stored); callers treat it as a miss.
            SerializationError: `tp` is not a type values can be converted to.
        """
        if not needs_conversion(tp):
            return value
        try:
            return msgspec.convert(value, tp, dec_hook=_dec_hook)
        except msgspec.ValidationError as exc:
            raise DeserializationError(f"cached value does not fit {_name(tp)}: {exc}") from exc
        except TypeError as exc:
            raise SerializationError(f"cannot convert cached values to {_name(tp)}: {exc}") from exc

    def decode(self, payload: bytes | memoryview, tp: Any) -> Any:
        """A plain JSON payload (one without the codec's tagged types) decoded straight into `tp`.

        Faster than decoding and then converting (one pass, no intermediate
        dicts); equal in result. Raises as `convert` does.
        """
        decoder = self._decoders.get(tp)
        if decoder is None:
            try:
                decoder = msgspec.json.Decoder(tp, dec_hook=_dec_hook)
            except TypeError as exc:
                raise SerializationError(f"cannot decode cached values as {_name(tp)}: {exc}") from exc
            self._decoders[tp] = decoder
        try:
            return decoder.decode(payload)
        except msgspec.ValidationError as exc:
            raise DeserializationError(f"cached value does not fit {_name(tp)}: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise DeserializationError(f"stored bytes are not valid JSON: {exc}") from exc


_default = TypedCodec()


@overload
def convert(value: object, tp: type[_T]) -> _T: ...
@overload
def convert(value: object, tp: Any) -> Any: ...


def convert(value: object, tp: Any) -> Any:
    """`TypedCodec.convert` on a shared instance."""
    return _default.convert(value, tp)


def return_type(func: Callable[..., Any]) -> Any | None:
    """The resolved return annotation of `func`, or None when it has none or it cannot be resolved.

    An annotation that names something unknown where the function is defined
    (a class local to another function) is logged once here: the results of
    that function then come back as JSON gives them.
    """
    if "return" not in getattr(func, "__annotations__", {}):
        return None
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:  # NameError, or anything a broken annotation raises when evaluated
        logger.warning(
            "cachetier: return annotation of %s cannot be resolved (%s); its cached results are not typed",
            getattr(func, "__qualname__", func),
            exc,
        )
        return None
    tp = hints.get("return")
    return None if tp is None or not needs_conversion(tp) else tp


def _name(tp: Any) -> str:
    return getattr(tp, "__qualname__", None) or repr(tp)
