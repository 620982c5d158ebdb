"""RedisClusterAdapter on a real 6-node cluster (3 primaries, 3 replicas) started for the session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from cachetier.adapters.redis_cluster import RedisClusterAdapter
from cachetier.protocols import L2Adapter
from cachetier.testing import L2ContractSuite
from cluster_servers import RedisClusterServers


@pytest.fixture
def prefix() -> str:
    return f"cluster-test-{uuid.uuid4().hex[:12]}:"


class TestRedisClusterAdapterContract(L2ContractSuite):
    @pytest.fixture
    async def adapter(self, redis_cluster: RedisClusterServers, prefix: str) -> AsyncIterator[L2Adapter]:
        adapter = RedisClusterAdapter.from_url(redis_cluster.url)
        yield adapter
        await adapter.clear(prefix)
        await adapter.close()
