"""The stored byte layout: a small header, then the codec's payload.

The header carries the absolute expiry and the entry's tags so that a process
filling its L1 from L2 knows both: its L1 copy then never outlives the L2
copy, and a later tag invalidation in this process also drops that L1 copy.

Layout (big-endian): version u8, flags u8, codec id u8, expires_at ms u64,
tags length u16, tags (UTF-8, joined by U+001F), payload.

Counters are the exception: `increment` stores plain ASCII decimal so that
backends can add atomically (Redis INCRBY, SQL arithmetic). A frame never
starts with a digit or '-', so the two forms cannot be confused.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from cachetier.codecs import Codec
from cachetier.errors import DeserializationError, SerializationError

VERSION: Final = 1
FLAG_ZLIB: Final = 0x01
TAG_SEPARATOR: Final = "\x1f"
_HEADER = struct.Struct(">BBBQH")
_MAX_TAG_BYTES: Final = 0xFFFF


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
) -> bytes:
    """Encode `value` and its metadata; compress when asked and worth it."""
    payload = codec.encode(value)
    flags = 0
    if compress and len(payload) >= compress_threshold:
        packed = zlib.compress(payload, 1)
        if len(packed) < len(payload):
            payload, flags = packed, FLAG_ZLIB
    tag_bytes = TAG_SEPARATOR.join(tags).encode() if tags else b""
    if len(tag_bytes) > _MAX_TAG_BYTES:
        raise SerializationError(f"tags take {len(tag_bytes)} bytes; at most {_MAX_TAG_BYTES} are allowed")
    header = _HEADER.pack(VERSION, flags, codec.codec_id, int(expires_at * 1000), len(tag_bytes))
    return b"".join((header, tag_bytes, payload))


def decode_frame(codec: Codec, data: bytes) -> Frame:
    """Decode stored bytes; raise `DeserializationError` for foreign or corrupt data."""
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
    tags = tuple(data[start : start + tags_len].decode().split(TAG_SEPARATOR)) if tags_len else ()
    payload = data[start + tags_len :]
    if flags & FLAG_ZLIB:
        try:
            payload = zlib.decompress(payload)
        except zlib.error as exc:
            raise DeserializationError(f"compressed value is corrupt: {exc}") from exc
    return Frame(codec.decode(payload), expires_ms / 1000, tags)
