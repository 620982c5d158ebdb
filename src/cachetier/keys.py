"""Validation of keys, tags and TTLs, so mistakes fail at the call that made them."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

from cachetier.errors import InvalidKeyError, InvalidTagError, InvalidTTLError

MAX_KEY_BYTES: Final = 1024
"""Longest key accepted, in UTF-8 bytes, before the namespace is prepended."""

MAX_TAG_BYTES: Final = 256
"""Longest tag accepted, in UTF-8 bytes."""

MAX_TTL: Final = 100 * 365.25 * 86400
"""Longest TTL accepted, in seconds (a century): expiries must fit the stored u64 milliseconds and the backends."""


def check_key(key: object) -> str:
    """Return `key` when it is a non-empty str of at most `MAX_KEY_BYTES` UTF-8 bytes."""
    if type(key) is not str:
        if isinstance(key, str):
            return check_key(str(key))
        raise InvalidKeyError(f"cache keys must be str, got {type(key).__name__}")
    if not key:
        raise InvalidKeyError("cache keys must not be empty")
    if "\x00" in key:
        raise InvalidKeyError("cache keys must not contain NUL (PostgreSQL text cannot store it)")
    # len() counts characters; only keys that might be too long pay for encoding.
    if len(key) * 4 > MAX_KEY_BYTES and len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidKeyError(f"cache keys are limited to {MAX_KEY_BYTES} UTF-8 bytes, got {len(key.encode())}")
    return key


def check_tags(tags: Iterable[str] | None) -> tuple[str, ...]:
    """Validated, de-duplicated tags in their given order."""
    if not tags:
        return ()
    if isinstance(tags, str):
        raise InvalidTagError("tags must be a list of str, not a single str")
    seen: dict[str, None] = {}
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise InvalidTagError(f"tags must be non-empty str, got {tag!r}")
        if "\x1f" in tag or "\x00" in tag or len(tag.encode()) > MAX_TAG_BYTES:
            raise InvalidTagError(f"tag {tag[:40]!r} is longer than {MAX_TAG_BYTES} bytes or contains U+001F/NUL")
        seen[tag] = None
    return tuple(seen)


def check_ttl(ttl: object, name: str = "ttl") -> float:
    """A positive, finite number of seconds, at most `MAX_TTL`."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise InvalidTTLError(f"{name} must be a number of seconds, got {type(ttl).__name__}")
    if not ttl > 0 or not math.isfinite(ttl):
        raise InvalidTTLError(f"{name} must be a positive finite number of seconds, got {ttl!r}")
    if ttl > MAX_TTL:
        raise InvalidTTLError(f"{name} must be at most {MAX_TTL:.0f} seconds (a century), got {ttl!r}")
    return float(ttl)


def check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str) or not namespace or ":" in namespace:
        raise InvalidKeyError(f"namespace must be a non-empty str without ':', got {namespace!r}")
    return namespace
