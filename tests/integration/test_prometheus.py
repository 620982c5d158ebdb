"""Prometheus: a real Starlette /metrics endpoint scraped over ASGI and parsed with prometheus_client's parser."""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from cachetier import CacheConfig, CacheManager, create_for_testing
from cachetier.integrations.asgi import CacheMiddleware
from cachetier.integrations.prometheus import CacheCollector, HttpCacheMetrics, metrics_app
from cachetier.sync import SyncCache

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def build_app(cache: CacheManager, registry: CollectorRegistry) -> Starlette:
    collector = CacheCollector(cache, registry=registry)

    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse("page", headers={"Cache-Control": "max-age=60"})

    return Starlette(
        routes=[Route("/page", page), Route("/metrics", metrics_app(collector))],
        middleware=[Middleware(HttpCacheMetrics, registry=registry), Middleware(CacheMiddleware, cache=cache)],
    )


@pytest.fixture(params=["sqlite", "redis"])
def config(request: pytest.FixtureRequest) -> CacheConfig:
    if request.param == "redis":
        return CacheConfig(adapter="redis", redis_url=request.getfixturevalue("redis_url"))
    return CacheConfig(adapter="sqlite")


async def test_metrics_endpoint_exports_tiers_loader_breaker_l1_and_x_cache(config: CacheConfig) -> None:
    cache = create_for_testing(config)
    registry = CollectorRegistry()
    app = build_app(cache, registry)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client:
            await cache.set("a", 1)
            assert await cache.get("a") == 1  # L1 hit
            assert await cache.get("b", lambda: 2) == 2  # L1 and L2 miss, loader run
            assert await cache.get("absent") is None  # L1 and L2 miss
            assert [(await client.get("/page")).headers["x-cache"] for _ in range(3)] == ["MISS", "HIT", "HIT"]

            response = await client.get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain")
            samples = parse(response.text)
            stats = await cache.get_stats()
    finally:
        await cache.close()

    ns = cache.config.namespace
    assert value(samples, "cachetier_requests_total", namespace=ns, tier="l1", result="hit") == stats.l1.hits >= 1
    l1_misses = stats.l1.requests - stats.l1.hits
    assert value(samples, "cachetier_requests_total", namespace=ns, tier="l1", result="miss") == l1_misses >= 2
    assert value(samples, "cachetier_requests_total", namespace=ns, tier="l2", result="miss") == stats.l2.misses >= 2
    assert value(samples, "cachetier_requests_total", namespace=ns, tier="l2", result="hit") == stats.l2.hits
    assert value(samples, "cachetier_loader_runs_total", namespace=ns) == stats.loader_calls >= 1
    assert value(samples, "cachetier_l2_errors_total", namespace=ns) == 0
    assert value(samples, "cachetier_l2_dropped_writes_total", namespace=ns) == 0
    assert value(samples, "cachetier_circuit_breaker_state", namespace=ns, state="closed") == 1
    assert value(samples, "cachetier_circuit_breaker_state", namespace=ns, state="open") == 0
    assert value(samples, "cachetier_l2_up", namespace=ns) == 1
    assert value(samples, "cachetier_l1_entries", namespace=ns) == stats.l1.entries >= 2
    assert value(samples, "cachetier_l1_size_bytes", namespace=ns) == stats.l1.memory_bytes > 0
    adapter = config.adapter
    assert value(samples, "cachetier_backend_info", namespace=ns, adapter=adapter) == 1
    assert value(samples, "cachetier_http_responses_total", x_cache="MISS") == 1
    assert value(samples, "cachetier_http_responses_total", x_cache="HIT") == 2


async def test_l2_errors_dropped_writes_and_open_breaker_are_exported_when_the_backend_is_down() -> None:
    # Nothing listens on port 1; CACHE_ADAPTER=redis falls back, so build the Redis adapter directly.
    from cachetier import create_with_config
    from cachetier.adapters.redis import RedisAdapter

    config = CacheConfig(redis_url="redis://127.0.0.1:1/0", failure_threshold=2, recovery_timeout=60)
    cache = create_with_config(config, adapter=RedisAdapter.from_config(config))
    registry = CollectorRegistry()
    collector = CacheCollector(cache, registry=registry)
    try:
        for n in range(3):
            await cache.set(f"k{n}", n)
        await collector.refresh()
        samples = parse(generate_latest(registry).decode())
    finally:
        await cache.close()
    ns = config.namespace
    assert value(samples, "cachetier_l2_errors_total", namespace=ns) >= 2
    assert value(samples, "cachetier_l2_dropped_writes_total", namespace=ns) >= 1
    assert value(samples, "cachetier_circuit_breaker_state", namespace=ns, state="open") == 1
    assert value(samples, "cachetier_l2_up", namespace=ns) == 0


async def test_scrape_from_another_thread_reads_current_stats_through_the_caches_loop() -> None:
    cache = create_for_testing(CacheConfig(adapter="sqlite"))
    registry = CollectorRegistry()
    collector = CacheCollector(cache, registry=registry)
    try:
        await collector.refresh()  # learns the loop
        await cache.set("a", 1)
        await cache.get("a")
        # prometheus_client's own HTTP server scrapes from its thread: collect() asks the loop and waits.
        text = (await asyncio.to_thread(generate_latest, registry)).decode()
    finally:
        await cache.close()
    samples = parse(text)
    assert value(samples, "cachetier_requests_total", namespace=cache.config.namespace, tier="l1", result="hit") == 1


def test_sync_cache_is_read_at_each_scrape() -> None:
    with SyncCache(create_for_testing(CacheConfig(adapter="sqlite"))) as cache:
        registry = CollectorRegistry()
        CacheCollector(cache, registry=registry)
        cache.set("a", 1)
        cache.get("a")
        first = parse(generate_latest(registry).decode())
        cache.get("a")
        second = parse(generate_latest(registry).decode())
        ns = cache.manager.config.namespace
    labels: dict[str, Any] = {"namespace": ns, "tier": "l1", "result": "hit"}
    assert value(first, "cachetier_requests_total", **labels) == 1
    assert value(second, "cachetier_requests_total", **labels) == 2


def test_import_without_prometheus_client_names_the_extra(tmp_path: pathlib.Path) -> None:
    script = (
        "import sys\nsys.modules['prometheus_client'] = None\n"
        "try:\n    import cachetier.integrations.prometheus\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MissingDependencyError")
    assert "pip install 'cachetier[prometheus]'" in result.stdout
