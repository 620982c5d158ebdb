"""Choosing Redis Cluster (URL, ?cluster=true, config, a client) and obeying explicit Redis settings."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster

from cachetier import CacheConfig, create_cache, create_health_check, create_with_config
from cachetier.errors import ConfigError
from cluster_servers import HOST, RedisClusterServers
from servers import RedisServer


async def _round_trip(config: CacheConfig) -> str:
    async with create_cache(config) as cache:
        await cache.set("k", {"v": 1}, tags=["t"])
        assert await cache.get("k") == {"v": 1}
        assert await cache.invalidate_by_tag("t") == 1
        await cache.clear()
        return cache.adapter_type


async def test_a_redis_cluster_url_selects_the_cluster_adapter(redis_cluster: RedisClusterServers) -> None:
    config = CacheConfig(adapter="redis", redis_url=redis_cluster.url, namespace="sel_cluster_url")
    assert await _round_trip(config) == "redis-cluster"


async def test_cluster_true_in_a_redis_url_selects_the_cluster_adapter(redis_cluster: RedisClusterServers) -> None:
    url = f"redis://{HOST}:{redis_cluster.ports[-1]}/0?cluster=true"
    assert await _round_trip(CacheConfig(adapter="redis", redis_url=url, namespace="sel_cluster_q")) == "redis-cluster"


async def test_redis_cluster_setting_with_a_host_selects_the_cluster_adapter(
    redis_cluster: RedisClusterServers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CACHE_ADAPTER", "redis")
    monkeypatch.setenv("REDIS_HOST", HOST)
    monkeypatch.setenv("REDIS_PORT", str(redis_cluster.ports[2]))
    monkeypatch.setenv("REDIS_CLUSTER", "true")
    assert await _round_trip(CacheConfig.from_env(namespace="sel_cluster_env")) == "redis-cluster"


async def test_a_redis_cluster_client_can_be_given_and_stays_open(redis_cluster: RedisClusterServers) -> None:
    client = RedisCluster(startup_nodes=[ClusterNode(HOST, port) for port in redis_cluster.ports])
    try:
        async with create_with_config(l2=client, namespace="sel_cluster_client") as cache:
            assert cache.adapter_type == "redis-cluster"
            await cache.set("k", "v")
            assert await cache.get("k") == "v"
            await cache.clear()
        assert await client.ping()
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:7000,127.0.0.1:7001/0",  # a guessed cluster URL
        "redis+cluster://127.0.0.1:7000/3",  # a cluster has db 0 only
        "memcached://127.0.0.1:11211",
        "redis://127.0.0.1:6379/zero",
        "redis://127.0.0.1:6379/0?sockettimeout=1",
        "redis://127.0.0.1:port/0",
    ],
)
def test_explicit_redis_with_a_bad_url_raises_config_error_at_construction(url: str) -> None:
    with pytest.raises(ConfigError):
        create_cache(CacheConfig(adapter="redis", redis_url=url))


def test_explicit_redis_cluster_with_a_database_raises_config_error() -> None:
    with pytest.raises(ConfigError):
        create_cache(CacheConfig(adapter="redis", redis_cluster=True, redis_host=HOST, redis_database=2))


async def test_explicit_redis_that_is_down_at_start_is_a_degraded_redis_cache_that_reconnects() -> None:
    server = RedisServer()  # port chosen, not started yet
    try:
        config = CacheConfig(
            adapter="redis", redis_url=server.url, namespace="sel_down", failure_threshold=1, recovery_timeout=0.2
        )
        async with create_cache(config) as cache:
            assert cache.adapter_type == "redis"
            assert "not answering at start" in cache.selection_reason
            health = await create_health_check(cache)()
            assert health["status"] == "degraded"
            server.start()
            deadline = time.monotonic() + 10
            while not await cache.is_healthy():
                assert time.monotonic() < deadline, "the Redis cache did not reconnect"
                await asyncio.sleep(0.2)
            await cache.set("k", "reached redis")
            assert cache.adapter_type == "redis"
            assert await cache.get_stats() is not None
    finally:
        server.close()


async def test_auto_with_a_bad_redis_url_falls_back_and_the_health_check_says_why(tmp_path: object) -> None:
    config = CacheConfig(
        environment="production",
        redis_url="redis://127.0.0.1:7000,127.0.0.1:7001/0",
        database_url=f"sqlite:///{tmp_path}/cache.sqlite3",
        namespace="sel_auto_bad",
    )
    async with create_cache(config) as cache:
        assert cache.adapter_type == "sqlite"
        health = await create_health_check(cache)()
        assert health["status"] == "degraded"
        assert "redis+cluster://" in health["reason"]
