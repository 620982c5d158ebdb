"""Typed statistics returned by `CacheManager.get_stats()`, readable as attributes or as the seed's mapping.

Units, so that `stats.hit_rate < 80` means what it says: `hit_rate` is a
percentage (0-100, as the seed shows it) and `hit_ratio` the same figure as a
fraction (0-1). Both exist everywhere a rate does; there is no third spelling.

`stats["combined"]["hit_rate"]` and `stats.combined.hit_rate` give the same
number: `CacheStats` is a read-only mapping of its `to_dict()` shape, and each
section is a typed object that also answers `section["name"]`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # only annotations: the guard and L1 modules import nothing from here at run time
    from cachetier.guard import GuardedAdapter
    from cachetier.l1 import L1Store


def _ratio(hits: int, requests: int) -> float:
    return hits / requests if requests else 0.0


class _Section(Mapping[str, Any]):
    """Mapping access to a stats object's documented names (fields and rate properties)."""

    __slots__ = ()
    _names: tuple[str, ...] = ()

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


@dataclass(frozen=True, slots=True, eq=True)
class L1Stats(_Section):
    entries: int
    hits: int
    requests: int
    memory_bytes: int

    _names = ("entries", "hits", "requests", "hit_rate")  # the seed's `l1` section

    @property
    def hit_ratio(self) -> float:
        """Hits per request, 0-1."""
        return _ratio(self.hits, self.requests)

    @property
    def hit_rate(self) -> float:
        """Hits per request in percent, 0-100."""
        return 100.0 * self.hit_ratio


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


@dataclass(frozen=True, slots=True, eq=True)
class CombinedStats(_Section):
    """Both tiers together: the seed's `combined` section."""

    total_entries: int
    hits: int
    misses: int
    requests: int
    memory_usage: int
    loader_calls: int

    _names = ("total_entries", "hits", "misses", "requests", "hit_rate", "hit_ratio", "memory_usage", "loader_calls")

    @property
    def hit_ratio(self) -> float:
        """Requests answered by L1 or L2, 0-1."""
        return _ratio(self.hits, self.requests)

    @property
    def hit_rate(self) -> float:
        """Requests answered by L1 or L2, in percent (0-100)."""
        return 100.0 * self.hit_ratio


@dataclass(frozen=True, slots=True, eq=True)
class CacheStats(Mapping[str, Any]):
    """Figures of one manager since it started; `to_dict()` gives the documented JSON shape.

    Also a read-only mapping of that shape (`stats["combined"]["hit_rate"]`).
    """

    adapter: str
    reason: str
    l1: L1Stats
    l2: L2Stats
    loader_calls: int

    @classmethod
    def of(cls, l1: L1Store, l2: GuardedAdapter, reason: str, backend: dict[str, Any], loader_calls: int) -> CacheStats:
        """A manager's figures now: its L1, its guarded L2 and what the backend itself reported."""
        return cls(
            adapter=l2.name,
            reason=reason,
            l1=L1Stats(entries=len(l1), hits=l1.hits, requests=l1.hits + l1.misses, memory_bytes=l1.size_bytes),
            l2=L2Stats(
                healthy=l2.healthy,
                latency_ms=l2.latency_ms,
                hits=l2.hits,
                misses=l2.misses,
                errors=l2.errors,
                dropped_writes=l2.dropped_writes,
                circuit=l2.breaker.state,
                stats=backend,
            ),
            loader_calls=loader_calls,
        )

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
    def hit_ratio(self) -> float:
        """Requests answered by L1 or L2, 0-1."""
        return _ratio(self.hits, self.requests)

    @property
    def hit_rate(self) -> float:
        """Requests answered by L1 or L2, in percent (0-100)."""
        return 100.0 * self.hit_ratio

    @property
    def combined(self) -> CombinedStats:
        return CombinedStats(
            total_entries=self.l1.entries + int(self.l2.stats.get("entries", 0)),
            hits=self.hits,
            misses=self.misses,
            requests=self.requests,
            memory_usage=self.l1.memory_bytes,
            loader_calls=self.loader_calls,
        )

    def to_dict(self) -> dict[str, Any]:
        l2 = dataclasses.asdict(self.l2)
        return {
            "adapter": self.adapter,
            "reason": self.reason,
            "l1": dict(self.l1),
            "l2": {"healthy": l2.pop("healthy"), "latency_ms": l2.pop("latency_ms"), "stats": l2},
            "combined": dict(self.combined),
        }

    def __getitem__(self, name: str) -> Any:
        return self.to_dict()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(("adapter", "reason", "l1", "l2", "combined"))

    def __len__(self) -> int:
        return 5
