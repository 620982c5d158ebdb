"""A tag of 100k keys, and 100k dead index members, on a throwaway Redis: no script holds the server up (issue 10).

Before: invalidating the tag was one script (287 ms on an idle machine, 1.1-1.3 s
on a busy 2-core one), and every other client waited as long. Now it is a loop
of scripts of at most `redis_purge.CHUNK` keys; a write prunes at most
`redis_scripts.PRUNE_MAX` dead members. These tests pin the structure (how many
scripts, what each may take) and print what another client saw (run with -s);
wall-clock figures are not asserted, since a shared machine can stall any process.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from cachetier.adapters import redis_purge
from cachetier.adapters.redis import RedisAdapter
from cachetier.adapters.redis_keys import tag_index, tag_list
from cachetier.adapters.redis_scripts import PRUNE_MAX
from cachetier.protocols import L2Entry
from servers import RedisServer

KEYS = 100_000

# Another client, in its own process so that it competes for the server and not for our event
# loop: GETs one key in a loop and prints (wall-clock start, seconds) per GET.
PROBE = r"""
import json, select, socket, sys, time
connection = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
timings = []
while not select.select([sys.stdin], [], [], 0)[0]:  # until the test writes to our stdin
    started, t = time.time(), time.perf_counter()
    connection.sendall(b"*2\r\n$3\r\nGET\r\n$5\r\nprobe\r\n")
    connection.recv(64)
    timings.append((started, time.perf_counter() - t))
    time.sleep(0.0005)
print(json.dumps(timings))
"""


@pytest.fixture
async def server() -> AsyncIterator[RedisServer]:
    with RedisServer() as started:
        yield started


async def _fill(adapter: RedisAdapter, raw: Redis) -> None:
    """KEYS values tagged ``p:big``: the first thousand through the adapter, the rest written as it would, faster."""
    await adapter.mset([L2Entry(f"p:{i}", b"v" * 100, 600, ("p:big",)) for i in range(1_000)])
    seconds, micros = await raw.time()
    expires = seconds * 1000 + micros // 1000 + 600_000
    for start in range(1_000, KEYS, 10_000):
        async with raw.pipeline(transaction=False) as pipe:
            for i in range(start, min(KEYS, start + 10_000)):
                pipe.set(f"p:{i}", b"v" * 100, px=600_000)
                pipe.sadd(tag_list(f"p:{i}"), "p:big")
                pipe.pexpire(tag_list(f"p:{i}"), 600_000)
            pipe.zadd(tag_index("p:big"), {f"p:{i}": expires for i in range(start, min(KEYS, start + 10_000))})
            await pipe.execute()


async def _scripts_seen(raw: Redis) -> list[float]:
    """Durations (ms) of the EVALSHAs in the slow log since it was reset."""
    entries = await raw.slowlog_get(100_000)
    return sorted(entry["duration"] / 1000 for entry in entries if entry["command"].startswith(b"EVALSHA"))


async def _watched(server: RedisServer, raw: Redis, action: Callable[[], Awaitable[Any]]) -> tuple[Any, str]:
    """Run `action` while another client GETs; return its result and what that client and the slow log saw."""
    await raw.set("probe", b"x")
    await raw.config_set("slowlog-max-len", 100_000)
    await raw.config_set("slowlog-log-slower-than", 0)
    await raw.slowlog_reset()
    probe = subprocess.Popen(
        [sys.executable, "-c", PROBE, str(server.port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        await asyncio.sleep(0.3)
        began, started = time.time(), time.perf_counter()
        result = await action()
        took, ended = time.perf_counter() - started, time.time()
    finally:
        output, _ = await asyncio.to_thread(probe.communicate, b"stop\n", 30)
    during = sorted(seconds * 1000 for at, seconds in json.loads(output) if began <= at <= ended)
    scripts = await _scripts_seen(raw)
    p99 = during[min(len(during) - 1, int(len(during) * 0.99))] if during else float("nan")
    longest = scripts[-1] if scripts else float("nan")
    report = (
        f"{took * 1000:.0f} ms; {len(scripts)} scripts, median {scripts[len(scripts) // 2] if scripts else 0:.1f} ms, "
        f"longest {longest:.1f} ms; another client's "
        f"{len(during)} GETs meanwhile: p99 {p99:.2f} ms, max {max(during, default=float('nan')):.1f} ms"
    )
    return result, report


@pytest.mark.slow
async def test_a_100k_key_tag_is_purged_in_scripts_of_bounded_size(server: RedisServer) -> None:
    adapter, raw = RedisAdapter.from_url(server.url), Redis.from_url(server.url)
    try:
        await _fill(adapter, raw)
        await adapter.invalidate_tags(["p:warm-up"])  # loads the script
        _, baseline = await _watched(server, raw, lambda: asyncio.sleep(0.6))
        removed, report = await _watched(server, raw, lambda: adapter.invalidate_tags(["p:big"]))
        print(f"\nidle server, 0.6 s: {baseline}\ninvalidate_tags of {KEYS:,} keys: {report}")
        assert removed == KEYS
        assert await raw.exists(*(f"p:{i}" for i in range(0, KEYS, 997))) == 0
        assert len(await _scripts_seen(raw)) >= KEYS // redis_purge.CHUNK  # never one script for the lot
        assert await raw.dbsize() == 4  # probe, lease counter, two tag marks: no key or tag list left
    finally:
        await adapter.close()
        await raw.aclose()


@pytest.mark.slow
async def test_100k_dead_index_members_are_pruned_a_bounded_number_per_write(server: RedisServer) -> None:
    adapter, raw = RedisAdapter.from_url(server.url), Redis.from_url(server.url)
    try:
        await adapter.set("p:long", b"v", 600, ("p:big",))  # keeps the index alive after the others die
        seconds, micros = await raw.time()
        died = seconds * 1000 + micros // 1000 - 1_000  # server ms: members whose keys expired a second ago
        for start in range(0, KEYS, 10_000):
            await raw.zadd(tag_index("p:big"), {f"p:{i}": died for i in range(start, start + 10_000)})
        _, report = await _watched(server, raw, lambda: adapter.set("p:new", b"v", 600, ("p:big",)))
        print(f"\na write to a tag of {KEYS:,} dead members: {report}")
        assert await raw.zcard(tag_index("p:big")) == 2 + KEYS - PRUNE_MAX
    finally:
        await adapter.close()
        await raw.aclose()
