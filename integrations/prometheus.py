"""Prometheus metrics for a cache: a collector that reads `get_stats()` at scrape time.

Needs the `prometheus` extra (`pip install 'cachetier[prometheus]'`). One line
registers a manager's figures with prometheus_client's default registry::

    collector = CacheCollector(cache)
    routes.append(Route("/metrics", metrics_app(collector)))  # ASGI; reads fresh stats per scrape

`get_stats()` is a coroutine (it asks the backend for its own figures), while a
collector's `collect()` is called synchronously. `metrics_app` awaits
`refresh()` before each scrape; a scrape from another thread (e.g.
`prometheus_client.start_http_server`) asks the cache's loop and waits up to
`timeout` seconds; otherwise the figures of the last refresh are served. A
`SyncCache` is always read directly. Nothing here touches the cache's hot path.

`HttpCacheMetrics` wraps an ASGI app (outside `CacheMiddleware`) and counts
responses by their `X-Cache` value.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from cachetier import CacheManager, CacheStats
from cachetier.drivers import missing
from cachetier.integrations.instrumented import Observer
from cachetier.integrations.stats_reader import StatsReader
from cachetier.sync import SyncCache

try:
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:
    raise missing("prometheus_client", "prometheus", "cachetier.integrations.prometheus") from exc

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BREAKER_STATES = ("closed", "open", "half_open")


class CacheCollector(Collector):
    """Exports one cache's figures; registers itself in `registry` (pass `None` to register it yourself).

    Metrics (all labelled `namespace`): `cachetier_requests_total{tier,result}`
    (l1/l2 hit and miss), `cachetier_loader_runs_total`, `cachetier_l2_errors_total`,
    `cachetier_l2_dropped_writes_total`, `cachetier_circuit_breaker_state{state}`,
    `cachetier_l2_up`, `cachetier_l2_ping_latency_seconds`, `cachetier_l1_entries`,
    `cachetier_l1_size_bytes`, `cachetier_l2_backend_value{stat}` (the backend's own
    numeric figures) and `cachetier_backend_info{adapter}`.
    """

    def __init__(
        self,
        cache: CacheManager | SyncCache,
        *,
        registry: CollectorRegistry | None = REGISTRY,
        timeout: float = 2.0,
    ) -> None:
        self.cache = cache
        self._reader = StatsReader(cache, timeout=timeout)
        self.namespace = self._reader.namespace
        self.registry = registry
        if registry is not None:
            registry.register(self)

    async def refresh(self) -> CacheStats:
        """Read the stats now (on the cache's loop); `collect()` serves them until the next refresh."""
        return await self._reader.refresh()

    def describe(self) -> list[Any]:
        """No names up front, so collectors of several caches (told apart by `namespace`) share a registry."""
        return []

    def collect(self) -> Iterator[Any]:
        stats = self._reader.read()
        if stats is None:
            return
        ns = [self.namespace]
        requests = CounterMetricFamily(
            "cachetier_requests", "Cache lookups by tier and result.", labels=["namespace", "tier", "result"]
        )
        requests.add_metric([*ns, "l1", "hit"], stats.l1.hits)
        requests.add_metric([*ns, "l1", "miss"], stats.l1.requests - stats.l1.hits)
        requests.add_metric([*ns, "l2", "hit"], stats.l2.hits)
        requests.add_metric([*ns, "l2", "miss"], stats.l2.misses)
        yield requests
        yield _counter("cachetier_loader_runs", "Loader calls made on misses.", ns, stats.loader_calls)
        yield _counter("cachetier_l2_errors", "L2 backend faults (caught; the cache degraded).", ns, stats.l2.errors)
        yield _counter(
            "cachetier_l2_dropped_writes",
            "Writes kept in L1 only: L2 failed or its circuit was open.",
            ns,
            stats.l2.dropped_writes,
        )
        breaker = GaugeMetricFamily(
            "cachetier_circuit_breaker_state",
            "1 for the L2 circuit breaker's current state.",
            labels=["namespace", "state"],
        )
        for state in BREAKER_STATES:
            breaker.add_metric([*ns, state], 1.0 if stats.l2.circuit == state else 0.0)
        yield breaker
        yield _gauge("cachetier_l2_up", "1 when L2 answered its last call or ping.", ns, float(stats.l2.healthy))
        if stats.l2.latency_ms is not None:
            yield _gauge(
                "cachetier_l2_ping_latency_seconds", "Round trip of the last L2 ping.", ns, stats.l2.latency_ms / 1000
            )
        yield _gauge("cachetier_l1_entries", "Entries in the in-process L1.", ns, stats.l1.entries)
        yield _gauge("cachetier_l1_size_bytes", "Estimated size of the L1 entries.", ns, stats.l1.memory_bytes)
        backend = GaugeMetricFamily(
            "cachetier_l2_backend_value",
            "The backend's own figures (memory, keys, pool).",
            labels=["namespace", "stat"],
        )
        for name, value in sorted(stats.l2.stats.items()):
            if isinstance(value, int | float) and not isinstance(value, bool):
                backend.add_metric([*ns, name], float(value))
        yield backend
        info = InfoMetricFamily("cachetier_backend", "The L2 backend in use.", labels=["namespace"])
        info.add_metric(ns, {"adapter": stats.adapter})
        yield info


def _counter(name: str, documentation: str, labels: list[str], value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["namespace"])
    family.add_metric(labels, value)
    return family


def _gauge(name: str, documentation: str, labels: list[str], value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["namespace"])
    family.add_metric(labels, value)
    return family


class MetricsApp:
    """ASGI app serving a registry in the text format; each scrape first awaits `refresh()` on its collectors.

    An object rather than a function, so Starlette's `Route("/metrics", app)` treats it as an ASGI app.
    """

    def __init__(self, collectors: tuple[CacheCollector, ...], registry: CollectorRegistry) -> None:
        self.collectors = collectors
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        for collector in self.collectors:
            await collector.refresh()
        body = generate_latest(self.registry)
        headers = [(b"content-type", CONTENT_TYPE_LATEST.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def metrics_app(*collectors: CacheCollector, registry: CollectorRegistry | None = None) -> MetricsApp:
    """The /metrics app for `collectors`: serves `registry`, else theirs, else prometheus_client's default."""
    target = registry or next((c.registry for c in collectors if c.registry is not None), REGISTRY)
    return MetricsApp(collectors, target)


class HttpCacheMetrics:
    """ASGI middleware counting responses by `X-Cache` (`cachetier_http_responses_total{x_cache}`).

    Put it outside `CacheMiddleware`; responses without the header count as `NONE`.
    """

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry = REGISTRY) -> None:
        self.app = app
        self.responses = _http_responses(registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                value = "NONE"
                for name, raw in message.get("headers", ()):
                    if name.lower() == b"x-cache":
                        value = raw.decode("latin-1").upper()
                        break
                self.responses.labels(value).inc()
            await send(message)

        await self.app(scope, receive, counting_send)


_HTTP_COUNTERS: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()


def _http_responses(registry: CollectorRegistry) -> Counter:
    """One counter per registry, shared by every `HttpCacheMetrics` (apps built per test, sub-apps)."""
    counter = _HTTP_COUNTERS.get(registry)
    if counter is None:
        counter = Counter(
            "cachetier_http_responses",
            "HTTP responses by the X-Cache value the cache middleware set.",
            ["x_cache"],
            registry=registry,
        )
        _HTTP_COUNTERS[registry] = counter
    return counter


_L2_HISTOGRAMS: weakref.WeakKeyDictionary[CollectorRegistry, Histogram] = weakref.WeakKeyDictionary()


def l2_timer(registry: CollectorRegistry = REGISTRY) -> Observer:
    """An observer for `cachetier.integrations.instrumented.instrument`: times each L2 call.

    Feeds `cachetier_l2_operation_duration_seconds{operation,system}`, a histogram
    (failed calls included), one per registry::

        adapter = instrument(RedisAdapter.from_config(config), l2_timer())
        cache = create_with_config(config, adapter=adapter)
    """
    histogram = _L2_HISTOGRAMS.get(registry)
    if histogram is None:
        histogram = Histogram(
            "cachetier_l2_operation_duration_seconds",
            "Duration of L2 backend calls by adapter operation.",
            ["operation", "system"],
            registry=registry,
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
        )
        _L2_HISTOGRAMS[registry] = histogram
    timed = histogram

    def observe(operation: str, system: str) -> contextlib.AbstractContextManager[object]:
        return timed.labels(operation, system).time()

    return observe
