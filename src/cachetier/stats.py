"""Typed statistics returned by `CacheManager.get_stats()`; each converts to the seed's dict shape."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _rate(hits: int, requests: int) -> float:
    return hits / requests if requests else 0.0


@dataclass(frozen=True, slots=True)
class L1Stats:
    entries: int
    hits: int
    requests: int
    memory_bytes: int

    @property
    def hit_rate(self) -> float:
        return _rate(self.hits, self.requests)


@dataclass(frozen=True, slots=True)
class L2Stats:
    healthy: bool
    latency_ms: float | None
    hits: int
    misses: int
    errors: int
    dropped_writes: int
    circuit: str
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Figures of one manager since it started. `to_dict()` gives the documented JSON shape."""

    adapter: str
    reason: str
    l1: L1Stats
    l2: L2Stats
    loader_calls: int

    @property
    def requests(self) -> int:
        return self.l1.requests

    @property
    def hits(self) -> int:
        return self.l1.hits + self.l2.hits

    @property
    def misses(self) -> int:
        return self.requests - self.hits

    @property
    def hit_rate(self) -> float:
        return _rate(self.hits, self.requests)

    def to_dict(self) -> dict[str, Any]:
        l2 = dataclasses.asdict(self.l2)
        return {
            "adapter": self.adapter,
            "reason": self.reason,
            "l1": {
                "entries": self.l1.entries,
                "hits": self.l1.hits,
                "requests": self.l1.requests,
                "hit_rate": self.l1.hit_rate,
            },
            "l2": {"healthy": l2.pop("healthy"), "latency_ms": l2.pop("latency_ms"), "stats": l2},
            "combined": {
                "total_entries": self.l1.entries + int(self.l2.stats.get("entries", 0)),
                "hit_rate": self.hit_rate,
                "memory_usage": self.l1.memory_bytes,
                "loader_calls": self.loader_calls,
            },
        }
