"""The stored byte layout: a small header, then the codec's payload.

The header carries the absolute expiry and the entry's tags so that a process
filling its L1 from L2 knows both: its L1 copy then never outlives the L2
copy, and a later tag invalidation in this process also drops that L1 copy.

Layout (big-endian): version u8, flags u8, codec id u8, expires_at ms u64,
tags length u16, tags (UTF-8, joined by U+001F), payload.

Counters are the exception: `increment` stores plain ASCII decimal so that
backends can add atomically (Redis INCRBY, SQL arithmetic). A frame never
starts with a digit or '-', so the two forms cannot be confused.

Stored bytes are input like any other: whatever a frame holds, decoding it
either returns a value or raises `DeserializationError` (the manager's miss).
A compressed payload is inflated at most to `max_inflated` bytes, so a small
frame that would inflate to gigabytes (a zlib bomb) costs a bounded amount of
work and memory and is rejected as corrupt.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple, TypeVar

from cachetier.codecs import Codec
from cachetier.errors import DeserializationError, SerializationError

VERSION: Final = 1
FLAG_ZLIB: Final = 0x01
TAG_SEPARATOR: Final = "\x1f"
_HEADER = struct.Struct(">BBBQH")
_HEADER_SIZE: Final = _HEADER.size
_K = TypeVar("_K")
_VIEW_FROM: Final = 2048
_MAX_TAG_BYTES: Final = 0xFFFF
DEFAULT_MAX_INFLATED_BYTES: Final = 64 * 1024 * 1024
"""Default cap on a compressed payload's inflated size (`CacheConfig.max_inflated_bytes`)."""


class Frame(NamedTuple):
    """A decoded stored value. `expires_at` is Unix seconds; None for counters."""

    value: Any
    expires_at: float | None
    tags: tuple[str, ...]


def encode_frame(
    codec: Codec,
    value: Any,
    expires_at: float,
    tags: Sequence[str],
    compress: bool,
    compress_threshold: int,
    max_inflated: int = DEFAULT_MAX_INFLATED_BYTES,
) -> bytes:
    """Encode `value` and its metadata; compress when asked and worth it.

    A payload larger than `max_inflated` is stored uncompressed, so that every
    frame this writes is one a reader with the same cap accepts. Raises
    `SerializationError` for values the codec cannot encode, whatever the codec raised.
    """
    try:
        payload = codec.encode(value)
    except SerializationError:
        raise
    except Exception as exc:  # a custom codec's own error: still the caller's mistake, said the documented way
        raise SerializationError(f"value of type {type(value).__name__} cannot be encoded: {exc!r}") from exc
    flags = 0
    if compress and compress_threshold <= len(payload) <= max_inflated:
        packed = zlib.compress(payload, 1)
        if len(packed) < len(payload):
            payload, flags = packed, FLAG_ZLIB
    tag_bytes = TAG_SEPARATOR.join(tags).encode() if tags else b""
    if len(tag_bytes) > _MAX_TAG_BYTES:
        raise SerializationError(f"tags take {len(tag_bytes)} bytes; at most {_MAX_TAG_BYTES} are allowed")
    header = _HEADER.pack(VERSION, flags, codec.codec_id, int(expires_at * 1000), len(tag_bytes))
    return b"".join((header, tag_bytes, payload))


def decode_values(
    codec: Codec,
    keys: Sequence[_K],
    blobs: Sequence[bytes | None],
    *,
    view: bool = False,
    decode_many: Callable[[list[bytes]], list[Any]] | None = None,
    on_error: Callable[[_K, DeserializationError], None],
    max_inflated: int = DEFAULT_MAX_INFLATED_BYTES,
) -> dict[_K, Any]:
    """`{key: value}` for the present blobs, values only (for reads that need neither tags nor expiry).

    Blobs that cannot be decoded are left out and reported to `on_error`. With
    `view`, the codec gets a zero-copy `memoryview` of each large payload (only
    for codecs that accept one). With `decode_many` (payloads to values, raising
    `DeserializationError` if any fails), a batch of small plain frames is
    decoded without a Python call per value; anything else takes the
    one-by-one path.
    """
    if decode_many is not None:
        # Small frames only: copying large payloads into one array costs more than the calls it saves
        # (100 values of 20 KB: 0.93 ms batched against 0.67 ms one by one; of 100 bytes: 38 against 59 µs).
        plain, size, largest = plain_prefix(codec), _HEADER_SIZE, _VIEW_FROM
        try:
            payloads = [
                data[size + (data[11] << 8 | data[12]) :]  # the big-endian u16 tags length
                for data in blobs
                if data is not None and data.startswith(plain) and len(data) <= largest
            ]
        except IndexError:  # a blob shorter than a header: the one-by-one path reports it
            payloads = []
        present = (
            keys if len(payloads) == len(blobs) else [k for k, d in zip(keys, blobs, strict=True) if d is not None]
        )
        if len(payloads) == len(present):  # every present blob is a small plain frame
            try:
                return dict(zip(present, decode_many(payloads), strict=True))
            except Exception:
                pass  # one bad (or tagged-type) payload: find it below, one by one
    return _decode_each(codec, keys, blobs, view, on_error, max_inflated)


def decode_frames(
    codec: Codec,
    keys: Sequence[_K],
    blobs: Sequence[bytes | None],
    *,
    decode_many: Callable[[list[bytes]], list[Any]] | None = None,
    on_error: Callable[[_K, DeserializationError], None],
    max_inflated: int = DEFAULT_MAX_INFLATED_BYTES,
) -> list[Frame | None]:
    """The frame of each blob, as `decode_frame` gives it, in order (for reads that fill L1).

    None where a blob is absent or cannot be decoded; the latter are reported
    to `on_error` with their key. With `decode_many`, a batch of small plain
    frames has its payloads decoded in one call (see `decode_values`) and only
    the headers read one by one: an mget that fills L1 spent about 1.7 µs a
    value in `decode_frame` here, against 0.7 µs for the codec alone.
    """
    frames: list[Frame | None] = [None] * len(blobs)
    if decode_many is not None:
        plain, largest, unpack = plain_prefix(codec), _VIEW_FROM, _HEADER.unpack_from
        positions: list[int] = []
        expiries: list[float] = []
        tag_lists: list[tuple[str, ...]] = []
        payloads: list[bytes] = []
        for position, data in enumerate(blobs):
            if data is None:
                continue
            if not (data.startswith(plain) and _HEADER_SIZE <= len(data) <= largest):
                break  # a counter, a compressed or large payload, or foreign bytes: one by one below
            expires_ms, tags_len = unpack(data)[3:]
            start = _HEADER_SIZE + tags_len
            try:
                tag_lists.append(tuple(data[_HEADER_SIZE:start].decode().split(TAG_SEPARATOR)) if tags_len else ())
            except UnicodeDecodeError:
                break
            positions.append(position)
            expiries.append(expires_ms / 1000)
            payloads.append(data[start:])
        else:
            try:
                values = decode_many(payloads) if payloads else []
            except Exception:
                values = None  # one bad payload: found and reported below, one by one
            if values is not None:
                # `tuple.__new__` builds the same Frame at a third of the cost of calling `Frame(...)`.
                new = tuple.__new__
                for position, value, expires_at, tags in zip(positions, values, expiries, tag_lists, strict=True):
                    frames[position] = new(Frame, (value, expires_at, tags))
                return frames
    for position, (key, data) in enumerate(zip(keys, blobs, strict=True)):
        if data is not None:
            try:
                frames[position] = decode_frame(codec, data, max_inflated)
            except DeserializationError as exc:
                on_error(key, exc)
    return frames


def _decode_each(
    codec: Codec,
    keys: Sequence[_K],
    blobs: Sequence[bytes | None],
    view: bool,
    on_error: Callable[[_K, DeserializationError], None],
    max_inflated: int,
) -> dict[_K, Any]:
    found: dict[_K, Any] = {}
    decode = codec.decode
    plain = plain_prefix(codec)
    for key, data in zip(keys, blobs, strict=True):
        if data is None:
            continue
        try:
            if data[:3] == plain and len(data) >= _HEADER_SIZE:  # fast path: the tags are skipped, not decoded
                start = _HEADER_SIZE + (data[11] << 8 | data[12])
                # A view saves copying a large payload; slicing a small one is cheaper than making a view.
                payload = memoryview(data)[start:] if view and len(data) > _VIEW_FROM else data[start:]
                found[key] = decode(payload)  # type: ignore[arg-type]  # `view` only for codecs that take buffers
            else:
                found[key] = decode_frame(codec, data, max_inflated).value
        except Exception as exc:  # stored bytes are input: whatever the codec raised, this entry is corrupt
            on_error(key, _corrupt(exc))
    return found


def _corrupt(exc: Exception) -> DeserializationError:
    """`exc` as the error a corrupt entry is reported with (a codec may raise anything on hostile bytes)."""
    if isinstance(exc, DeserializationError):
        return exc
    error = DeserializationError(f"stored value cannot be decoded: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def plain_prefix(codec: Codec) -> bytes:
    """The first bytes of every uncompressed frame `codec` writes."""
    return bytes((VERSION, 0, codec.codec_id))


def decode_value(codec: Codec, data: bytes, plain: bytes, max_inflated: int = DEFAULT_MAX_INFLATED_BYTES) -> Any:
    """The value alone (`plain` from `plain_prefix(codec)`): a plain frame's tags are skipped, not decoded.

    Raises `DeserializationError` as `decode_frame` does.
    """
    if data[:3] == plain and len(data) >= _HEADER_SIZE:
        try:
            return codec.decode(data[_HEADER_SIZE + (data[11] << 8 | data[12]) :])
        except DeserializationError:
            raise
        except Exception as exc:
            raise _corrupt(exc) from exc
    return decode_frame(codec, data, max_inflated).value


def decode_frame(codec: Codec, data: bytes, max_inflated: int = DEFAULT_MAX_INFLATED_BYTES) -> Frame:
    """Decode stored bytes; raise `DeserializationError` for foreign or corrupt data.

    Corrupt includes a compressed payload that inflates past `max_inflated` bytes
    (found after inflating at most that much) and any exception the codec raises.
    """
    if not data:
        raise DeserializationError("stored value is shorter than the frame header")
    first = data[0]
    if 0x30 <= first <= 0x39 or first == 0x2D:  # an ASCII digit or '-': a counter
        try:
            return Frame(int(data), None, ())
        except ValueError as exc:
            raise DeserializationError("stored counter is not an integer") from exc
    if len(data) < _HEADER.size:
        raise DeserializationError("stored value is shorter than the frame header")
    version, flags, codec_id, expires_ms, tags_len = _HEADER.unpack_from(data)
    if version != VERSION:
        raise DeserializationError(f"unknown frame version {version}")
    if codec_id != codec.codec_id:
        raise DeserializationError(f"value was written by codec {codec_id}, this cache uses {codec.codec_id}")
    start = _HEADER.size
    try:
        tags = tuple(data[start : start + tags_len].decode().split(TAG_SEPARATOR)) if tags_len else ()
    except UnicodeDecodeError as exc:
        raise DeserializationError(f"stored tags are not UTF-8: {exc}") from exc
    payload = data[start + tags_len :]
    if flags & FLAG_ZLIB:
        payload = _inflate(payload, max_inflated)
    try:
        value = codec.decode(payload)
    except DeserializationError:
        raise
    except Exception as exc:
        raise _corrupt(exc) from exc
    return Frame(value, expires_ms / 1000, tags)


def _inflate(payload: bytes, limit: int) -> bytes:
    """The inflated payload; `DeserializationError` past `limit` bytes, having inflated no more than that."""
    inflater = zlib.decompressobj()
    try:
        inflated = inflater.decompress(payload, limit)
    except zlib.error as exc:
        raise DeserializationError(f"compressed value is corrupt: {exc}") from exc
    if not inflater.eof:
        if inflater.unconsumed_tail or len(inflated) >= limit:
            raise DeserializationError(f"compressed value inflates past max_inflated_bytes ({limit} bytes)")
        raise DeserializationError("compressed value is truncated")
    return inflated
