"""Prometheus: a real Starlette /metrics endpoint scraped over ASGI and parsed with prometheus_client's parser."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import subprocess
import sys
import uuid
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

from cachetier import CacheConfig, CacheManager, L2Adapter, LeasingAdapter, create_for_testing, create_with_config
from cachetier.integrations.asgi import CacheMiddleware
from cachetier.integrations.instrumented import Observer, instrument
from cachetier.integrations.prometheus import CacheCollector, HttpCacheMetrics, l2_timer, metrics_app
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


def instrumented_adapter(config: CacheConfig, observer: Observer, tmp_path: pathlib.Path) -> L2Adapter:
    if config.adapter == "redis":
        from cachetier.adapters.redis import RedisAdapter

        return instrument(RedisAdapter.from_config(config), observer)
    from cachetier.adapters.sqlite import SQLiteAdapter

    return instrument(SQLiteAdapter(tmp_path / "timed.sqlite3"), observer)


async def test_l2_timer_fills_a_histogram_per_operation_and_system(config: CacheConfig, tmp_path: pathlib.Path) -> None:
    registry = CollectorRegistry()
    config = config.replace(namespace=f"timed_{uuid.uuid4().hex[:10]}", l1_enabled=False)
    cache = create_with_config(config, adapter=instrumented_adapter(config, l2_timer(registry), tmp_path))
    try:
        await cache.set("a", 1, tags=["t"])
        for _ in range(3):
            assert await cache.get("a") == 1
        assert await cache.mget(["a", "b"]) == {"a": 1}
        assert await cache.invalidate_by_tag("t") == 1
        assert cache.adapter_type == config.adapter
    finally:
        await cache.clear()
        await cache.close()
    samples = parse(generate_latest(registry).decode())
    system = "redis" if config.adapter == "redis" else "sqlite"
    counts = {
        dict(labels)["operation"]: count
        for (name, labels), count in samples.items()
        if name == "cachetier_l2_operation_duration_seconds_count" and dict(labels)["system"] == system
    }
    # A read is a plain get, or a get that takes a lease (leasing adapters); writes likewise.
    assert counts.get("get", 0) + counts.get("get_or_lease", 0) >= 3
    assert counts.get("set", 0) + counts.get("set_leased", 0) >= 1
    assert counts["mget"] >= 1
    assert counts["invalidate_tags"] == 1
    total = samples[("cachetier_l2_operation_duration_seconds_sum", (("operation", "mget"), ("system", system)))]
    assert 0 < total < 10


async def test_instrumented_adapter_keeps_what_the_wrapped_adapter_can_do(
    redis_url: str, tmp_path: pathlib.Path
) -> None:
    from cachetier.adapters.redis import RedisAdapter
    from cachetier.adapters.sqlite import SQLiteAdapter

    def nothing(operation: str, system: str) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()

    for inner in (RedisAdapter.from_config(CacheConfig(redis_url=redis_url)), SQLiteAdapter(tmp_path / "c.sqlite3")):
        wrapped = instrument(inner, nothing)
        try:
            assert isinstance(wrapped, LeasingAdapter) == isinstance(inner, LeasingAdapter)
            assert hasattr(wrapped, "subscribe_invalidations") == hasattr(inner, "subscribe_invalidations")
            assert wrapped.name == inner.name
        finally:
            await wrapped.close()
