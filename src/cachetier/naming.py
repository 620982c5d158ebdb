"""How keys and tags are named in L2: the cache's namespace, a per-call namespace, and cheap checks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from cachetier.keys import MAX_KEY_BYTES, check_key, check_namespace, check_tags, check_ttl

_FAST_KEY_CHARS: Final = MAX_KEY_BYTES // 4  # any str this short is within the byte limit


def all_short(keys: list[str]) -> bool:
    """Every key a non-empty str without NUL, short enough to be within the byte limit uncounted."""
    try:
        joined = "".join(keys)  # TypeError unless every key is a str
        if not joined.isascii():
            joined.encode()  # a lone surrogate: the checked path names the key
    except (TypeError, UnicodeEncodeError):
        return False
    return bool(keys) and "\x00" not in joined and min(map(len, keys)) > 0 and max(map(len, keys)) <= _FAST_KEY_CHARS


class KeyNaming:
    """Full L2 names of keys (`ns:key`) and tags (`ns:tag`) for a cache whose namespace is `namespace`."""

    def __init__(self, namespace: str, default_ttl: float) -> None:
        self.namespace = namespace
        self.prefix = f"{namespace}:"
        self.default_ttl = default_ttl

    def full_key(self, key: str, namespace: str | None) -> str:
        check_key(key)
        if namespace is None:
            return self.prefix + key
        return f"{check_namespace(namespace)}:{key}"

    def full_tags(self, tags: Iterable[str] | None) -> tuple[str, ...]:
        # Tags belong to this cache: a per-call namespace moves a key, never its tags, so
        # `invalidate_by_tag` reaches every entry of the cache that carries the tag.
        prefix = self.prefix
        return tuple(prefix + tag for tag in check_tags(tags))

    def ttl(self, ttl: float | None) -> float:
        return self.default_ttl if ttl is None else check_ttl(ttl)
