"""How the manager turns values into stored entries and back, under its config."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from cachetier.codecs import Codec, JsonCodec
from cachetier.config import CacheConfig
from cachetier.errors import DeserializationError
from cachetier.framing import (
    Frame,
    decode_frame,
    decode_frames,
    decode_value,
    decode_values,
    encode_frame,
    plain_prefix,
)
from cachetier.sentinel import MISS

logger = logging.getLogger("cachetier")


def _log_undecodable(key: str, exc: DeserializationError) -> None:
    logger.warning("cachetier: undecodable value at %r treated as a miss: %s", key, exc)


class EntryEncoder:
    """Applies the codec, the compression choice and the L1 TTL cap of one config."""

    def __init__(self, codec: Codec, config: CacheConfig) -> None:
        self.codec = codec
        self.compress = config.enable_compression
        self.compression_threshold = config.compression_threshold
        self.l1_max_ttl = config.l1_max_ttl
        self.max_inflated = config.max_inflated_bytes
        json = codec if type(codec) is JsonCodec else None
        self._view = json is not None  # orjson reads a memoryview, so payloads need no copy
        self._decode_many = json.decode_many if json is not None else None
        self._plain = plain_prefix(codec)

    def encode(self, value: Any, ttl: float, tags: tuple[str, ...], compress: bool | None) -> tuple[bytes, float]:
        """Stored bytes and the absolute expiry (Unix seconds) they carry."""
        expires_at = time.time() + ttl
        use_compression = self.compress if compress is None else compress
        data = encode_frame(
            self.codec, value, expires_at, tags, use_compression, self.compression_threshold, self.max_inflated
        )
        return data, expires_at

    def decode(self, key: str, data: bytes) -> Frame | None:
        """The frame, or None (logged) for bytes this cache cannot read: a miss, not an error."""
        try:
            return decode_frame(self.codec, data, self.max_inflated)
        except DeserializationError as exc:
            _log_undecodable(key, exc)
            return None

    def decode_value(self, key: str, data: bytes) -> Any:
        """The value alone (for reads that fill no L1), or `MISS` (logged) for bytes this cache cannot read."""
        try:
            return decode_value(self.codec, data, self._plain, self.max_inflated)
        except DeserializationError as exc:
            _log_undecodable(key, exc)
            return MISS

    def decode_values(self, keys: Sequence[str], blobs: Sequence[bytes | None], prefix: str) -> dict[str, Any]:
        """`{key: value}` for the present, readable blobs (undecodable ones are logged misses).

        Only values: for reads that fill no L1, which need neither tags nor expiry.
        `prefix` (the namespace) only makes the logged keys whole.
        """
        return decode_values(
            self.codec,
            keys,
            blobs,
            view=self._view,
            decode_many=self._decode_many,
            on_error=lambda key, exc: _log_undecodable(prefix + key, exc),
            max_inflated=self.max_inflated,
        )

    def decode_frames(self, keys: Sequence[str], blobs: Sequence[bytes | None]) -> list[Frame | None]:
        """The frame of each blob of these (full) keys, in order; None when absent or undecodable (logged)."""
        return decode_frames(
            self.codec,
            keys,
            blobs,
            decode_many=self._decode_many,
            on_error=_log_undecodable,
            max_inflated=self.max_inflated,
        )

    def l1_expiry(self, expires_at: float) -> float:
        """When an L1 copy of an entry expiring at `expires_at` must go: never later than L2's."""
        if self.l1_max_ttl is None:
            return expires_at
        return min(expires_at, time.time() + self.l1_max_ttl)
