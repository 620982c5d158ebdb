"""`auto` in production on a Redis that is down at start: degraded on SQLite, then back on Redis once it answers."""

from __future__ import annotations

import asyncio
import pathlib
import time
import uuid

import pytest
import redis.asyncio as redis

from cachetier import CacheConfig, CacheManager, create_cache, create_health_check, create_with_config
from cachetier.move_back import MOVE_BACK_INTERVAL, TASK_NAME
from servers import RedisServer

MARGIN = 8.0  # seconds past the probe interval: a ping, a namespace clear and the feed, on a loaded 2-core VM


def probe_tasks() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == TASK_NAME and not task.done()]


async def wait_for_redis(cache: CacheManager) -> None:
    deadline = time.monotonic() + MOVE_BACK_INTERVAL + MARGIN
    while cache.adapter_type != "redis":
        assert time.monotonic() < deadline, f"still on {cache.adapter_type}: {cache.selection_reason}"
        await asyncio.sleep(0.05)


@pytest.fixture
def production_auto(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> str:
    """CACHE_ADAPTER=auto in production with a temporary SQLite file; returns a fresh namespace."""
    namespace = f"moveback_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CACHE_ADAPTER", "auto")
    monkeypatch.setenv("CACHE_ENVIRONMENT", "production")
    monkeypatch.setenv("CACHE_DATABASE_URL", f"sqlite:///{tmp_path / 'cache.sqlite3'}")
    monkeypatch.setenv("CACHE_NAMESPACE", namespace)
    return namespace


async def test_auto_moves_back_to_redis_when_it_answers_and_serves_nothing_older_than_the_fallback(
    production_auto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = production_auto
    server = RedisServer("--appendonly", "yes")  # its data survives a stop, as a real Redis's would
    try:
        server.start()
        # Values from before the fallback period (another process's): Redis still holds them when it comes back.
        async with create_with_config(adapter="redis", redis_url=server.url, namespace=ns) as earlier:
            await earlier.set("written-on-fallback", "older")
            await earlier.set("untouched-on-fallback", "older")
            await earlier.set("kept", "not ours", namespace="other_app")
        server.stop()
        monkeypatch.setenv("REDIS_URL", server.url)

        async with create_cache() as cache:
            assert cache.adapter_type == "sqlite"
            assert probe_tasks()
            health = await create_health_check(cache)()
            assert health["status"] == "degraded"
            assert health["adapter"] == "sqlite"
            assert "fallback after: redis: " in health["reason"]  # names what failed, and how
            assert f"ConnectionError: Error 111 connecting to 127.0.0.1:{server.port}" in health["reason"]
            assert await cache.set("written-on-fallback", "newer")  # in SQLite and this L1, never in Redis
            assert await cache.get("written-on-fallback") == "newer"
            assert await cache.set("only-on-fallback", "fallback's")

            server.start()
            raw = redis.Redis.from_url(server.url)
            assert await raw.get("other_app:kept") is not None  # Redis came back with its data
            await wait_for_redis(cache)

            health = await create_health_check(cache)()
            assert health["status"] == "healthy", health
            assert health["adapter"] == "redis"
            assert "fallback" not in cache.selection_reason
            assert "moved back to it from sqlite" in cache.selection_reason
            # Neither the older Redis value nor the fallback's (no longer shared) copy is served: a miss.
            assert await cache.get("written-on-fallback") is None
            assert await cache.get("untouched-on-fallback") is None
            assert await cache.get("only-on-fallback") is None  # L1 was emptied
            assert await raw.get("other_app:kept") is not None  # the clear kept to this namespace

            assert await cache.set("after", {"v": 2})
            assert await raw.get(f"{ns}:after") is not None
            assert await cache.get("after") == {"v": 2}
            # The change feed is Redis's now: another client's delete drops this process's L1 copy.
            await raw.delete(f"{ns}:after")
            deadline = time.monotonic() + 5
            while await cache.get("after") is not None:
                assert time.monotonic() < deadline, "L1 kept a copy Redis no longer has: no feed after the move"
                await asyncio.sleep(0.02)
            await cache.clear()
            deadline = time.monotonic() + 5
            while probe_tasks():  # it closes SQLite after a 1 s grace for calls that picked it, then ends
                assert time.monotonic() < deadline, "the probe still runs after moving back"
                await asyncio.sleep(0.05)
        await raw.aclose()
    finally:
        server.close()


async def test_moving_back_logs_a_warning(
    production_auto: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer()
    try:
        monkeypatch.setenv("REDIS_URL", server.url)
        async with create_cache() as cache:
            assert cache.adapter_type == "sqlite"
            server.start()
            with caplog.at_level("WARNING", logger="cachetier"):
                await wait_for_redis(cache)
            await cache.clear()
        assert "redis backend answers again; moved back to it from sqlite in " in caplog.text
    finally:
        server.close()


async def test_close_stops_the_move_back_probe(production_auto: str, monkeypatch: pytest.MonkeyPatch) -> None:
    server = RedisServer()  # never started
    try:
        monkeypatch.setenv("REDIS_URL", server.url)
        cache = await create_cache().start()
        assert cache.adapter_type == "sqlite"
        assert len(probe_tasks()) == 1
        await cache.close()
        assert not probe_tasks()
    finally:
        server.close()


async def test_no_probe_runs_when_redis_answered_at_start(redis_url: str, tmp_path: pathlib.Path) -> None:
    config = CacheConfig(
        environment="production", redis_url=redis_url, database_url=f"sqlite:///{tmp_path}/c.sqlite3", namespace="mb"
    )
    async with create_cache(config) as cache:
        assert cache.adapter_type == "redis"
        assert not probe_tasks()


async def test_no_probe_runs_for_a_redis_url_that_can_never_work(tmp_path: pathlib.Path) -> None:
    config = CacheConfig(
        environment="production",
        redis_url="redis://127.0.0.1:7000,127.0.0.1:7001/0",  # a guessed cluster URL: ConfigError when built
        database_url=f"sqlite:///{tmp_path}/c.sqlite3",
        namespace="mb_bad",
    )
    async with create_cache(config) as cache:
        assert cache.adapter_type == "sqlite"
        assert not probe_tasks()


async def test_calls_running_across_the_move_back_all_answer_and_none_reaches_a_closed_backend(
    production_auto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = RedisServer()
    try:
        monkeypatch.setenv("REDIS_URL", server.url)
        async with create_cache() as cache:
            assert cache.adapter_type == "sqlite"
            moved = asyncio.Event()
            deadline = time.monotonic() + MOVE_BACK_INTERVAL + MARGIN + 2

            async def worker(n: int) -> int:
                i = 0
                while not moved.is_set() and time.monotonic() < deadline:
                    await cache.set(f"k{n}-{i % 20}", i)
                    await cache.get(f"k{n}-{i % 20}")
                    await cache.get(f"loaded{n}-{i % 20}", lambda i=i: i)  # lease path
                    await cache.mget([f"k{n}-{j}" for j in range(5)])
                    i += 1
                return i

            workers = [asyncio.create_task(worker(n)) for n in range(4)]
            server.start()
            await wait_for_redis(cache)
            await asyncio.sleep(1.5)  # past the grace: the fallback is closed while calls go on
            moved.set()
            calls = await asyncio.gather(*workers)  # an exception in any call fails the test here
            assert all(calls)
            stats = await cache.get_stats()
            assert stats.adapter == "redis"
            assert stats.l2.errors == 0
            assert stats.l2.dropped_writes == 0
            assert stats.l2.circuit == "closed"
            await cache.clear()
    finally:
        server.close()
