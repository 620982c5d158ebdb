"""The in-process first tier: a bounded, TTL-aware S3-FIFO store.

S3-FIFO (Yang et al., SOSP 2023) keeps a small probationary FIFO (10% of the
capacity), a main FIFO and a ghost list of recently evicted keys. A hit only
bumps a 2-bit counter, so the read path moves nothing and takes no lock, which
is both faster than LRU's reordering and, on skewed traces, a higher hit ratio
(bench/l1_policy.py compares it with cachetools' LRU on a Zipf trace).

Entries hold decoded Python objects: a hit returns the stored object itself,
so callers must treat cached values as immutable.

Everything the store keeps is bounded: live entries by `max_entries` and
`max_bytes`; a dead entry (evicted, deleted, expired, invalidated) drops its
value and tags at once and stays only as a small tombstone in its FIFO, and
the FIFOs are rebuilt as soon as tombstones outnumber live entries; the ghost
list holds at most `max_entries` keys.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any

from cachetier.sentinel import MISS, Missing

_now = time.time  # a module global: one lookup less on every read

MAX_FREQ = 3  # S3-FIFO's 2-bit read counter
_SMALL_SHARE = 0.1


class _Entry:
    __slots__ = ("dead", "expires_at", "freq", "in_main", "key", "size", "tags", "value")

    def __init__(self, key: str, value: Any, expires_at: float, tags: tuple[str, ...], size: int) -> None:
        self.key = key
        self.value = value
        self.expires_at = expires_at
        self.tags = tags
        self.size = size
        self.freq = 0
        self.in_main = False
        self.dead = False


class L1Store:
    """Bounded by entry count and optionally by the encoded size of values.

    `max_entries=0` makes a store that never keeps anything (L1 turned off).
    Expiry is absolute Unix time (the same clock as stored frames), checked on
    every read, so an entry is never served past it.
    """

    def __init__(self, max_entries: int, max_bytes: int | None = None) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: dict[str, _Entry] = {}
        self._small: deque[_Entry] = deque()
        self._main: deque[_Entry] = deque()
        # An OrderedDict pops its oldest key in O(1); `next(iter(dict))` after many deletions from the
        # front walks every hole they left (about 6 µs a miss at 10,000 entries, most of an L1 fill).
        self._ghost: OrderedDict[str, None] = OrderedDict()
        self._tags: dict[str, set[str]] = {}
        self._small_live = 0
        self._dead = 0  # tombstones still in the FIFOs
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    @property
    def entries(self) -> dict[str, _Entry]:
        """The live entries by key, for an owner that inlines `get`'s hit; never to be changed from outside."""
        return self._data

    def __len__(self) -> int:
        return len(self._data)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> Any | Missing:
        """The live value, or `MISS`."""
        entry = self._data.get(key)
        if entry is not None and entry.expires_at > _now():
            if entry.freq < MAX_FREQ:
                entry.freq += 1
            self.hits += 1
            return entry.value
        if entry is not None:
            self._discard(entry)  # expired
        self.misses += 1
        return MISS

    def get_many(self, keys: Iterable[str]) -> list[Any]:
        """`get` of each key, in order (`MISS` for each miss), for one bulk read: one call, not one per key."""
        data, now, hits, values = self._data, _now(), 0, []
        for key in keys:
            entry = data.get(key)
            if entry is not None and entry.expires_at > now:
                if entry.freq < MAX_FREQ:
                    entry.freq += 1
                hits += 1
                values.append(entry.value)
            elif entry is None:
                self.misses += 1
                values.append(MISS)
            else:
                values.append(self.get(key))  # expired: dropped and counted there
        self.hits += hits
        return values

    def peek(self, key: str) -> Any | Missing:
        """Like `get` but never mutates the store beyond counters, so other
        threads may call it while the owning event loop writes (the GIL makes
        the dict read atomic; a racy counter is harmless)."""
        entry = self._data.get(key)
        if entry is None:
            self.misses += 1
            return MISS
        # The value is read before the expiry: the loop may kill this entry meanwhile, and
        # `_evict_entry` zeroes the expiry before it drops the value, so a dropped value is never served.
        value = entry.value
        if entry.expires_at <= _now():
            self.misses += 1
            return MISS
        self.hits += 1
        return value

    def set(self, key: str, value: Any, expires_at: float, tags: tuple[str, ...] = (), size: int = 0) -> None:
        """Insert or replace; `size` is the encoded byte size, used by the byte bound."""
        if not self.max_entries:
            return
        entry = self._data.get(key)
        if entry is not None:
            self._untag(entry)
            self._bytes += size - entry.size
            entry.value, entry.expires_at, entry.tags, entry.size = value, expires_at, tags, size
        else:
            entry = _Entry(key, value, expires_at, tags, size)
            self._data[key] = entry
            self._bytes += size
            if self._ghost.pop(key, MISS) is not MISS:
                entry.in_main = True
                self._main.append(entry)
            else:
                self._small.append(entry)
                self._small_live += 1
        for tag in tags:
            self._tags.setdefault(tag, set()).add(key)
        # Checked inline: a full L1 filled by misses evicts on every insert, and each call counts there.
        if len(self._data) > self.max_entries or (self.max_bytes is not None and self._bytes > self.max_bytes):
            self._enforce_bounds()

    def fill(self, key: str, value: Any, expires_at: float, tags: tuple[str, ...] = (), size: int = 0) -> None:
        """Insert a copy read from L2 unless the key is present: an entry already
        here was written by `set` after that read started, so it is newer."""
        if key not in self._data:
            self.set(key, value, expires_at, tags, size)

    def fill_many(self, items: Iterable[tuple[str, Any, float, tuple[str, ...], int]]) -> None:
        """Copies read from L2 by one bulk read, `(key, value, expires_at, tags, size)` each, in order.

        Like `fill` while there is room. Once the store is full, a key the ghost
        list does not know is only remembered there, not copied: it is admitted
        (to the main FIFO) the next time a read brings it, by `fill_many` or
        `set`. A bulk read is where a full L1 would otherwise evict once per key
        for keys that may never be read again (a listing, a scan); S3-FIFO's small
        FIFO exists to let such one-hit keys go, and this lets them go before they
        cost an entry and an eviction: an mget of 100 keys that all missed a full
        L1 spent about 1 µs a key here on those, most of its cost beyond the raw client's.
        """
        max_entries, max_bytes = self.max_entries, self.max_bytes
        if not max_entries:
            return
        data, small, main, ghost, tags_of = self._data, self._small, self._main, self._ghost, self._tags
        for key, value, expires_at, tags, size in items:
            if key in data:
                continue
            seen = ghost.pop(key, MISS) is not MISS
            if not seen and (len(data) >= max_entries or (max_bytes is not None and self._bytes + size > max_bytes)):
                ghost[key] = None
                if len(ghost) > max_entries:
                    ghost.popitem(last=False)
                continue
            entry = _Entry(key, value, expires_at, tags, size)
            data[key] = entry
            self._bytes += size
            if seen:
                entry.in_main = True
                main.append(entry)
            else:
                small.append(entry)
                self._small_live += 1
            for tag in tags:
                tags_of.setdefault(tag, set()).add(key)
            if len(data) > max_entries or (max_bytes is not None and self._bytes > max_bytes):
                self._enforce_bounds()

    def wants_any(self, keys: Iterable[str]) -> bool:
        """Whether `fill_many` would copy any of these keys now: L1 has room, or its ghost list knows one."""
        if not self.max_entries:
            return False
        if len(self._data) < self.max_entries and (self.max_bytes is None or self._bytes < self.max_bytes):
            return True
        ghost, data = self._ghost, self._data
        return any(key in ghost and key not in data for key in keys)

    def remember(self, keys: Iterable[str]) -> None:
        """What `fill_many` does with keys it does not copy (see `wants_any`): note them in the ghost list."""
        data, ghost, limit = self._data, self._ghost, self.max_entries
        for key in keys:
            if key not in data:
                ghost[key] = None
                if len(ghost) > limit:
                    ghost.popitem(last=False)

    def delete(self, key: str) -> bool:
        entry = self._data.get(key)
        if entry is None:
            return False
        self._discard(entry)
        return True

    def delete_many(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.delete(key)

    def invalidate_tags(self, tags: Iterable[str]) -> int:
        """Drop every entry carrying one of `tags`; return how many were dropped."""
        removed = 0
        for tag in tags:
            for key in self._tags.pop(tag, ()):
                removed += self.delete(key)
        return removed

    def clear(self, prefix: str = "") -> None:
        """Drop every entry whose key starts with `prefix` (all entries by default)."""
        if not prefix:
            self._data.clear()
            self._small.clear()
            self._main.clear()
            self._ghost.clear()
            self._tags.clear()
            self._small_live = self._dead = self._bytes = 0
            return
        self.delete_many([key for key in self._data if key.startswith(prefix)])

    def _discard(self, entry: _Entry) -> None:
        """Kill an entry that is still queued: it stays in its FIFO as a tombstone until popped or compacted."""
        self._evict_entry(entry)
        if not entry.in_main:
            self._small_live -= 1
        self._dead += 1
        if self._dead > len(self._data) + 64:
            self._compact()

    def _untag(self, entry: _Entry) -> None:
        for tag in entry.tags:
            keys = self._tags.get(tag)
            if keys is not None:
                keys.discard(entry.key)
                if not keys:
                    del self._tags[tag]

    def _compact(self) -> None:
        # Rebuilding costs O(queued), and runs only once tombstones outnumber live
        # entries, so each discard pays O(1) amortised and the FIFOs hold at most
        # about twice the live entries.
        self._small = deque(entry for entry in self._small if not entry.dead)
        self._main = deque(entry for entry in self._main if not entry.dead)
        self._dead = 0

    def _enforce_bounds(self) -> None:
        data, max_entries, max_bytes = self._data, self.max_entries, self.max_bytes
        while len(data) > max_entries or (max_bytes is not None and self._bytes > max_bytes):
            if self._small_live > _SMALL_SHARE * max_entries or not self._main:
                self._evict_small()
            else:
                self._evict_main()

    def _evict_small(self) -> None:
        while self._small:
            entry = self._small.popleft()
            if entry.dead:
                self._dead -= 1
                continue
            self._small_live -= 1
            if entry.freq > 0:
                entry.in_main, entry.freq = True, 0
                self._main.append(entry)
                return
            ghost = self._ghost
            ghost[entry.key] = None
            if len(ghost) > self.max_entries:
                ghost.popitem(last=False)
            self._evict_entry(entry)
            return
        self._evict_main()

    def _evict_main(self) -> None:
        while self._main:
            entry = self._main.popleft()
            if entry.dead:
                self._dead -= 1
                continue
            if entry.freq > 0:
                entry.freq -= 1
                self._main.append(entry)
                continue
            self._evict_entry(entry)
            return

    def _evict_entry(self, entry: _Entry) -> None:
        del self._data[entry.key]
        if entry.tags:
            self._untag(entry)
        self._bytes -= entry.size
        entry.dead = True
        # A tombstone must not keep its value alive (the byte bound counts live entries only).
        # The expiry goes first: `peek` in another thread reads the value, then the expiry.
        entry.expires_at = 0.0
        entry.value = None
        entry.tags = ()
