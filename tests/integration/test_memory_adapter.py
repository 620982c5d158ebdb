from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cachetier.adapters.memory import MemoryAdapter
from cachetier.protocols import L2Adapter
from cachetier.testing import L2ContractSuite


class TestMemoryAdapterContract(L2ContractSuite):
    @pytest.fixture
    async def adapter(self) -> AsyncIterator[L2Adapter]:
        adapter = MemoryAdapter()
        yield adapter
        await adapter.close()
