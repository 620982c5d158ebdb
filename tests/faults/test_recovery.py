"""Recovery from an L2 outage does not wait for the writer's next call (issue 9).

Two managers on a redis-server of the test's own stand for two processes. The
server is paused (SIGSTOP: connections stay open, nothing answers) while the
writer overwrites a key that the reader holds in L1. Once the server answers
again, the writer's background probe replays the dropped write as a delete,
and the reader stops serving the older value, without the writer making any
further call. Before the probe, the older value stayed until the writer's next
call after `recovery_timeout` (or, if it exited first, until the TTL).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from cachetier import CacheConfig, CacheManager, create_with_config
from cachetier.adapters.redis import RedisAdapter
from servers import RedisServer

pytestmark = pytest.mark.timeout(60)

RECOVERY_BOUND = 1.5  # seconds from the server answering again (README: "Recovery")


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as started:
        yield started


def _config(server: RedisServer, namespace: str) -> CacheConfig:
    # A long recovery_timeout: only the background probe can bring the writer back in time.
    return CacheConfig(
        redis_url=server.url, namespace=namespace, failure_threshold=1, recovery_timeout=60, redis_socket_timeout=0.3
    )


@pytest.fixture
async def pair(server: RedisServer) -> AsyncIterator[tuple[CacheManager, CacheManager]]:
    namespace = f"rec{uuid.uuid4().hex[:8]}"
    writer = create_with_config(
        _config(server, namespace), adapter=RedisAdapter.from_config(_config(server, namespace))
    )
    reader = create_with_config(
        _config(server, namespace), adapter=RedisAdapter.from_config(_config(server, namespace))
    )
    await writer.start()
    await reader.start()
    yield writer, reader
    await reader.close()
    await writer.close()


async def _older_value_gone_within(reader: CacheManager, stale: str, bound: float) -> float:
    resumed = time.monotonic()
    while time.monotonic() - resumed < bound:
        if await reader.get("k") != stale:
            return time.monotonic() - resumed
        await asyncio.sleep(0.02)
    raise AssertionError(f"the reader still served {stale!r} {bound} s after the server came back")


async def test_a_write_dropped_during_an_outage_stops_older_reads_elsewhere_without_another_call(
    server: RedisServer, pair: tuple[CacheManager, CacheManager]
) -> None:
    writer, reader = pair
    assert await writer.set("k", "v1") is True
    assert await reader.get("k") == "v1"  # now in the reader's L1 too
    server.pause()
    try:
        assert await writer.set("k", "v2") is False  # kept in the writer's L1 only
        assert await writer.get("k") == "v2"
    finally:
        server.resume()
    took = await _older_value_gone_within(reader, "v1", RECOVERY_BOUND)
    print(f"older value gone from the other process {took * 1000:.0f} ms after the server answered again")
    for _ in range(50):  # the probe closes the circuit right after the replay the reader just saw
        if (await writer.get_stats()).l2.healthy:
            break
        await asyncio.sleep(0.02)
    assert (await writer.get_stats()).l2.healthy


async def test_close_replays_what_is_owed_before_the_process_exits(
    server: RedisServer, pair: tuple[CacheManager, CacheManager]
) -> None:
    writer, reader = pair
    await writer.set("k", "v1")
    assert await reader.get("k") == "v1"
    server.pause()
    try:
        assert await writer.set("k", "v2") is False
    finally:
        server.resume()
    await writer.close()  # at once, before the probe's first attempt
    await _older_value_gone_within(reader, "v1", 0.5)
