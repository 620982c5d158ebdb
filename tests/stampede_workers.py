"""A cross-process stampede: N processes, each with M concurrent misses of one key, counting loader runs.

Import as ``stampede_workers`` (``tests/`` is on ``sys.path``); `worker` is
module-level so ``spawn`` children can import it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from typing import Any

from linearizability import Backend, _adapter


async def _run(backend: Backend, callers: int, start_at: float, calls: Any) -> None:
    from cachetier import create_with_config

    async def load() -> str:
        with calls.get_lock():
            calls.value += 1
        await asyncio.sleep(0.05)  # a 50 ms query
        return "loaded"

    async with create_with_config(adapter=_adapter(backend), namespace=backend.namespace) as cache:
        await asyncio.sleep(max(0.0, start_at - time.time()))  # every process misses at the same moment
        results = await asyncio.gather(*(cache.get("hot", load) for _ in range(callers)))
        assert results == ["loaded"] * callers


def worker(backend: Backend, callers: int, start_at: float, calls: Any) -> None:
    asyncio.run(_run(backend, callers, start_at, calls))


def loader_calls(backend: Backend, processes: int, callers: int) -> int:
    """Loader runs for `processes` x `callers` concurrent misses of one key."""
    context = multiprocessing.get_context("spawn")
    calls = context.Value("i", 0)
    start_at = time.time() + 3.0  # time for the children to import and connect
    children = [context.Process(target=worker, args=(backend, callers, start_at, calls)) for _ in range(processes)]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0, f"stampede worker exited with {child.exitcode}"
    return int(calls.value)
