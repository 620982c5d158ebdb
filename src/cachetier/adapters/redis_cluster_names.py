"""Names of `RedisClusterAdapter`'s own keys, each placed in the hash slot it must share.

A cache entry's value is stored under its key as given (``ns:key``), so SCAN by
prefix and client tracking by prefix see values only. Its companions, the tag
list and the lease, must sit in the value's slot (one script touches all three),
and a tag's index and revocation mark in one slot of their own. A name joins a
slot through a hash tag (``{...}``): `slot_tag(slot)` is a short string whose
CRC16 lands in `slot`, found once per process by a search over base-36 names
(about 90k CRCs, ~0.1 s on first use). Building ``{<slot tag>}`` from the slot
(rather than wrapping the key, ``{<key>}``) keeps working for keys that hold
braces themselves, which the cluster hashes by their own first ``{...}``.

Every internal name is ``{<slot tag>}`` + NUL + a kind letter + the key or tag.
Cache keys and tags never hold NUL (`cachetier.keys`), so no entry can be
mistaken for one, and `parse_internal` can tell them apart from values.
"""

from __future__ import annotations

from functools import cache
from typing import Final

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

TAG_LIST: Final = "k"  # a value's tags: a set, with the value's TTL
LEASE: Final = "l"  # a value's lease token, or a writer's ticket
TAG_INDEX: Final = "t"  # a tag's keys: a sorted set scored by expiry (ms, the tag node's clock)
TAG_MARK: Final = "m"  # the lease clock's value at the tag's latest invalidation
CLOCK: Final = "c"

_ALPHABET: Final = "0123456789abcdefghijklmnopqrstuvwxyz"


@cache
def _slot_tags() -> tuple[str, ...]:
    tags: list[str | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
    missing, number = REDIS_CLUSTER_HASH_SLOTS, 0
    while missing:
        name, rest = "", number
        while True:
            name = _ALPHABET[rest % 36] + name
            rest //= 36
            if not rest:
                break
        number += 1
        slot = key_slot(name.encode())
        if tags[slot] is None:
            tags[slot] = name
            missing -= 1
    return tuple(tag for tag in tags if tag is not None)


def slot_of(name: str) -> int:
    """The cluster hash slot of `name` (its first non-empty ``{...}`` if any, as the server hashes it)."""
    return key_slot(name.encode())


def slot_tag(slot: int) -> str:
    """A short name without braces whose slot is `slot`."""
    return _slot_tags()[slot]


def internal(kind: str, name: str) -> str:
    """The companion of kind `kind` for key or tag `name`, in `name`'s slot."""
    return "{" + _slot_tags()[key_slot(name.encode())] + "}\x00" + kind + name


def companions(key: str) -> tuple[str, str]:
    """(tag list, lease) of `key`, both in its slot."""
    head = "{" + _slot_tags()[key_slot(key.encode())] + "}\x00"
    return head + TAG_LIST + key, head + LEASE + key


def clock_name() -> str:
    """The lease clock's key (slot 0): one counter every lease token and tag mark is drawn from."""
    return "{" + _slot_tags()[0] + "}\x00" + CLOCK


def parse_internal(name: str) -> tuple[str, str] | None:
    """(kind, key or tag) when `name` is one of ours, else None (a value)."""
    if not name.startswith("{"):
        return None
    close = name.find("}")
    if close < 0 or name[close + 1 : close + 2] != "\x00" or len(name) < close + 3:
        return None
    return name[close + 2], name[close + 3 :]
