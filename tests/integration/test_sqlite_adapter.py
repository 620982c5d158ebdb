from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import platformdirs
import pytest

from cachetier.adapters.sqlite import SQLiteAdapter, default_sqlite_path, path_from_url
from cachetier.errors import BackendError, CacheClosedError, ConfigError
from cachetier.protocols import L2Adapter, L2Entry
from cachetier.testing import L2ContractSuite

HOSTILE_KEYS = [
    'it\'s "quoted"',
    "x'; DROP TABLE cache_entries; --",
    "100%",
    "under_score",
    "%_%",
    "\\back\\slash",
    "nul\x00byte",
    "ключ-キー-🔑",
    "k" * 10_240,
]


class TestSQLiteFileAdapterContract(L2ContractSuite):
    @pytest.fixture
    async def adapter(self, tmp_path: Path) -> AsyncIterator[L2Adapter]:
        adapter: L2Adapter = SQLiteAdapter(tmp_path / "cache.sqlite3")
        yield adapter
        await adapter.close()


class TestSQLiteInMemoryAdapterContract(L2ContractSuite):
    @pytest.fixture
    async def adapter(self) -> AsyncIterator[L2Adapter]:
        adapter: L2Adapter = SQLiteAdapter(":memory:")
        yield adapter
        await adapter.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite3"


@pytest.fixture
async def adapter(db_path: Path) -> AsyncIterator[SQLiteAdapter]:
    adapter = SQLiteAdapter(db_path)
    yield adapter
    await adapter.close()


def query_one(path: Path, sql: str) -> object:
    """First column of the first row, read through a connection of the test's own."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchone()[0]


async def test_purge_expired_deletes_expired_rows_and_their_tag_rows(adapter: SQLiteAdapter, db_path: Path) -> None:
    for name in ("a", "b", "c"):
        await adapter.set(name, b"v", 0.05, ("t1", "t2"))
    await adapter.set("live", b"v", 60, ("t1",))
    await asyncio.sleep(0.1)
    assert query_one(db_path, "SELECT COUNT(*) FROM cache_entries") == 4

    assert await adapter.purge_expired() == 3

    assert query_one(db_path, "SELECT COUNT(*) FROM cache_entries") == 1
    assert query_one(db_path, "SELECT COUNT(*) FROM cache_entries_tags") == 1
    assert await adapter.get("live") == b"v"
    assert await adapter.purge_expired() == 0


async def test_purge_expired_goes_through_more_rows_than_one_batch(adapter: SQLiteAdapter, db_path: Path) -> None:
    await adapter.mset([L2Entry(f"k{i}", b"v", 0.05, (f"t{i % 7}",)) for i in range(2500)])
    await asyncio.sleep(0.1)
    assert await adapter.purge_expired() == 2500
    assert query_one(db_path, "SELECT COUNT(*) FROM cache_entries") == 0
    assert query_one(db_path, "SELECT COUNT(*) FROM cache_entries_tags") == 0


async def test_background_cleanup_deletes_expired_rows_without_being_asked(db_path: Path) -> None:
    adapter = SQLiteAdapter(db_path, cleanup_interval=0.05)
    try:
        await adapter.set("short", b"v", 0.05, ("t",))
        await adapter.set("long", b"v", 60)
        deadline = time.monotonic() + 5
        while query_one(db_path, "SELECT COUNT(*) FROM cache_entries") != 1:
            assert time.monotonic() < deadline, "expired row was never swept"
            await asyncio.sleep(0.05)
        assert query_one(db_path, "SELECT COUNT(*) FROM cache_entries_tags") == 0
    finally:
        await adapter.close()


async def test_two_adapters_on_one_file_see_each_others_writes(adapter: SQLiteAdapter, db_path: Path) -> None:
    other = SQLiteAdapter(db_path)
    try:
        await adapter.set("k", b"from-first", 60, ("t",))
        assert await other.get("k") == b"from-first"
        await other.set("k2", b"from-second", 60, ("t",))
        assert await adapter.get("k2") == b"from-second"
        assert await other.invalidate_tags(["t"]) == 2
        assert await adapter.mget(["k", "k2"]) == [None, None]
    finally:
        await other.close()


async def test_concurrent_incr_through_two_adapters_on_one_file_loses_no_update(
    adapter: SQLiteAdapter, db_path: Path
) -> None:
    other = SQLiteAdapter(db_path)
    try:
        await asyncio.gather(*(a.incr("n", 1, 60) for _ in range(25) for a in (adapter, other)))
        assert await adapter.get("n") == b"50"
    finally:
        await other.close()


CHILD_INCREMENTS = """
import asyncio, sys
from cachetier.adapters.sqlite import SQLiteAdapter

async def main() -> None:
    adapter = SQLiteAdapter(sys.argv[1])
    try:
        await adapter.ping()
        print("ready", flush=True)
        for _ in range(300):
            await adapter.incr("n", 1, 60)
    finally:
        await adapter.close()

asyncio.run(main())
"""


async def test_incr_from_another_process_on_one_file_loses_no_update(adapter: SQLiteAdapter, db_path: Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD_INCREMENTS,
        str(db_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    ready = await child.stdout.readline()
    for _ in range(300):
        await adapter.incr("n", 1, 60)
    _, stderr = await child.communicate()
    assert (ready, child.returncode) == (b"ready\n", 0), stderr.decode()
    assert await adapter.get("n") == b"600"


async def test_values_survive_closing_and_reopening_the_file(adapter: SQLiteAdapter, db_path: Path) -> None:
    await adapter.set("k", b"v", 60, ("t",))
    await adapter.close()
    reopened = SQLiteAdapter(db_path)
    try:
        assert await reopened.get("k") == b"v"
        assert await reopened.invalidate_tags(["t"]) == 1
    finally:
        await reopened.close()


async def test_database_file_uses_wal_journal_mode(adapter: SQLiteAdapter, db_path: Path) -> None:
    await adapter.ping()
    assert query_one(db_path, "PRAGMA journal_mode") == "wal"


async def test_reads_skip_expired_rows_still_on_disk(adapter: SQLiteAdapter, db_path: Path) -> None:
    await adapter.set("k", b"v", 0.05)
    await asyncio.sleep(0.1)
    assert query_one(db_path, "SELECT COUNT(*) FROM cache_entries") == 1
    assert await adapter.get("k") is None
    assert await adapter.delete("k") is False
    assert await adapter.expire("k", 60) is False
    assert await adapter.clear("") == 0


async def test_incr_of_expired_key_restarts_from_zero(adapter: SQLiteAdapter) -> None:
    await adapter.set("n", b"41", 0.05, ("t",))
    await asyncio.sleep(0.1)
    assert await adapter.incr("n", 1, 60) == 1
    assert await adapter.invalidate_tags(["t"]) == 0
    assert await adapter.get("n") == b"1"


async def test_incr_keeps_ttl_and_tags_of_live_key(adapter: SQLiteAdapter) -> None:
    await adapter.set("n", b"41", 60, ("t",))
    assert await adapter.incr("n", 1, 0.05) == 42
    await asyncio.sleep(0.1)
    assert await adapter.get("n") == b"42"
    assert await adapter.invalidate_tags(["t"]) == 1


async def test_hostile_keys_and_tags_are_stored_verbatim(adapter: SQLiteAdapter, db_path: Path) -> None:
    for index, key in enumerate(HOSTILE_KEYS):
        await adapter.set(key, str(index).encode(), 60, (key, "'; DELETE FROM cache_entries_tags; --"))
    assert await adapter.mget(HOSTILE_KEYS) == [str(i).encode() for i in range(len(HOSTILE_KEYS))]
    assert await adapter.invalidate_tags(["100%"]) == 1
    assert await adapter.get("100%") is None
    assert await adapter.exists("under_score")
    assert await adapter.invalidate_tags(["'; DELETE FROM cache_entries_tags; --"]) == len(HOSTILE_KEYS) - 1
    assert await adapter.stats() == {"entries": 0, "tags": 0, "path": str(db_path)}


async def test_clear_treats_percent_and_underscore_in_prefix_literally(adapter: SQLiteAdapter) -> None:
    keys = ["p:100%", "p:100%x", "p:1000", "p:100x", "p:a_b", "p:a_bc", "p:axb", "p:a%b"]
    await adapter.mset([L2Entry(key, b"v", 60, ("t",)) for key in keys])
    assert await adapter.clear("p:100%") == 2
    assert await adapter.clear("p:a_") == 2
    assert await adapter.mget(keys) == [None, None, b"v", b"v", None, None, b"v", b"v"]
    assert await adapter.invalidate_tags(["t"]) == 4


async def test_clear_of_prefix_ending_in_highest_code_point_removes_only_its_keys(adapter: SQLiteAdapter) -> None:
    top = "\U0010ffff"
    keys = ["a" + top, "a" + top + "x", "a" + top + top, "b", "a"]
    await adapter.mset([L2Entry(key, b"v", 60) for key in keys])
    assert await adapter.clear("a" + top) == 3
    assert await adapter.mget(keys) == [None, None, None, b"v", b"v"]
    assert await adapter.clear("") == 2
    assert await adapter.mget(["a", "b"]) == [None, None]


async def test_mget_of_many_keys_returns_every_value_in_order(adapter: SQLiteAdapter) -> None:
    keys = [f"k{i}" for i in range(1200)]
    await adapter.mset([L2Entry(key, key.encode(), 60) for key in keys[::2]])
    values = await adapter.mget(keys)
    assert values == [key.encode() if i % 2 == 0 else None for i, key in enumerate(keys)]


async def test_invalidate_of_many_tags_counts_each_key_once(adapter: SQLiteAdapter, db_path: Path) -> None:
    tags = [f"t{i}" for i in range(1200)]
    await adapter.set("all", b"v", 60, tags)
    await adapter.set("last", b"v", 60, tags[-1:])
    assert await adapter.invalidate_tags(tags) == 2
    assert await adapter.stats() == {"entries": 0, "tags": 0, "path": str(db_path)}


async def test_stats_counts_live_entries_and_distinct_tags(adapter: SQLiteAdapter, db_path: Path) -> None:
    await adapter.set("a", b"v", 60, ("t1", "t2"))
    await adapter.set("b", b"v", 60, ("t2",))
    await adapter.set("gone", b"v", 0.05)
    await asyncio.sleep(0.1)
    assert await adapter.stats() == {"entries": 2, "tags": 2, "path": str(db_path)}


async def test_custom_table_name_names_every_table(db_path: Path) -> None:
    adapter = SQLiteAdapter(db_path, table_name="My_Cache2")
    try:
        await adapter.set("k", b"v", 60, ("t",))
    finally:
        await adapter.close()
    sql = "SELECT group_concat(name, ',') FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    names = query_one(db_path, sql)
    assert isinstance(names, str)
    suffixes = ["", "_changes", "_counter", "_leases", "_marks", "_tags"]
    assert sorted(names.split(",")) == [f"My_Cache2{suffix}" for suffix in suffixes]


@pytest.mark.parametrize(
    "table_name", ["", "1cache", "bad-name", "cache entries", 'x"; DROP TABLE y; --', "sqlite_cache", "t" * 64]
)
def test_invalid_table_name_raises_config_error(db_path: Path, table_name: str) -> None:
    with pytest.raises(ConfigError, match="table_name"):
        SQLiteAdapter(db_path, table_name=table_name)


@pytest.mark.parametrize("interval", [0, -1.0, float("nan")])
def test_non_positive_cleanup_interval_raises_config_error(db_path: Path, interval: float) -> None:
    with pytest.raises(ConfigError, match="cleanup_interval"):
        SQLiteAdapter(db_path, cleanup_interval=interval)


async def test_unopenable_file_raises_backend_error_from_sqlite_error(tmp_path: Path) -> None:
    adapter = SQLiteAdapter(tmp_path / "missing-directory" / "cache.sqlite3")
    try:
        with pytest.raises(BackendError) as caught:
            await adapter.get("k")
        assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
        with pytest.raises(BackendError):
            await adapter.purge_expired()
    finally:
        await adapter.close()


async def test_corrupt_file_raises_backend_error(db_path: Path) -> None:
    await asyncio.to_thread(db_path.write_bytes, b"this is not a database" * 100)
    adapter = SQLiteAdapter(db_path)
    try:
        with pytest.raises(BackendError) as caught:
            await adapter.set("k", b"v", 60)
        assert isinstance(caught.value.__cause__, sqlite3.DatabaseError)
    finally:
        await adapter.close()


async def test_use_after_close_raises_cache_closed_error_and_close_is_idempotent(adapter: SQLiteAdapter) -> None:
    await adapter.set("k", b"v", 60)
    await adapter.close()
    await adapter.close()
    with pytest.raises(CacheClosedError):
        await adapter.get("k")


async def test_close_of_never_used_adapter_succeeds(db_path: Path) -> None:
    await SQLiteAdapter(db_path).close()
    assert not await asyncio.to_thread(db_path.exists)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///cache.sqlite3", "cache.sqlite3"),
        ("sqlite:///var/cache.sqlite3", "var/cache.sqlite3"),
        ("sqlite:////tmp/cache.sqlite3", "/tmp/cache.sqlite3"),
        ("sqlite:///:memory:", ":memory:"),
        ("SQLite:///cache.sqlite3", "cache.sqlite3"),
    ],
)
def test_path_from_url_returns_the_file_path(url: str, path: str) -> None:
    assert path_from_url(url) == path


@pytest.mark.parametrize(
    "url",
    [
        "",
        "cache.sqlite3",
        "sqlite://",
        "sqlite:///",
        "sqlite://host/cache.sqlite3",
        "sqlite:/cache.sqlite3",
        "sqlite:///cache.sqlite3?mode=ro",
        "postgresql://user@host/db",
    ],
)
def test_path_from_url_rejects_anything_else_with_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="database_url"):
        path_from_url(url)


def test_default_sqlite_path_is_a_file_in_the_created_user_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache_dir = tmp_path / "user-cache" / "cachetier"
    seen: list[str] = []

    def user_cache_dir(appname: str) -> str:
        seen.append(appname)
        return str(cache_dir)

    monkeypatch.setattr(platformdirs, "user_cache_dir", user_cache_dir)
    path = default_sqlite_path()
    assert seen == ["cachetier"]
    assert path == cache_dir / "cachetier.sqlite3"
    assert cache_dir.is_dir()
