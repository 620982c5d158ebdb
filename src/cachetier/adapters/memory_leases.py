"""The lease book of `MemoryAdapter`: which missing keys are being loaded, and what revoked them.

A lease is revoked directly when its key is written or deleted. Tag
invalidations and clears cannot know which keys a load in flight will store
under a tag, so they leave a mark (the token count at the time); a store is
refused when any of its tags, or a prefix of its key, was marked after its
token was granted. Marks are kept only as long as a lease granted before them
could still be alive.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from cachetier.protocols import Lease


class LeaseBook:
    """Leases and revocation marks; every method is atomic (no awaits)."""

    def __init__(self) -> None:
        self._last_token = 0
        self._leases: dict[str, tuple[int, float]] = {}  # key -> (token, expires at)
        self._tag_marks: dict[str, tuple[int, float]] = {}  # tag -> (token count, mark expires at)
        self._prefix_marks: dict[str, tuple[int, float]] = {}
        self._longest_lease = 0.0

    def take(self, key: str, lease_ttl: float) -> Lease:
        now = time.monotonic()
        held = self._leases.get(key)
        if held is not None and held[1] > now:
            return Lease(None, None, True)
        self._last_token += 1
        self._leases[key] = (self._last_token, now + lease_ttl)
        self._longest_lease = max(self._longest_lease, lease_ttl)
        if len(self._leases) > 1024 and len(self._leases) & 1023 == 0:
            self._prune(now)
        return Lease(None, self._last_token, False)

    def redeem(self, key: str, tags: Sequence[str], token: int) -> bool:
        """True (and the lease released) when `token` still holds `key` and nothing revoked it."""
        now = time.monotonic()
        held = self._leases.get(key)
        if held is None or held[0] != token or held[1] <= now:
            return False
        del self._leases[key]
        for tag in tags:
            mark = self._tag_marks.get(tag)
            if mark is not None and mark[0] > token:
                return False
        return not any(key.startswith(prefix) and mark > token for prefix, (mark, _) in self._prefix_marks.items())

    def revoke(self, key: str) -> None:
        self._leases.pop(key, None)

    def revoke_tags(self, tags: Sequence[str]) -> None:
        self._last_token += 1
        until = time.monotonic() + self._longest_lease
        for tag in tags:
            self._tag_marks[tag] = (self._last_token, until)

    def revoke_prefix(self, prefix: str) -> None:
        self._last_token += 1
        self._prefix_marks[prefix] = (self._last_token, time.monotonic() + self._longest_lease)
        for key in [key for key in self._leases if key.startswith(prefix)]:
            del self._leases[key]

    def _prune(self, now: float) -> None:
        for book in (self._leases, self._tag_marks, self._prefix_marks):
            for name in [name for name, (_, until) in book.items() if until <= now]:
                del book[name]

    def clear(self) -> None:
        self._leases.clear()
        self._tag_marks.clear()
        self._prefix_marks.clear()
