"""Cost growth: get, set and tag invalidation as a backend holds more keys.

For each size N, a fresh namespace (or table, or SQLite file) is filled with N
keys of about 100 bytes, each carrying one of 10 tags, so a tag covers N / 10
keys (1,000 at 10^4 keys, 10,000 at 10^5, 100,000 at 10^6). Then, on a
manager with L1 off (the rows show L2's cost, which is what grows): gets and
sets of keys spread over the N (each set keeps its key's tag), and one
invalidation of one tag, timed whole. The fill is not timed. Sizes above
10^5 run only when asked (`python -m bench --growth-max 1000000`): filling a
million tagged keys takes minutes per backend here.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.postgres_tier import DSN
from bench.redis_tier import URL, value
from cachetier import CacheConfig, CacheManager, create_cache
from cachetier.adapters.pg_leases import drop_sql

TAGS = 10
OPS = 300  # gets and sets per size and backend
CHUNK = 5000


@dataclass
class Growth:
    backend: str
    keys: int
    get_us: float  # median µs
    set_us: float
    invalidate_ms: float  # one tag of keys / TAGS keys, whole
    fill_s: float


def _spread(i: int, keys: int) -> int:
    return (i * 7919) % keys  # scattered over the whole key range


async def _median(op: Callable[[int], Awaitable[Any]], keys: int) -> float:
    samples = []
    for i in range(OPS):
        began = time.perf_counter()
        await op(_spread(i, keys))
        samples.append(time.perf_counter() - began)
    return statistics.median(samples) * 1e6


async def _fill(cache: CacheManager, keys: int) -> None:
    for start in range(0, keys, CHUNK):
        for tag in range(TAGS):
            items = {f"g{i}": value(i) for i in range(start + tag, min(keys, start + CHUNK), TAGS)}
            await cache.mset(items, ttl=3600, tags=[f"t{tag}"])


async def measure(backend: str, config: CacheConfig, keys: int) -> Growth:
    cache = create_cache(config.replace(l1_enabled=False))
    await cache.start()
    try:
        began = time.perf_counter()
        await _fill(cache, keys)
        filled = time.perf_counter() - began
        get_us = await _median(lambda i: cache.get(f"g{i}"), keys)
        set_us = await _median(lambda i: cache.set(f"g{i}", value(i), ttl=3600, tags=[f"t{i % TAGS}"]), keys)
        began = time.perf_counter()
        removed = await cache.invalidate_by_tag("t0")
        invalidate_ms = (time.perf_counter() - began) * 1000
        assert removed >= keys // TAGS - 1, (backend, keys, removed)
        return Growth(backend, keys, get_us, set_us, invalidate_ms, filled)
    finally:
        await cache.clear()
        await cache.close()


async def rows(run: str, sizes: list[int]) -> list[Growth]:
    out: list[Growth] = []
    with tempfile.TemporaryDirectory(prefix="bench-growth-") as folder:
        for keys in sizes:
            table = f"bench_{run}_g{keys}"
            configs = {
                "Redis": CacheConfig(adapter="redis", redis_url=URL, namespace=f"bench{run}g{keys}"),
                "PostgreSQL": CacheConfig(adapter="postgres", database_url=DSN, table_name=table, namespace="g"),
                "SQLite": CacheConfig(
                    adapter="sqlite", database_url=f"sqlite:///{Path(folder) / f'g{keys}.sqlite3'}", namespace="g"
                ),
            }
            for backend, config in configs.items():
                out.append(await measure(backend, config, keys))
            conn = await asyncpg.connect(DSN)
            try:
                await conn.execute(drop_sql(table))
            finally:
                await conn.close()
    return out


def markdown(growth: list[Growth]) -> str:
    lines = [
        "### Cost growth: L2 cost as the backend holds more keys (L1 off)",
        "",
        (__doc__ or "").split("\n\n", 1)[1].strip(),
        "",
        "| backend | keys | keys per tag | get median µs | set median µs | invalidate one tag, ms | fill, s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in growth:
        lines.append(
            f"| {row.backend} | {row.keys:,} | {row.keys // TAGS:,} | {row.get_us:,.1f} | {row.set_us:,.1f} | "
            f"{row.invalidate_ms:,.1f} | {row.fill_s:,.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import uuid

    print(markdown(asyncio.run(rows(uuid.uuid4().hex[:8], [10_000]))))
