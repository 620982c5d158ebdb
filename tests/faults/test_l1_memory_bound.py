"""L1 holds no more than its bounds, measured with tracemalloc (issue 10).

Before the fix a dead entry kept its value until its tombstone left the FIFO,
which took up to 2 x `max_memory_entries` tombstones: setting, reading and
tag-invalidating a 1 MiB value 300 times under `max_memory_bytes=10 MiB` left
0 live entries and 300 MiB held.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable, Iterator

import pytest

from cachetier import create_with_config
from cachetier.adapters.memory import MemoryAdapter
from cachetier.l1 import L1Store

MIB = 2**20
BOUND = 10 * MIB
ROUNDS = 300
SLACK = 2 * MIB  # per-entry overhead, tombstones and the interpreter's own allocations


@pytest.fixture
def traced() -> Iterator[Callable[[], int]]:
    """A function returning the bytes allocated since the fixture started and still held."""
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]

    def held() -> int:
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - baseline

    try:
        yield held
    finally:
        tracemalloc.stop()


def _page(i: int) -> str:
    return str(i % 10) * MIB  # a fresh 1 MiB object each time


async def test_tag_invalidated_pages_do_not_stay_in_memory(traced: Callable[[], int]) -> None:
    async with create_with_config(adapter=MemoryAdapter(), namespace="l1bound", max_memory_bytes=BOUND) as cache:
        for i in range(ROUNDS):
            await cache.set(f"page{i}", _page(i), tags=["pages"])
            assert await cache.get(f"page{i}") is not None
            await cache.invalidate_by_tag("pages")
        stats = await cache.get_stats()
        held = traced()
    assert stats.l1.entries == 0
    assert held < SLACK, f"{held / MIB:.1f} MiB held with no live entry"


@pytest.mark.parametrize("kill", ["delete", "invalidate", "expire", "evict"])
def test_memory_held_by_l1_stays_near_its_byte_bound(kill: str, traced: Callable[[], int]) -> None:
    store = L1Store(10_000, max_bytes=BOUND)
    peak = 0
    for i in range(ROUNDS):
        key = f"page{i}"
        expires = time.time() + (-1 if kill == "expire" else 60)
        store.set(key, _page(i), expires, ("pages",), size=MIB)
        if kill == "delete":
            store.delete(key)
        elif kill == "invalidate":
            store.invalidate_tags(["pages"])
        elif kill == "expire":
            assert store.get(key) is not None  # the read that finds it expired kills it
        if i % 50 == 0:
            peak = max(peak, traced())
    peak = max(peak, traced())
    assert store.size_bytes <= BOUND
    assert peak < BOUND + SLACK, f"{peak / MIB:.1f} MiB held for a {BOUND // MIB} MiB bound ({kill})"
