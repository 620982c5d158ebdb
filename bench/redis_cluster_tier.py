"""`python -m bench.redis_cluster_tier [--scale S]`: Redis Cluster (3 primaries, 3 replicas) against one Redis node.

Both are throwaway servers started from the installed ``redis-server`` on
loopback (the helpers in ``tests/``), so neither shares the machine's Redis.
Rows: the mixed 64-task workload (90% get / 10% set, cachetier with
`l1_enabled=False`, so every read is an L2 hit) and raw redis-py clients for
reference; the time of a tag invalidation of 10,000 keys spread over the
cluster (three round trips whatever the size: clock, pops, per-slot purges).
All nodes share this machine's CPUs, so the cluster shows its per-call cost,
not its capacity. Writes `bench/results/redis_cluster.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from bench._measure import Row, Table, concurrent, timed_with_setup
from bench.redis_tier import TTL, mixed, value
from cachetier import CacheConfig, CacheManager, create_with_config
from cachetier.adapters.redis import RedisAdapter
from cachetier.adapters.redis_cluster import RedisClusterAdapter
from cachetier.codecs import JsonCodec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from cluster_servers import HOST, RedisClusterServers  # the test helpers start the servers
from servers import RedisServer

RESULTS = Path(__file__).parent / "results" / "redis_cluster.md"
CODEC = JsonCodec()
INVALIDATED = 10_000


def _manager(adapter: Any) -> CacheManager:
    return create_with_config(CacheConfig(namespace="bench", l1_enabled=False), l2=adapter)


async def _mixed_rows(single_url: str, cluster: RedisClusterServers, ops_per_task: int) -> list[Row]:
    raw = Redis.from_url(single_url, max_connections=64)
    raw_cluster = RedisCluster(startup_nodes=[ClusterNode(HOST, port) for port in cluster.ports])
    await raw_cluster.initialize()
    one = _manager(RedisAdapter.from_url(single_url))
    many = _manager(RedisClusterAdapter.from_url(cluster.url))
    try:

        def raw_ops(client: Any) -> Any:
            async def get(key: str) -> Any:
                data = await client.get(f"raw:{key}")
                return None if data is None else CODEC.decode(data)

            return mixed(get, lambda k, v: client.set(f"raw:{k}", CODEC.encode(v), px=TTL * 1000))

        contenders = {
            "raw redis.asyncio, one node": raw_ops(raw),
            "raw RedisCluster, 3 primaries": raw_ops(raw_cluster),
            "cachetier, one node (L1 off)": mixed(one.get, lambda k, v: one.set(k, v, ttl=TTL)),
            "cachetier, 3-primary cluster (L1 off)": mixed(many.get, lambda k, v: many.set(k, v, ttl=TTL)),
        }
        return await concurrent("64 tasks, 90% get / 10% set", contenders, tasks=64, ops_per_task=ops_per_task)
    finally:
        await one.close()
        await many.close()
        await raw.aclose()
        await raw_cluster.aclose()


async def _invalidate_rows(single_url: str, cluster: RedisClusterServers, reps: int) -> list[Row]:
    one = _manager(RedisAdapter.from_url(single_url))
    many = _manager(RedisClusterAdapter.from_url(cluster.url))
    items = {f"inv{i}": value(i) for i in range(INVALIDATED)}
    try:

        def setup(cache: CacheManager) -> Any:
            async def fill() -> None:
                for start in range(0, INVALIDATED, 1000):
                    chunk = dict(list(items.items())[start : start + 1000])
                    await cache.mset(chunk, ttl=TTL, tags=["inv"])

            return fill

        return await timed_with_setup(
            f"invalidate a tag of {INVALIDATED:,} keys",
            {
                "cachetier, one node": (setup(one), lambda: one.invalidate_by_tag("inv")),
                "cachetier, 3-primary cluster": (setup(many), lambda: many.invalidate_by_tag("inv")),
            },
            reps,
        )
    finally:
        await one.close()
        await many.close()


async def main(scale: float) -> str:
    with RedisServer() as single, RedisClusterServers() as cluster:
        table = Table("Redis Cluster vs one Redis node", __doc__.split("\n\n", 1)[1].strip())
        table.rows = await _mixed_rows(single.url, cluster, ops_per_task=max(20, int(300 * scale)))
        table.rows += await _invalidate_rows(single.url, cluster, reps=max(3, int(5 * scale)))
    return table.markdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scale", type=float, default=1.0)
    text = asyncio.run(main(parser.parse_args().scale))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(text)
    print(text)
