"""Names of `RedisAdapter`'s own structures, beside the cache entries (the design is in `cachetier.adapters.redis`).

Each family starts with ``{<letter>:`` and is never counted as an entry:

- ``{t:<tag>}``: a tag's index (sorted set of keys scored by expiry, server ms);
- ``{k:<key>}``: a key's tag list (set);
- ``{l:<key>}``: a key's lease (the token, as decimal text, with PX = the lease's TTL);
- ``{m:t:<tag>}``, ``{m:p:<namespace>}``: revocation marks left by a tag
  invalidation and by a clear (the token counter at that time);
- ``{c:leases}``: the token counter, a hash (``token``, the last token given;
  ``longest``, the longest lease granted, in ms, which is how long a mark must live);
- ``{d:<tag>}``: the tag's purges in progress (a set naming the doomed indexes),
  and ``{d:<tag>}<id>``: one invalidation's doomed index, emptied a chunk at a time.

Cache keys arrive namespaced (``ns:key``, the namespace of letters, digits and
``_.-``), so none of them starts with ``{``, and a change feed tracking ``ns:``
never hears of these structures.
"""

from __future__ import annotations

from typing import Final

TAG_LIST_OPEN: Final = "{k:"
TAG_LIST_CLOSE: Final = "}"
LEASE_COUNTER: Final = "{c:leases}"
_RESERVED: Final = (b"{k:", b"{t:", b"{l:", b"{m:", b"{d:", b"{c:")


def tag_index(tag: str) -> str:
    return "{t:" + tag + "}"


def tag_list(key: str) -> str:
    return TAG_LIST_OPEN + key + TAG_LIST_CLOSE


def lease(key: str) -> str:
    return "{l:" + key + "}"


def tag_mark(tag: str) -> str:
    return "{m:t:" + tag + "}"


def prefix_mark(namespace: str) -> str:
    """The mark of a namespace (``ns:``); ``""`` is the mark every key checks."""
    return "{m:p:" + namespace + "}"


def namespace_of(text: str) -> str:
    """The text up to and including the first ':' (``""`` without one): the unit `clear` marks."""
    head, colon, _ = text.partition(":")
    return head + colon if colon else ""


def purges(tag: str) -> str:
    """The set naming the doomed indexes of `tag` still being purged."""
    return "{d:" + tag + "}"


def doomed_index(tag: str, purge_id: str) -> str:
    return purges(tag) + purge_id


def reserved(key: bytes, fence_mark: bytes) -> bool:
    """One of the families above, or a change feed's fence key (which removes itself)."""
    return key.startswith(_RESERVED) or fence_mark in key
