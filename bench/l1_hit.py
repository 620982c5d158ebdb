"""L1 hit latency of `await cache.get()` next to a bare dict and cachetools, in one run.

Run: python -m bench.l1_hit   (prints a markdown table; medians of 7 rounds of 200k gets)
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from cachetools import TTLCache

from cachetier import create_with_config
from cachetier.adapters.memory import MemoryAdapter

KEYS = [f"user:{i}" for i in range(1000)]
ROUNDS = 7
OPS = 200_000


async def _time_async(get: Callable[[str], Awaitable[Any]]) -> float:
    keys = KEYS * (OPS // len(KEYS))
    started = time.perf_counter()
    for key in keys:
        await get(key)
    return (time.perf_counter() - started) / len(keys)


def _time_sync(get: Callable[[str], Any]) -> float:
    keys = KEYS * (OPS // len(KEYS))
    started = time.perf_counter()
    for key in keys:
        get(key)
    return (time.perf_counter() - started) / len(keys)


async def measure() -> dict[str, float]:
    """Median seconds per L1 hit for each contender."""
    plain = {key: {"id": key} for key in KEYS}

    async def dict_get(key: str) -> Any:
        return plain.get(key)

    ttl_cache: TTLCache[str, Any] = TTLCache(maxsize=10_000, ttl=3600)
    ttl_cache.update(plain)
    cache = create_with_config(adapter=MemoryAdapter(), namespace="bench")
    for key in KEYS:
        await cache.set(key, {"id": key})
    contenders: dict[str, Callable[[], Awaitable[float]]] = {
        "dict.get in async def": lambda: _time_async(dict_get),
        "cachetools.TTLCache.get (sync)": lambda: asyncio.sleep(0, _time_sync(ttl_cache.get)),
        "cachetier await cache.get (L1 hit)": lambda: _time_async(cache.get),
    }
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, run in contenders.items():
            results[name].append(await run())
    await cache.close()
    return {name: statistics.median(samples) for name, samples in results.items()}


def report(medians: dict[str, float]) -> str:
    baseline = medians["dict.get in async def"]
    lines = ["| L1 hit | median µs/op | ratio to dict.get |", "|---|---:|---:|"]
    for name, seconds in medians.items():
        lines.append(f"| {name} | {seconds * 1e6:.3f} | {seconds / baseline:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(asyncio.run(measure())))
