"""SQLiteAdapter's change feed: adapters sharing a file hear of each other's changes by polling its change log."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from cachetier import CacheConfig, create_with_config
from cachetier.adapters.sqlite import SQLiteAdapter
from cachetier.adapters.sqlite_connection import transaction
from cachetier.protocols import InvalidationSource, L2Entry
from cachetier.sentinel import MISS

WAIT = 5.0  # generous on a shared machine; the bound measured is in the README


class Heard:
    def __init__(self) -> None:
        self.reports: asyncio.Queue[list[str] | None] = asyncio.Queue()

    def __call__(self, keys: Sequence[str] | None) -> None:
        self.reports.put_nowait(None if keys is None else list(keys))

    async def next(self) -> list[str] | None:
        return await asyncio.wait_for(self.reports.get(), WAIT)

    async def nothing_more(self) -> None:
        await asyncio.sleep(0.4)  # four polls
        assert self.reports.empty(), self.reports.get_nowait()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "cache.sqlite3"


@pytest.fixture
async def writer(path: Path) -> AsyncIterator[SQLiteAdapter]:
    adapter = SQLiteAdapter(path)
    yield adapter
    await adapter.close()


@pytest.fixture
async def reader(path: Path) -> AsyncIterator[SQLiteAdapter]:
    adapter = SQLiteAdapter(path)
    yield adapter
    await adapter.close()


@pytest.fixture
async def heard(reader: SQLiteAdapter) -> AsyncIterator[Heard]:
    heard = Heard()
    unsubscribe = await reader.subscribe_invalidations("p:", heard)
    yield heard
    await unsubscribe()


async def test_other_adapters_changes_under_the_prefix_are_reported(writer: SQLiteAdapter, heard: Heard) -> None:
    assert isinstance(writer, InvalidationSource)
    await writer.set("p:a", b"1", 60)
    assert await heard.next() == ["p:a"]
    await writer.mset([L2Entry("p:b", b"1", 60, ("t",)), L2Entry("q:b", b"1", 60)])
    assert await heard.next() == ["p:b"]
    await writer.delete("p:a")
    assert await heard.next() == ["p:a"]
    await writer.incr("p:n", 1, 60)
    assert await heard.next() == ["p:n"]
    await writer.invalidate_tags(["t"])
    assert await heard.next() == ["p:b"]
    token = (await writer.get_or_lease("p:c", 30)).token
    assert token is not None
    await writer.set_leased("p:c", b"1", 60, (), token)
    assert await heard.next() == ["p:c"]
    await writer.clear("p:c")
    assert await heard.next() is None
    await heard.nothing_more()


async def test_own_changes_and_other_prefixes_are_not_reported(
    writer: SQLiteAdapter, reader: SQLiteAdapter, heard: Heard
) -> None:
    await reader.set("p:own", b"1", 60)
    await reader.clear("p:")
    await writer.set("q:a", b"1", 60)
    await writer.clear("q:")
    await heard.nothing_more()
    await writer.set("p:x", b"1", 60)
    assert await heard.next() == ["p:x"]


async def test_an_invalidation_of_many_keys_is_reported_as_none(writer: SQLiteAdapter, heard: Heard) -> None:
    await writer.mset([L2Entry(f"p:{i}", b"1", 60, ("many",)) for i in range(1500)])
    assert len(await heard.next() or []) == 1500  # one transaction: one report
    assert await writer.invalidate_tags(["many"]) == 1500
    assert await heard.next() is None


async def test_changes_pruned_before_they_were_seen_are_reported_as_none(
    writer: SQLiteAdapter, heard: Heard, path: Path
) -> None:
    await writer.set("p:a", b"1", 60)
    assert await heard.next() == ["p:a"]
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO cache_entries_changes (origin, kind, name, at) VALUES ('x', 'k', 'p:b', 0)")
        conn.execute("INSERT INTO cache_entries_changes (origin, kind, name, at) VALUES ('x', 'k', 'p:c', 0)")
        conn.execute("DELETE FROM cache_entries_changes WHERE name = 'p:b'")  # as a prune would
    assert await heard.next() is None


async def test_a_private_memory_database_reports_nothing() -> None:
    adapter = SQLiteAdapter(":memory:")
    try:
        heard = Heard()
        unsubscribe = await adapter.subscribe_invalidations("", heard)
        await adapter.set("k", b"1", 60)
        await heard.nothing_more()
        await unsubscribe()
    finally:
        await adapter.close()


async def test_another_managers_write_leaves_this_managers_l1_within_the_bound(path: Path) -> None:
    config = CacheConfig(namespace="feed")
    a = create_with_config(config, adapter=SQLiteAdapter(path))
    b = create_with_config(config, adapter=SQLiteAdapter(path))
    try:
        await b.set("user:1", "old")
        assert await a.get("user:1") == "old"
        assert a.get_local("user:1") == "old"
        await b.set("user:1", "new")
        started = time.monotonic()
        while a.get_local("user:1") is not MISS:
            assert time.monotonic() - started < WAIT
            await asyncio.sleep(0.01)
        assert await a.get("user:1") == "new"
    finally:
        await a.close()
        await b.close()


async def test_a_rolled_back_change_of_ours_does_not_hide_anothers_next_change(
    writer: SQLiteAdapter, reader: SQLiteAdapter, heard: Heard
) -> None:
    def fail_after_logging(conn: sqlite3.Connection) -> None:
        with transaction(conn):
            reader._changes.record(conn, "k", "p:ours")  # the row takes the next seq, then goes with the rollback
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        await reader._run(fail_after_logging)
    await asyncio.sleep(0.3)  # idle polls: nobody else committed
    await writer.set("p:theirs", b"1", 60)  # reuses that seq
    assert await heard.next() == ["p:theirs"]
