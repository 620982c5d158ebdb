"""A primary of a real Redis Cluster dies under load: callers see no exception, and L2 serves the dead
shard's slots again once its replica is promoted.

Timeline measured (printed with -s): kill -> promotion (the cluster's own failure detection and
election: node timeout, gossip, election delay) -> the manager's writes to that shard succeed again.

The cluster is this test's own (killing a node of the session's shared cluster would change it
for every later test); it is stopped by pid afterwards.
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from cachetier import CacheConfig, create_with_config
from cachetier.adapters.redis_cluster import RedisClusterAdapter
from cachetier.manager import CacheManager
from cluster_servers import HOST, RedisClusterServers

WORKERS = 16
RUN_AFTER_KILL = 8.0  # seconds of load after the kill: node timeout (2 s) + election + margin
RECOVERY_DEADLINE = 20.0


class Load:
    """Bounded mixed load through one manager; counts calls and the exceptions that reached callers."""

    def __init__(self, cache: CacheManager) -> None:
        self.cache = cache
        self.calls = 0
        self.failures: list[BaseException] = []
        self.stop = asyncio.Event()

    async def worker(self, number: int) -> None:
        rng = random.Random(number)
        while not self.stop.is_set():
            key = f"k{rng.randrange(500)}"
            choice = rng.random()
            try:
                if choice < 0.6:
                    await self.cache.get(key, lambda: "loaded", tags=[f"t{rng.randrange(20)}"])
                elif choice < 0.9:
                    await self.cache.set(key, rng.random(), tags=[f"t{rng.randrange(20)}"])
                elif choice < 0.97:
                    await self.cache.delete(key)
                else:
                    await self.cache.invalidate_by_tag(f"t{rng.randrange(20)}")
            except Exception as exc:  # what the promise forbids: counted, then asserted zero
                self.failures.append(exc)
            self.calls += 1
            await asyncio.sleep(0.002)


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_killing_a_primary_under_load_raises_nothing_and_l2_serves_again_after_promotion() -> None:
    with RedisClusterServers() as cluster:
        adapter = RedisClusterAdapter.from_url(cluster.url, socket_timeout=1.0, connect_timeout=0.5)
        config = CacheConfig(namespace="failover", l1_max_ttl=1.0, failure_threshold=5, recovery_timeout=1.0)
        async with create_with_config(config, l2=adapter) as cache:
            victim = cluster.primary_ports()[0]
            await adapter.ping()
            # A key whose slot the victim serves: writes to it show when its shard is back.
            probe = next(
                f"probe{i}"
                for i in range(10_000)
                if adapter.client.get_node_from_key(f"failover:probe{i}").port == victim
            )
            assert await cache.set(probe, 0) is True
            load = Load(cache)
            workers = [asyncio.create_task(load.worker(number)) for number in range(WORKERS)]
            await asyncio.sleep(1.0)
            calls_before = load.calls

            cluster.kill(victim)
            killed_at = time.monotonic()
            recovered_at: float | None = None
            promoted_at: float | None = None
            attempt = 0
            while time.monotonic() - killed_at < RECOVERY_DEADLINE:
                attempt += 1
                if promoted_at is None:
                    primaries = await asyncio.to_thread(cluster.primary_ports)
                    if victim not in primaries and len(primaries) == 3:  # its replica now serves its slots
                        promoted_at = time.monotonic()
                stored = await cache.set(probe, attempt)
                if stored and recovered_at is None:
                    recovered_at = time.monotonic()
                elif not stored:
                    recovered_at = None  # not yet steadily back
                if recovered_at is not None and time.monotonic() - killed_at >= RUN_AFTER_KILL:
                    break
                await asyncio.sleep(0.05)
            load.stop.set()
            await asyncio.gather(*workers)

            stats = await cache.get_stats()
            recovery = None if recovered_at is None else recovered_at - killed_at
            promotion = None if promoted_at is None else promoted_at - killed_at
            print(
                f"\nfailover: {load.calls} calls ({load.calls - calls_before} after the kill at "
                f"{HOST}:{victim}), {len(load.failures)} exceptions to callers, L2 errors absorbed "
                f"{stats.l2.errors}, writes dropped {stats.l2.dropped_writes}, "
                f"replica promoted {promotion and round(promotion, 2)} s after the kill "
                f"(node timeout {cluster.node_timeout_ms / 1000} s), L2 writes to that shard succeed again "
                f"{recovery and round(recovery, 2)} s after the kill"
            )
            assert load.failures == []
            assert recovery is not None, "L2 never served the killed shard's slots again"
            assert victim not in cluster.primary_ports()
            assert await cache.get(probe) == attempt
            assert await cache.is_healthy()

            # The change feed follows the promotion: the new primary is tracked, so another
            # process's write on the promoted shard leaves this process's L1.
            feed = adapter._feeds[0]
            deadline = time.monotonic() + 10
            while not (feed.topology_changes and victim not in {int(name.rsplit(":", 1)[1]) for name in feed.feeds}):
                assert time.monotonic() < deadline, "the change feed did not follow the promotion"
                await asyncio.sleep(0.05)
            assert await cache.set(probe, "mine") is True
            assert cache.get_local(probe) == "mine"
            other = create_with_config(config, l2=RedisClusterAdapter.from_url(cluster.url))
            try:
                await other.set(probe, "from another process")
                deadline = time.monotonic() + 1.0
                while cache.get_local(probe) == "mine":
                    assert time.monotonic() < deadline, "a write on the promoted primary was not reported"
                    await asyncio.sleep(0.005)
                assert await cache.get(probe) == "from another process"
            finally:
                await other.close()
