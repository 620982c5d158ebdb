"""The Redis change feed checks the echoes of this process's own writes in batches, not one MGET per write.

A writer setting tagged keys one after another gets one echo per write; checking
each with its own MGET doubled the commands (and the client's work) of every call.
(Plain sets and deletes are not echoed at all: they go through the feed's
tracker, see test_redis_quiet_writes.py; a tagged write is a script, which is.)
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Sequence
from typing import Any

from cachetier.adapters.redis import RedisAdapter
from cachetier.adapters.redis_tracking import _CHECK_DELAY, InvalidationFeed


async def test_echoes_of_a_sequential_writer_share_echo_checks(redis_url: str) -> None:
    namespace = f"echo-{uuid.uuid4().hex[:12]}"
    adapter = RedisAdapter.from_url(redis_url)
    reported: list[Sequence[str] | None] = []
    unsubscribe = await adapter.subscribe_invalidations(f"{namespace}:", reported.append)
    feed = adapter._feeds[0]
    checks: list[int] = []
    started: list[float] = []
    check = feed._report_unless_ours

    all_checked = asyncio.Event()
    writes = 40

    async def counted(ours: dict[str, bytes]) -> Any:
        checks.append(len(ours))
        started.append(time.monotonic())
        try:
            return await check(ours)
        finally:
            if sum(checks) >= writes:
                all_checked.set()

    feed._report_unless_ours = counted  # type: ignore[method-assign]
    try:
        for i in range(writes):  # one at a time, so that each echo comes alone
            await adapter.set(f"{namespace}:k{i}", b"v", 60, [f"{namespace}:t"])
        await asyncio.wait_for(all_checked.wait(), 2)
        await asyncio.sleep(0.01)  # a late reply would show as a report or an extra check
        assert sum(checks) == writes  # every echo was checked...
        gaps = [later - earlier for earlier, later in itertools.pairwise(started)]
        assert min(gaps, default=_CHECK_DELAY) >= _CHECK_DELAY * 0.9  # ...at most once per window, not per write
        assert reported == []  # and none was reported: they were ours
    finally:
        await adapter.clear(f"{namespace}:")
        await unsubscribe()
        await adapter.close()
    assert isinstance(feed, InvalidationFeed)
