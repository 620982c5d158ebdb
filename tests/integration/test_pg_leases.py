"""PostgreSQL leases under the races READ COMMITTED allows: each interleaving forced with a transaction held open.

A direct connection holds a row or advisory lock open so that one adapter call
stops at a chosen point; the test then starts the racing call and releases the
lock. Each test failed against single-statement versions of these operations
(a statement's snapshot does not see what commits while it waits).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import asyncpg
import pytest

from cachetier.adapters.pg_names import names
from cachetier.adapters.postgres import PostgresAdapter
from cachetier.lease_contract import race_leased_stores_against_changes

LEASE_TTL = 30.0


@pytest.fixture
def table() -> str:
    return f"ct_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def db(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await asyncpg.connect(postgres_dsn)
    yield conn
    await conn.close()


@pytest.fixture
async def pg(postgres_dsn: str, table: str) -> AsyncIterator[PostgresAdapter]:
    adapter = PostgresAdapter(f"{postgres_dsn}?application_name={table}", table_name=table, drop_on_close=True)
    await adapter.ping()
    yield adapter
    await adapter.close()


async def _started_and_waiting(dsn: str, table: str, count: int) -> None:
    """Return once `count` of the adapter's connections wait on a lock (the call reached the chosen point).

    Asks on a connection of its own: inside a transaction pg_stat_activity does not change.
    """
    watcher = await asyncpg.connect(dsn)
    try:
        await _poll_waiting(watcher, table, count)
    finally:
        await watcher.close()


async def _poll_waiting(watcher: asyncpg.Connection[Any], table: str, count: int) -> None:
    for _ in range(200):
        waiting = await watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'", table
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} calls never blocked")


async def _finish(*calls: Awaitable[Any]) -> list[Any]:
    return list(await asyncio.wait_for(asyncio.gather(*calls), 10))


async def test_leased_store_waiting_on_an_invalidation_sees_its_mark(
    pg: PostgresAdapter, db: asyncpg.Connection[Any], table: str, postgres_dsn: str
) -> None:
    token = (await pg.get_or_lease("k", LEASE_TTL)).token
    assert token is not None
    async with db.transaction():
        # The invalidation has written its mark and deleted (nothing yet), but not committed.
        await db.fetchval(f"SELECT {names(table)['invalidate']}($1, NULL)", ["t"])
        store = asyncio.ensure_future(pg.set_leased("k", b"old", 60, ["t"], token))
        await _started_and_waiting(postgres_dsn, table, 1)
    assert await _finish(store) == [False]
    assert await pg.get("k") is None


async def test_invalidation_waiting_on_a_leased_store_deletes_what_it_stored(
    pg: PostgresAdapter, db: asyncpg.Connection[Any], table: str, postgres_dsn: str
) -> None:
    token = (await pg.get_or_lease("k", LEASE_TTL)).token
    assert token is not None
    tr = db.transaction()
    await tr.start()
    try:
        # An uncommitted row for the key stops the leased store at its upsert, holding its tag lock.
        await db.execute(f"INSERT INTO \"{table}\" (key, value, expires_at) VALUES ('k', 'x', now())")
        store = asyncio.ensure_future(pg.set_leased("k", b"old", 60, ["t"], token))
        await _started_and_waiting(postgres_dsn, table, 1)
        invalidation = asyncio.ensure_future(pg.invalidate_tags(["t"]))
        await _started_and_waiting(postgres_dsn, table, 2)
    finally:
        await tr.rollback()
    assert await _finish(store, invalidation) == [True, 1]
    assert await pg.get("k") is None


async def test_delete_waiting_on_a_leased_store_deletes_what_it_stored(
    pg: PostgresAdapter, db: asyncpg.Connection[Any], table: str, postgres_dsn: str
) -> None:
    token = (await pg.get_or_lease("k", LEASE_TTL)).token
    assert token is not None
    tr = db.transaction()
    await tr.start()
    try:
        await db.execute(f"INSERT INTO \"{table}\" (key, value, expires_at) VALUES ('k', 'x', now())")
        store = asyncio.ensure_future(pg.set_leased("k", b"old", 60, [], token))
        await _started_and_waiting(postgres_dsn, table, 1)
        delete = asyncio.ensure_future(pg.delete("k"))  # waits for the lease row the store holds
        await _started_and_waiting(postgres_dsn, table, 2)
    finally:
        await tr.rollback()
    assert await _finish(store, delete) == [True, True]
    assert await pg.get("k") is None


async def test_clear_waiting_on_a_leased_store_deletes_what_it_stored(
    pg: PostgresAdapter, db: asyncpg.Connection[Any], table: str, postgres_dsn: str
) -> None:
    token = (await pg.get_or_lease("p:k", LEASE_TTL)).token
    assert token is not None
    tr = db.transaction()
    await tr.start()
    try:
        await db.execute(f"INSERT INTO \"{table}\" (key, value, expires_at) VALUES ('p:k', 'x', now())")
        store = asyncio.ensure_future(pg.set_leased("p:k", b"old", 60, [], token))
        await _started_and_waiting(postgres_dsn, table, 1)
        clear = asyncio.ensure_future(pg.clear("p:"))
        await _started_and_waiting(postgres_dsn, table, 2)
    finally:
        await tr.rollback()
    assert await _finish(store, clear) == [True, 1]
    assert await pg.get("p:k") is None


async def test_write_racing_a_leased_store_wins(
    pg: PostgresAdapter, db: asyncpg.Connection[Any], table: str, postgres_dsn: str
) -> None:
    token = (await pg.get_or_lease("k", LEASE_TTL)).token
    assert token is not None
    tr = db.transaction()
    await tr.start()
    try:
        await db.execute(f"INSERT INTO \"{table}\" (key, value, expires_at) VALUES ('k', 'x', now())")
        store = asyncio.ensure_future(pg.set_leased("k", b"old", 60, [], token))
        await _started_and_waiting(postgres_dsn, table, 1)
        write = asyncio.ensure_future(pg.set("k", b"new", 60))
        await _started_and_waiting(postgres_dsn, table, 2)
    finally:
        await tr.rollback()
    await _finish(store, write)
    assert await pg.get("k") == b"new"


async def test_leases_hold_across_adapters_on_the_same_table(
    postgres_dsn: str, pg: PostgresAdapter, table: str
) -> None:
    other = PostgresAdapter(postgres_dsn, table_name=table)
    try:
        token = (await pg.get_or_lease("k", LEASE_TTL)).token
        assert (await other.get_or_lease("k", LEASE_TTL)).busy
        await other.invalidate_tags(["t"])
        assert await pg.set_leased("k", b"old", 60, ["t"], token) is False
        fresh = (await other.get_or_lease("k", LEASE_TTL)).token
        assert await other.set_leased("k", b"new", 60, ["t"], fresh) is True
        assert (await pg.get_or_lease("k", LEASE_TTL)).value == b"new"
    finally:
        await other.close()


async def test_dropped_marks_still_refuse_older_leases(
    pg: PostgresAdapter, db: asyncpg.Connection[Any], table: str
) -> None:
    old = (await pg.get_or_lease("k", LEASE_TTL)).token
    await pg.invalidate_tags(["t"])
    marks = names(table)["marks"]
    await db.execute(f"UPDATE {marks} SET expires_at = now() - interval '1 second'")
    await pg.purge_expired()
    assert await db.fetchval(f"SELECT count(*) FROM {marks} WHERE kind = 't'") == 0
    assert await pg.set_leased("k", b"old", 60, ["t"], old) is False  # the floor refuses it
    fresh = (await pg.get_or_lease("j", LEASE_TTL)).token
    assert await pg.set_leased("j", b"new", 60, ["t"], fresh) is True


async def test_purge_drops_expired_leases(pg: PostgresAdapter, db: asyncpg.Connection[Any], table: str) -> None:
    await pg.get_or_lease("short", 0.1)
    await pg.get_or_lease("long", LEASE_TTL)
    await asyncio.sleep(0.3)
    await pg.purge_expired()
    assert await db.fetchval(f"SELECT array_agg(key) FROM {names(table)['leases']}") == ["long"]


@pytest.mark.parametrize("seed", range(3))
async def test_no_leased_store_survives_a_change_that_began_after_its_lease(pg: PostgresAdapter, seed: int) -> None:
    """Random interleavings: a change that started after the lease was granted always wins over the load."""
    await race_leased_stores_against_changes(pg, pg, "", seed)
