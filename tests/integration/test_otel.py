"""OpenTelemetry: metrics, L2 spans and loader spans, collected with the SDK's in-memory reader and exporter."""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from cachetier import CacheConfig, L2Adapter, create_for_testing, create_with_config
from cachetier.integrations.instrumented import instrument
from cachetier.integrations.otel import l2_tracer, observe_cache, traced_loader
from cachetier.sync import SyncCache


@pytest.fixture
def meter() -> Iterator[tuple[MeterProvider, InMemoryMetricReader]]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider, reader
    provider.shutdown()


@pytest.fixture
def tracer() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture(params=["sqlite", "redis"])
def config(request: pytest.FixtureRequest) -> CacheConfig:
    namespace = f"otel_{uuid.uuid4().hex[:10]}"
    if request.param == "redis":
        return CacheConfig(adapter="redis", redis_url=request.getfixturevalue("redis_url"), namespace=namespace)
    return CacheConfig(adapter="sqlite", namespace=namespace)


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def value(found: dict[str, list[Any]], name: str, **attributes: str) -> float:
    (point,) = [p for p in found[name] if all(p.attributes.get(k) == v for k, v in attributes.items())]
    return float(point.value)


async def test_cache_figures_are_observed_at_collection(config: CacheConfig, meter: Any) -> None:
    provider, reader = meter
    cache = create_for_testing(config)
    observation = observe_cache(cache, meter_provider=provider)
    try:
        await observation.refresh()  # learns the loop
        await cache.set("a", 1)
        assert await cache.get("a") == 1
        assert await cache.get("b", lambda: 2) == 2
        # A periodic reader collects on its own thread: the figures come through the cache's loop.
        found = await asyncio.to_thread(points, reader)
        stats = await cache.get_stats()
    finally:
        await cache.close()
    ns = {"cachetier.namespace": cache.config.namespace}
    assert value(found, "cachetier.requests", **ns, **{"cachetier.tier": "l1", "cachetier.result": "hit"}) == 1
    l1_misses = stats.l1.requests - stats.l1.hits
    assert value(found, "cachetier.requests", **{"cachetier.tier": "l1", "cachetier.result": "miss"}) == l1_misses
    assert value(found, "cachetier.requests", **{"cachetier.tier": "l2", "cachetier.result": "miss"}) >= 1
    assert value(found, "cachetier.loader.runs") == 1
    assert value(found, "cachetier.l2.errors") == 0
    assert value(found, "cachetier.l2.dropped_writes") == 0
    assert value(found, "cachetier.circuit_breaker.state", **{"cachetier.state": "closed"}) == 1
    assert value(found, "cachetier.circuit_breaker.state", **{"cachetier.state": "open"}) == 0
    assert value(found, "cachetier.l2.up") == 1
    assert value(found, "cachetier.l1.entries") == stats.l1.entries >= 2
    assert value(found, "cachetier.l1.size") == stats.l1.memory_bytes > 0


def test_sync_cache_figures_are_read_at_each_collection(meter: Any) -> None:
    provider, reader = meter
    with SyncCache(create_for_testing(CacheConfig(adapter="sqlite"))) as cache:
        observe_cache(cache, meter_provider=provider)
        cache.set("a", 1)
        cache.get("a")
        found = points(reader)
    assert value(found, "cachetier.requests", **{"cachetier.tier": "l1", "cachetier.result": "hit"}) == 1


def adapter_for(config: CacheConfig, tmp_path: pathlib.Path) -> L2Adapter:
    if config.adapter == "redis":
        from cachetier.adapters.redis import RedisAdapter

        return RedisAdapter.from_config(config)
    from cachetier.adapters.sqlite import SQLiteAdapter

    return SQLiteAdapter(tmp_path / "traced.sqlite3")


async def test_each_l2_round_trip_is_a_client_span_with_db_semantic_conventions(
    config: CacheConfig, tracer: Any, meter: Any, tmp_path: pathlib.Path
) -> None:
    tracer_provider, exporter = tracer
    meter_provider, reader = meter
    observer = l2_tracer(tracer_provider=tracer_provider, meter_provider=meter_provider)
    cache = create_with_config(
        config.replace(l1_enabled=False), adapter=instrument(adapter_for(config, tmp_path), observer)
    )
    try:
        await cache.set("a", 1, tags=["t"])
        assert await cache.get("a") == 1
        assert await cache.mget(["a", "b"]) == {"a": 1}
        assert await cache.invalidate_by_tag("t") == 1
    finally:
        await cache.clear()
        await cache.close()
    system = "redis" if config.adapter == "redis" else "sqlite"
    spans = exporter.get_finished_spans()
    operations = [span.attributes["db.operation.name"] for span in spans]
    assert {"mget", "invalidate_tags", "clear"} <= set(operations)
    assert {"get", "get_or_lease"} & set(operations)
    assert {"set", "set_leased"} & set(operations)
    for span in spans:
        assert span.kind is SpanKind.CLIENT
        assert span.name == span.attributes["db.operation.name"]
        assert span.attributes["db.system"] == system
        assert span.status.status_code is not StatusCode.ERROR
    durations = points(reader)["db.client.operation.duration"]
    assert {p.attributes["db.operation.name"] for p in durations} == set(operations)
    assert sum(p.count for p in durations) == len(spans)


async def test_a_failing_l2_call_gives_an_error_span_and_error_type(tracer: Any, meter: Any) -> None:
    from cachetier.adapters.redis import RedisAdapter

    tracer_provider, exporter = tracer
    meter_provider, reader = meter
    observer = l2_tracer(tracer_provider=tracer_provider, meter_provider=meter_provider)
    config = CacheConfig(redis_url="redis://127.0.0.1:1/0", l1_enabled=False)
    cache = create_with_config(config, adapter=instrument(RedisAdapter.from_config(config), observer))
    try:
        assert await cache.get("a") is None  # the backend fault is caught by the manager, as without tracing
    finally:
        await cache.close()
    failed = [span for span in exporter.get_finished_spans() if span.status.status_code is StatusCode.ERROR]
    assert failed
    assert failed[0].events[0].name == "exception"
    errors = [p for p in points(reader)["db.client.operation.duration"] if "error.type" in p.attributes]
    assert errors


async def test_traced_loader_gives_one_span_per_loader_run(tracer: Any) -> None:
    provider, exporter = tracer
    cache = create_for_testing(CacheConfig(adapter="sqlite"))

    async def load_async() -> int:
        return 1

    try:
        for _ in range(3):
            assert await cache.get("a", traced_loader(load_async, "a", tracer_provider=provider)) == 1
            assert await cache.get("b", traced_loader(lambda: 2, "b", tracer_provider=provider)) == 2
            assert await cache.get("c", traced_loader(lambda: load_async(), "c", tracer_provider=provider)) == 1
    finally:
        await cache.close()
    spans = exporter.get_finished_spans()
    assert [span.name for span in spans] == ["cachetier.load"] * 3  # misses only: later calls hit
    assert sorted(span.attributes["cachetier.key"] for span in spans) == ["a", "b", "c"]


def test_import_without_opentelemetry_names_the_extra(tmp_path: pathlib.Path) -> None:
    script = (
        "import sys\nsys.modules['opentelemetry'] = None\n"
        "try:\n    import cachetier.integrations.otel\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MissingDependencyError")
    assert "pip install 'cachetier[otel]'" in result.stdout
