"""OpenTelemetry: a cache's figures as OTel metrics, and spans for L2 calls and loader runs.

Needs the `otel` extra (`opentelemetry-api`; an SDK or a distro supplies the
exporters). Nothing in the core imports this module, so with it unused (or not
installed) there is no cost. Three opt-in pieces, each reading only the public API:

- `observe_cache(cache)`: observable instruments read at collection time
  (`cachetier.requests{tier,result}`, `cachetier.loader.runs`, `cachetier.l2.errors`,
  `cachetier.l2.dropped_writes`, `cachetier.circuit_breaker.state{state}`,
  `cachetier.l2.up`, `cachetier.l1.entries`, `cachetier.l1.size`).
- `l2_tracer()`: an observer for `cachetier.integrations.instrumented.instrument`
  giving a CLIENT span per L2 round trip, with the database-client semantic
  conventions (`db.system` redis/postgresql/sqlite, `db.operation.name`), and the
  `db.client.operation.duration` histogram.
- `traced_loader(loader, key)`: a span per loader run (a miss that loads).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from cachetier import CacheManager, CacheStats
from cachetier.drivers import missing
from cachetier.integrations.instrumented import Observer
from cachetier.integrations.stats_reader import StatsReader
from cachetier.sync import SyncCache

try:
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.trace import SpanKind, TracerProvider
except ImportError as exc:
    raise missing("opentelemetry", "otel", "cachetier.integrations.otel") from exc

SCOPE = "cachetier"
BREAKER_STATES = ("closed", "open", "half_open")
# A collection calls every instrument's callback in turn; they share one get_stats() within this many seconds.
SHARED_READ_SECONDS = 0.25


class CacheObservation:
    """The instruments `observe_cache` registered; `refresh()` serves collections made on the cache's loop."""

    def __init__(self, cache: CacheManager | SyncCache, meter_provider: MeterProvider | None, timeout: float) -> None:
        self._reader = StatsReader(cache, timeout=timeout)
        self._stats: CacheStats | None = None
        self._read_at = float("-inf")
        self.namespace = self._reader.namespace
        meter = metrics.get_meter(SCOPE, meter_provider=meter_provider)
        counters = {
            "cachetier.requests": ("Cache lookups by tier and result.", "{request}", self._requests),
            "cachetier.loader.runs": ("Loader calls made on misses.", "{call}", self._loader_runs),
            "cachetier.l2.errors": ("L2 backend faults (caught; the cache degraded).", "{error}", self._errors),
            "cachetier.l2.dropped_writes": ("Writes kept in L1 only.", "{write}", self._dropped),
        }
        for name, (description, unit, callback) in counters.items():
            meter.create_observable_counter(name, callbacks=[callback], unit=unit, description=description)
        gauges = {
            "cachetier.circuit_breaker.state": ("1 for the breaker's current state.", "1", self._breaker),
            "cachetier.l2.up": ("1 when L2 answered its last call or ping.", "1", self._up),
            "cachetier.l1.entries": ("Entries in the in-process L1.", "{entry}", self._entries),
            "cachetier.l1.size": ("Estimated size of the L1 entries.", "By", self._size),
        }
        for name, (description, unit, callback) in gauges.items():
            meter.create_observable_gauge(name, callbacks=[callback], unit=unit, description=description)

    async def refresh(self) -> CacheStats:
        """Read the stats now, for collections that run on the cache's own loop (which must not block)."""
        self._read_at = float("-inf")  # the next collection reads these (on the loop) or newer ones
        return await self._reader.refresh()

    def _current(self) -> CacheStats | None:
        if time.monotonic() - self._read_at > SHARED_READ_SECONDS:
            self._stats = self._reader.read()
            self._read_at = time.monotonic()
        return self._stats

    def _observe(self, values: Callable[[CacheStats], Iterable[tuple[float, dict[str, str]]]]) -> list[Observation]:
        stats = self._current()
        if stats is None:
            return []
        return [Observation(value, {"cachetier.namespace": self.namespace, **attrs}) for value, attrs in values(stats)]

    def _requests(self, options: CallbackOptions) -> list[Observation]:
        return self._observe(
            lambda s: [
                (s.l1.hits, {"cachetier.tier": "l1", "cachetier.result": "hit"}),
                (s.l1.requests - s.l1.hits, {"cachetier.tier": "l1", "cachetier.result": "miss"}),
                (s.l2.hits, {"cachetier.tier": "l2", "cachetier.result": "hit"}),
                (s.l2.misses, {"cachetier.tier": "l2", "cachetier.result": "miss"}),
            ]
        )

    def _loader_runs(self, options: CallbackOptions) -> list[Observation]:
        return self._observe(lambda s: [(s.loader_calls, {})])

    def _errors(self, options: CallbackOptions) -> list[Observation]:
        return self._observe(lambda s: [(s.l2.errors, {})])

    def _dropped(self, options: CallbackOptions) -> list[Observation]:
        return self._observe(lambda s: [(s.l2.dropped_writes, {})])

    def _breaker(self, options: CallbackOptions) -> list[Observation]:
        return self._observe(
            lambda s: [(1.0 if s.l2.circuit == st else 0.0, {"cachetier.state": st}) for st in BREAKER_STATES]
        )

    def _up(self, options: CallbackOptions) -> list[Observation]:
        return self._observe(lambda s: [(float(s.l2.healthy), {})])

    def _entries(self, options: CallbackOptions) -> list[Observation]:
        return self._observe(lambda s: [(s.l1.entries, {})])

    def _size(self, options: CallbackOptions) -> list[Observation]:
        return self._observe(lambda s: [(s.l1.memory_bytes, {})])


def observe_cache(
    cache: CacheManager | SyncCache, *, meter_provider: MeterProvider | None = None, timeout: float = 2.0
) -> CacheObservation:
    """Register `cache`'s figures as observable OTel instruments (the global meter provider by default)."""
    return CacheObservation(cache, meter_provider, timeout)


def l2_tracer(
    *, tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> Observer:
    """An observer for `instrument(adapter, ...)`: a span and a duration per L2 call.

    Spans are CLIENT spans named by the operation, with `db.system` (and the
    newer `db.system.name`) and `db.operation.name`; a failed call's span records
    the exception, has status ERROR, and its duration carries `error.type`.
    """
    tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
    duration = metrics.get_meter(SCOPE, meter_provider=meter_provider).create_histogram(
        "db.client.operation.duration", unit="s", description="Duration of L2 backend calls."
    )

    @contextlib.contextmanager
    def observe(operation: str, system: str) -> Iterator[object]:
        attributes: dict[str, str] = {"db.system": system, "db.system.name": system, "db.operation.name": operation}
        started = time.perf_counter()
        try:
            with tracer.start_as_current_span(operation, kind=SpanKind.CLIENT, attributes=attributes) as span:
                yield span
        except BaseException as exc:
            attributes["error.type"] = type(exc).__qualname__
            raise
        finally:
            duration.record(time.perf_counter() - started, attributes)

    return observe


def traced_loader(
    loader: Callable[[], Any], key: str, *, tracer_provider: TracerProvider | None = None
) -> Callable[[], Any]:
    """`loader` (sync or async) with a span `cachetier.load` around each run; `cachetier.key` names the key."""
    tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
    attributes = {"cachetier.key": key}

    if inspect.iscoroutinefunction(loader):

        @functools.wraps(loader)
        async def load_async() -> Any:
            with tracer.start_as_current_span("cachetier.load", attributes=attributes):
                return await loader()

        return load_async

    @functools.wraps(loader)
    def load() -> Any:
        span = tracer.start_span("cachetier.load", attributes=attributes)
        try:
            with trace.use_span(span, end_on_exit=False):
                result = loader()
        except BaseException:
            span.end()
            raise
        if inspect.isawaitable(result):  # e.g. a lambda returning a coroutine: the span lasts until it is awaited
            return _finish(span, result)
        span.end()
        return result

    return load


async def _finish(span: trace.Span, result: Any) -> Any:
    with trace.use_span(span, end_on_exit=True):
        return await result
