"""SQLite leases across adapters sharing one file (as processes on one host do), and the pruning of marks."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cachetier.adapters.sqlite import SQLiteAdapter
from cachetier.lease_contract import race_leased_stores_against_changes

LEASE_TTL = 30.0


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[SQLiteAdapter, SQLiteAdapter]]:
    first, second = SQLiteAdapter(tmp_path / "cache.sqlite3"), SQLiteAdapter(tmp_path / "cache.sqlite3")
    yield first, second
    await first.close()
    await second.close()


async def test_a_lease_taken_by_one_adapter_makes_the_other_wait(pair: tuple[SQLiteAdapter, SQLiteAdapter]) -> None:
    first, second = pair
    token = (await first.get_or_lease("k", LEASE_TTL)).token
    assert token is not None
    assert (await second.get_or_lease("k", LEASE_TTL)).busy
    assert await first.set_leased("k", b"v", 60, (), token) is True
    assert (await second.get_or_lease("k", LEASE_TTL)).value == b"v"


async def test_another_adapters_write_and_invalidation_revoke_the_lease(
    pair: tuple[SQLiteAdapter, SQLiteAdapter],
) -> None:
    first, second = pair
    written = (await first.get_or_lease("a", LEASE_TTL)).token
    tagged = (await first.get_or_lease("b", LEASE_TTL)).token
    await second.set("a", b"newer", 60)
    await second.invalidate_tags(["t"])
    assert await first.set_leased("a", b"older", 60, (), written) is False
    assert await first.set_leased("b", b"older", 60, ("t",), tagged) is False
    assert await second.mget(["a", "b"]) == [b"newer", None]


async def test_dropped_marks_still_refuse_older_leases(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    adapter = SQLiteAdapter(path)
    try:
        old = (await adapter.get_or_lease("k", LEASE_TTL)).token
        await adapter.invalidate_tags(["t"])
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            conn.execute("UPDATE cache_entries_marks SET expires_at = 0")
        await adapter.purge_expired()
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("SELECT kind, name FROM cache_entries_marks").fetchall() == [("p", "")]
        assert await adapter.set_leased("k", b"old", 60, ("t",), old) is False
        fresh = (await adapter.get_or_lease("j", LEASE_TTL)).token
        assert await adapter.set_leased("j", b"new", 60, ("t",), fresh) is True
    finally:
        await adapter.close()


@pytest.mark.parametrize("seed", range(3))
async def test_no_leased_store_survives_a_change_that_began_after_its_lease(
    pair: tuple[SQLiteAdapter, SQLiteAdapter], seed: int
) -> None:
    """Random interleavings across two adapters on one file: a change that started after the lease wins."""
    loader, writer = pair
    await race_leased_stores_against_changes(loader, writer, "", seed)
