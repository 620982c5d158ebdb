"""Validation of keys, tags, namespaces and TTLs, so mistakes fail at the call that made them.

Every name that reaches a backend is valid UTF-8 (a lone surrogate cannot be
stored, and a backend that failed on one would count it as a fault), and a
namespace is drawn from `[A-Za-z0-9_.-]`, so a stored name ``namespace:key``
can never spell one of a backend's own structures: those start with a
character no namespace has (Redis's ``{t:...}`` and ``{k:...}``) or hold NUL,
which neither keys, tags nor namespaces may hold.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Final, TypeGuard

from cachetier.errors import InvalidKeyError, InvalidTagError, InvalidTTLError

MAX_KEY_BYTES: Final = 1024
"""Longest key accepted, in UTF-8 bytes, before the namespace is prepended."""

MAX_TAG_BYTES: Final = 256
"""Longest tag accepted, in UTF-8 bytes."""

MAX_NAMESPACE_CHARS: Final = 64
"""Longest namespace accepted; namespaces are ASCII letters, digits, '_', '.' and '-'."""

_NAMESPACE: Final = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_KNOWN_NAMESPACES: Final = 256
_known_namespaces: dict[str, None] = {}  # valid namespaces seen; cleared when full

MAX_TTL: Final = 100 * 365.25 * 86400
"""Longest TTL accepted, in seconds (a century): expiries must fit the stored u64 milliseconds and the backends."""


def check_key(key: object) -> str:
    """Return `key` when it is a non-empty str of at most `MAX_KEY_BYTES` UTF-8 bytes."""
    if type(key) is not str:
        if isinstance(key, str):
            return check_key(str.__str__(key))  # the plain str: a subclass's own __str__ is not ours to call
        raise InvalidKeyError(f"cache keys must be str, got {type(key).__name__}")
    if not key:
        raise InvalidKeyError("cache keys must not be empty")
    if "\x00" in key:
        raise InvalidKeyError("cache keys must not contain NUL (PostgreSQL text cannot store it)")
    # isascii() reads a flag CPython keeps on every str: ASCII keys (nearly all) never pay for encoding.
    if key.isascii():
        if len(key) > MAX_KEY_BYTES:
            raise InvalidKeyError(f"cache keys are limited to {MAX_KEY_BYTES} UTF-8 bytes, got {len(key)}")
        return key
    size = _utf8_size(key)
    if size is None:
        raise InvalidKeyError(f"cache keys must be valid UTF-8 text (no lone surrogates), got {key[:40]!r}")
    if size > MAX_KEY_BYTES:
        raise InvalidKeyError(f"cache keys are limited to {MAX_KEY_BYTES} UTF-8 bytes, got {size}")
    return key


def _utf8_size(text: str) -> int | None:
    """Length of `text` in UTF-8, or None when it holds a lone surrogate (which UTF-8 cannot encode)."""
    try:
        return len(text.encode())
    except UnicodeEncodeError:
        return None


def check_tags(tags: Iterable[str] | None) -> tuple[str, ...]:
    """Validated, de-duplicated tags in their given order."""
    if not tags:
        return ()
    if isinstance(tags, str | bytes):
        raise InvalidTagError(f"tags must be a list of str, not a single {type(tags).__name__}")
    seen: dict[str, None] = {}
    try:
        for tag in tags:
            # The common tag (a short plain-ASCII str) is settled here; _check_tag says what is wrong otherwise.
            if (
                type(tag) is str
                and tag.isascii()
                and 0 < len(tag) <= MAX_TAG_BYTES
                and "\x1f" not in tag
                and "\x00" not in tag
            ):
                seen[tag] = None
                continue
            _check_tag(tag)
            seen[str.__str__(tag)] = None
    except TypeError:
        raise InvalidTagError(f"tags must be a list of str, got {type(tags).__name__}") from None
    return tuple(seen)


def _check_tag(tag: object) -> None:
    """Raise `InvalidTagError` saying what is wrong with `tag`, if anything."""
    if not isinstance(tag, str) or not tag:
        raise InvalidTagError(f"tags must be non-empty str, got {tag!r:.60}")
    if "\x1f" in tag or "\x00" in tag:
        raise InvalidTagError(f"tag {tag[:40]!r} contains U+001F or NUL")
    size = _utf8_size(tag)
    if size is None:
        raise InvalidTagError(f"tags must be valid UTF-8 text (no lone surrogates), got {tag[:40]!r}")
    if size > MAX_TAG_BYTES:
        raise InvalidTagError(f"tag {tag[:40]!r} is longer than {MAX_TAG_BYTES} UTF-8 bytes")


def check_ttl(ttl: object, name: str = "ttl") -> float:
    """A positive, finite number of seconds, at most `MAX_TTL`."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise InvalidTTLError(f"{name} must be a number of seconds, got {type(ttl).__name__}")
    if not ttl > 0 or not math.isfinite(ttl):
        raise InvalidTTLError(f"{name} must be a positive finite number of seconds, got {ttl!r}")
    if ttl > MAX_TTL:
        raise InvalidTTLError(f"{name} must be at most {MAX_TTL:.0f} seconds (a century), got {ttl!r}")
    return float(ttl)


def is_valid_namespace(namespace: object) -> TypeGuard[str]:
    """Whether `namespace` is 1-64 ASCII letters, digits, '_', '.' or '-'."""
    if type(namespace) is not str:
        return False
    if namespace in _known_namespaces:  # a program uses few namespaces: a dict lookup beats the regex 3:1
        return True
    if _NAMESPACE.fullmatch(namespace) is None:
        return False
    if len(_known_namespaces) >= _KNOWN_NAMESPACES:
        _known_namespaces.clear()
    _known_namespaces[namespace] = None
    return True


def check_namespace(namespace: object) -> str:
    """Return `namespace` when `is_valid_namespace`; raise `InvalidKeyError` otherwise."""
    if not is_valid_namespace(namespace):
        raise InvalidKeyError(
            f"namespace must be 1-{MAX_NAMESPACE_CHARS} ASCII letters, digits, '_', '.' or '-', got {namespace!r:.80}"
        )
    return namespace
