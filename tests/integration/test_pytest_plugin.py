"""The pytest plugin, exercised the way a user's suite would: through pytester, in a subprocess.

The inner runs have no ini file of this project, so pytest-asyncio runs in its
default strict mode and markers are checked with --strict-markers.
"""

from __future__ import annotations

import asyncio
import json
import pathlib

import pytest
import redis.asyncio as aioredis

pytest_plugins = ["pytester"]

ISOLATION = """
import json, pathlib
import pytest

SEEN = pathlib.Path(__file__).with_name("seen.jsonl")


def record(cache, **more):
    with SEEN.open("a") as file:
        file.write(json.dumps({"namespace": cache.config.namespace, "adapter": cache.adapter_type, **more}) + "\\n")


@pytest.mark.asyncio
async def test_first_writes(cachetier_cache):
    await cachetier_cache.set("k", {"v": 1}, tags=["t"])
    assert await cachetier_cache.get("k") == {"v": 1}
    stats = await cachetier_cache.get_stats()
    record(cachetier_cache, path=stats.l2.stats.get("path"))


@pytest.mark.asyncio
async def test_second_sees_nothing_of_the_first(cachetier_cache):
    assert await cachetier_cache.get("k") is None
    record(cachetier_cache)


def test_sync_fixture(cachetier_sync_cache):
    cachetier_sync_cache.set("k", 2)
    assert cachetier_sync_cache.get("k") == 2
    record(cachetier_sync_cache.manager)
"""

NO_CACHE = """
import pytest
from cachetier.integrations.decorators import cache_method, set_default_cache

CALLS = []


@cache_method(ttl=60)
def square(n: int) -> int:
    CALLS.append(("sync", n))
    return n * n


@cache_method(ttl=60)
async def cube(n: int) -> int:
    CALLS.append(("async", n))
    return n ** 3


@pytest.fixture(autouse=True)
def default_cache(cachetier_sync_cache):
    set_default_cache(cachetier_sync_cache)
    CALLS.clear()
    yield
    set_default_cache(None)


def test_cached_by_default():
    assert [square(3), square(3)] == [9, 9]
    assert CALLS == [("sync", 3)]


@pytest.mark.cachetier_no_cache
def test_marker_runs_sync_function_every_call():
    assert [square(3), square(3)] == [9, 9]
    assert CALLS == [("sync", 3), ("sync", 3)]


@pytest.mark.asyncio
async def test_fixture_runs_async_function_every_call(cachetier_no_cache):
    assert [await cube(2), await cube(2)] == [8, 8]
    assert CALLS == [("async", 2), ("async", 2)]


def test_default_is_back_after_a_no_cache_test(cachetier_sync_cache):
    square(4)
    square(4)
    assert CALLS == [("sync", 4)]
"""


def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")  # as a user's suite would
    pytester.makepyfile(test_user=source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers", "-W", "error", *args)


def _seen(pytester: pytest.Pytester) -> list[dict[str, str]]:
    lines = (pytester.path / "seen.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_fixtures_give_each_test_its_own_sqlite_cache_and_remove_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CACHE_ADAPTER", "REDIS_URL", "DATABASE_URL", "CACHE_DATABASE_URL", "CACHE_ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    result = _run(pytester, ISOLATION)
    result.assert_outcomes(passed=3)
    seen = _seen(pytester)
    assert [entry["adapter"] for entry in seen] == ["sqlite"] * 3
    assert len({entry["namespace"] for entry in seen}) == 3
    assert not pathlib.Path(seen[0]["path"]).exists()  # the temporary SQLite file went with the cache


def test_fixtures_on_redis_leave_no_keys_behind(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    monkeypatch.setenv("CACHE_ADAPTER", "redis")
    monkeypatch.setenv("REDIS_URL", redis_url)
    result = _run(pytester, ISOLATION)
    result.assert_outcomes(passed=3)
    seen = _seen(pytester)
    assert [entry["adapter"] for entry in seen] == ["redis"] * 3

    async def leftovers() -> list[tuple[bytes, int]]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            found: list[tuple[bytes, int]] = []
            for entry in seen:
                async for key in client.scan_iter(match=f"*{entry['namespace']}*", count=1000):
                    found.append((key, await client.pttl(key)))
            return found
        finally:
            await client.aclose()

    # Only the adapter's lease revocation marks ({m:...}) and the change feed's fence keys (written after a
    # clear's last key, to learn when its notifications are through) may outlive a clear; both expire by themselves.
    def expiring_bookkeeping(key: bytes, pttl: int) -> bool:
        return (key.startswith(b"{m:") or b"\x00fence\x00" in key) and pttl > 0

    assert [(key, pttl) for key, pttl in asyncio.run(leftovers()) if not expiring_bookkeeping(key, pttl)] == []


def test_no_cache_marker_and_fixture_make_decorated_functions_run_every_call(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CACHE_ADAPTER", raising=False)
    result = _run(pytester, NO_CACHE)
    result.assert_outcomes(passed=4)


def test_plugin_is_listed_and_its_marker_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["*cachetier_no_cache:*default cache run on every call*"])
    fixtures = pytester.runpytest_subprocess("--fixtures")
    fixtures.stdout.fnmatch_lines(["*cachetier_cache*", "*cachetier_sync_cache*", "*cachetier_no_cache*"])
