from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from cachetier.adapters.memory import MemoryAdapter
from cachetier.protocols import L2Adapter, L2Entry
from cachetier.testing import L2ContractSuite


class TestMemoryAdapterContract(L2ContractSuite):
    @pytest.fixture
    async def adapter(self) -> AsyncIterator[L2Adapter]:
        adapter = MemoryAdapter()
        yield adapter
        await adapter.close()


async def test_clear_and_stats_count_only_live_entries() -> None:
    adapter = MemoryAdapter()
    await adapter.set("p:gone", b"1", 0.01, ("t",))
    await adapter.set("p:live", b"1", 60)
    await asyncio.sleep(0.02)
    assert (await adapter.stats())["entries"] == 1
    assert await adapter.clear("p:") == 1


async def test_expired_entries_never_read_again_do_not_accumulate() -> None:
    adapter = MemoryAdapter()
    for round_ in range(4):
        await adapter.mset([L2Entry(f"p:{round_}:{n}", b"v", 0.01, ("t",)) for n in range(5000)])
        await asyncio.sleep(0.02)
    await adapter.set("p:last", b"v", 60)
    # Written once and never read: only a sweep can reclaim them.
    assert len(adapter._values) <= 10_001
    assert len(adapter._tag_keys.get("t", ())) <= 10_000
