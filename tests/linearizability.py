"""A Jepsen-style history check of "no read older than a returned write, beyond a bound".

The source of truth is a shared-memory array of version numbers (the
"database"). One writer bumps a key's version there, then tells the cache
(`set` of the new version, `delete`, or `invalidate_by_tag` of the key's tag),
and records when that call returned. Readers call `get(key, loader)` whose
loader reads the array (and dawdles a little, widening the race window) and
record when each read started and what version it returned. Processes share
one monotonic clock (CLOCK_MONOTONIC is system-wide on Linux).

`check` then finds, for every read, the oldest write of a newer version that
had returned before the read began: the read was stale for (read start -
that write's return). Reads stale for longer than the bound are violations.
Import as ``linearizability`` (``tests/`` is on ``sys.path``); worker
functions are module-level so ``spawn`` children can import them.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEYS = 8


@dataclass(frozen=True)
class Backend:
    """How a worker builds its adapter: kind plus URL, DSN or file path."""

    kind: str  # "redis" | "postgres" | "sqlite"
    target: str
    namespace: str
    table: str = "lin_check"


@dataclass
class Report:
    reads: int
    writes: int
    stale_beyond_bound: int
    max_staleness_ms: float
    exceptions: int
    loader_calls: int

    def row(self, mode: str) -> str:
        return (
            f"| {mode} | {self.reads} | {self.writes} | {self.stale_beyond_bound} | {self.max_staleness_ms:.1f} |"
            f" {self.exceptions} |"
        )


def check(
    writes: Sequence[tuple[int, int, float]],
    reads: Sequence[tuple[int, int, float]],
    bound: float,
    quiet_from: float | None = None,
    quiet_until: float | None = None,
) -> tuple[int, float]:
    """(reads stale beyond `bound` seconds, longest staleness in seconds).

    `writes` are (key, version, returned at); `reads` (key, version, started at).
    A write returned during [quiet_from, quiet_until) (an outage) counts as
    returned at `quiet_until`: other processes cannot hear of it earlier.
    """
    by_key: dict[int, list[tuple[int, float]]] = {}
    for key, version, returned in writes:
        if quiet_from is not None and quiet_until is not None and quiet_from <= returned < quiet_until:
            returned = quiet_until
        by_key.setdefault(key, []).append((version, returned))
    # For each key: versions ascending; the earliest return time of any version above v.
    earliest_above: dict[int, tuple[list[int], list[float]]] = {}
    for key, items in by_key.items():
        items.sort()
        versions = [version for version, _ in items]
        suffix_min = [0.0] * len(items)
        best = float("inf")
        for i in range(len(items) - 1, -1, -1):
            best = min(best, items[i][1])
            suffix_min[i] = best
        earliest_above[key] = (versions, suffix_min)
    stale, worst = 0, 0.0
    for key, version, started in reads:
        versions, suffix_min = earliest_above.get(key, ([], []))
        i = bisect_left(versions, version + 1)
        if i == len(versions):
            continue
        staleness = started - suffix_min[i]
        if staleness > 0:
            worst = max(worst, staleness)
            if staleness > bound:
                stale += 1
    return stale, worst


def _adapter(backend: Backend) -> Any:
    from cachetier import CacheConfig

    if backend.kind == "redis":
        from cachetier.adapters.redis import RedisAdapter

        return RedisAdapter.from_config(CacheConfig(redis_url=backend.target))
    if backend.kind == "postgres":
        from cachetier.adapters.postgres import PostgresAdapter

        return PostgresAdapter.from_config(CacheConfig(database_url=backend.target), table_name=backend.table)
    from cachetier.adapters.sqlite import SQLiteAdapter

    return SQLiteAdapter(backend.target)


async def _writer(cache: Any, db: Any, until: float, history: list[Any], errors: list[str]) -> None:
    rng = random.Random(1)
    while time.monotonic() < until:
        key = rng.randrange(KEYS)
        with db.get_lock():
            db[key] += 1
            version = db[key]
        op = rng.random()
        try:
            if op < 0.4:
                await cache.set(f"k{key}", version, tags=[f"t{key}"])
            elif op < 0.7:
                await cache.delete(f"k{key}")
            else:
                await cache.invalidate_by_tag(f"t{key}")
        except Exception as exc:  # the promise says none; count, do not stop
            errors.append(repr(exc))
        history.append((key, version, time.monotonic()))
        await asyncio.sleep(rng.uniform(0, 0.002))


async def _reader(cache: Any, db: Any, until: float, history: list[Any], errors: list[str], seed: int) -> None:
    rng = random.Random(seed)

    async def load(key: int) -> int:
        version = int(db[key])
        await asyncio.sleep(rng.uniform(0, 0.003))  # the value travels while others write
        return version

    while time.monotonic() < until:
        key = rng.randrange(KEYS)
        started = time.monotonic()
        try:
            value = await cache.get(f"k{key}", lambda key=key: load(key), tags=[f"t{key}"])
        except Exception as exc:
            errors.append(repr(exc))
            continue
        history.append((key, int(value), started))
        # A server between requests: it yields (an L1 hit never suspends) and is not always busy, so
        # four processes on two cores do not starve each other (or the change feed) of CPU.
        await asyncio.sleep(rng.uniform(0, 0.001))


async def _run(backend: Backend, db: Any, role: str, seconds: float, readers: int, seed: int) -> dict[str, Any]:
    from cachetier import create_with_config

    cache = create_with_config(adapter=_adapter(backend), namespace=backend.namespace)
    await cache.start()
    writes: list[Any] = []
    reads: list[Any] = []
    errors: list[str] = []
    until = time.monotonic() + seconds
    tasks = []
    if role in {"writer", "both"}:
        tasks.append(_writer(cache, db, until, writes, errors))
    if role in {"reader", "both"}:
        tasks += [_reader(cache, db, until, reads, errors, seed * 100 + i) for i in range(readers)]
    await asyncio.gather(*tasks)
    loader_calls = (await cache.get_stats()).loader_calls
    await cache.close()
    return {"writes": writes, "reads": reads, "errors": errors, "loader_calls": loader_calls}


def worker(backend: Backend, db: Any, role: str, seconds: float, readers: int, seed: int, out: str) -> None:
    """A process of the history: runs its role and writes its history as JSON to `out`."""
    result = asyncio.run(_run(backend, db, role, seconds, readers, seed))
    Path(out).write_text(json.dumps(result))


def run_history(
    backend: Backend,
    processes: int,
    seconds: float,
    directory: Path,
    readers: int = 6,
    during: Callable[[], None] | None = None,
) -> tuple[list[Any], list[Any], list[str], int]:
    """Run a writer and readers (in one process, or 1 writer + `processes - 1` reader processes).

    `during` runs in this process while they work (a fault to inject).
    """
    context = multiprocessing.get_context("spawn")
    db = context.Array("q", KEYS)
    roles = ["both"] if processes == 1 else ["writer"] + ["reader"] * (processes - 1)
    started = []
    for i, role in enumerate(roles):
        out = str(directory / f"history-{i}.json")
        process = context.Process(target=worker, args=(backend, db, role, seconds, readers, i + 1, out))
        process.start()
        started.append((process, out))
    if during is not None:
        during()
    writes: list[Any] = []
    reads: list[Any] = []
    errors: list[str] = []
    loader_calls = 0
    for process, out in started:
        process.join(timeout=seconds + 60)
        assert process.exitcode == 0, f"history worker exited with {process.exitcode}"
        result = json.loads(Path(out).read_text())
        writes += result["writes"]
        reads += result["reads"]
        errors += result["errors"]
        loader_calls += result["loader_calls"]
    return writes, reads, errors, loader_calls
