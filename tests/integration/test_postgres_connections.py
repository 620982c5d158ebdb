"""PostgresAdapter's connections against the machine's real PostgreSQL, and what the server does under them.

Pins one bounded pool shared by concurrent first calls, no reset query on release, connections the server
closes, cancelled and slow calls, an unreachable server, and a table dropped or altered by someone else.
Every test works in its own `ct_<hex>` table and drops it afterwards, so runs can share the server.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import asyncpg
import pytest

from cachetier.adapters.postgres import PostgresAdapter
from cachetier.errors import BackendError
from postgres_fixtures import fixture_db, fixture_pg, fixture_table  # noqa: F401 (fixtures, requested by name)


def _with_app_name(dsn: str, name: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}application_name={name}"


async def test_concurrent_first_calls_share_one_bounded_pool(
    postgres_dsn: str, db: Any, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    connects = 0
    real_connect = asyncpg.connect

    def counting_connect(*args: Any, **kwargs: Any) -> Any:
        nonlocal connects
        connects += 1
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(asyncpg, "connect", counting_connect)
    adapter = PostgresAdapter(postgres_dsn, table_name=table, pool_size=3, drop_on_close=True)
    try:
        assert await asyncio.gather(*(adapter.get(f"k{i}") for i in range(20))) == [None] * 20
        assert connects == 3
        assert (await adapter.stats())["connections"] == 3
    finally:
        await adapter.close()


async def test_connection_release_sends_no_reset_query(postgres_dsn: str, db: Any, table: str) -> None:
    adapter = PostgresAdapter(_with_app_name(postgres_dsn, table), table_name=table, drop_on_close=True)
    try:
        await adapter.set("k", b"v", 60)
        assert await adapter.get("k") == b"v"
        # A reset on release would be each backend's last query (RESET ALL; ...), not our SELECT.
        rows = await db.fetch("SELECT query FROM pg_stat_activity WHERE application_name = $1", table)
        get_sql = f'SELECT value FROM "{table}" WHERE key = $1 AND expires_at > now()'
        assert [row["query"] for row in rows] == [get_sql]
    finally:
        await adapter.close()


async def test_connections_closed_by_the_server_are_replaced(postgres_dsn: str, db: Any, table: str) -> None:
    adapter = PostgresAdapter(_with_app_name(postgres_dsn, table), table_name=table, drop_on_close=True)
    try:
        await adapter.set("k", b"v", 60)
        await db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", table)
        await asyncio.sleep(0.2)  # let the client see the socket close
        assert await adapter.get("k") == b"v"
    finally:
        await adapter.close()


async def test_cancelled_call_leaves_the_adapter_usable(postgres_dsn: str, db: Any, table: str) -> None:
    adapter = PostgresAdapter(postgres_dsn, table_name=table, pool_size=1, drop_on_close=True)
    try:
        await adapter.set("k", b"v", 60)
        async with db.transaction():
            await db.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await adapter.get("k")
        assert await adapter.get("k") == b"v"
    finally:
        await adapter.close()


async def test_call_cancelled_while_waiting_for_a_connection_leaves_the_adapter_usable(
    postgres_dsn: str, db: Any, table: str
) -> None:
    adapter = PostgresAdapter(postgres_dsn, table_name=table, pool_size=1, drop_on_close=True)
    try:
        await adapter.set("k", b"v", 60)
        async with db.transaction():
            await db.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
            holder = asyncio.create_task(adapter.get("k"))  # takes the only connection, waits on the lock
            queued = asyncio.create_task(adapter.get("k"))  # waits for that connection
            await asyncio.sleep(0.1)
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
        assert await holder == b"v"
        assert await asyncio.gather(adapter.get("k"), adapter.get("k")) == [b"v", b"v"]
    finally:
        await adapter.close()


async def test_slow_statement_raises_backend_error(postgres_dsn: str, db: Any, table: str) -> None:
    adapter = PostgresAdapter(postgres_dsn, table_name=table, statement_timeout=0.3, drop_on_close=True)
    try:
        await adapter.set("k", b"v", 60)
        async with db.transaction():
            await db.execute(f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')
            with pytest.raises(BackendError, match="QueryCanceled"):
                await adapter.get("k")
        assert await adapter.get("k") == b"v"
    finally:
        await adapter.close()


async def test_unreachable_server_raises_backend_error_quickly(table: str) -> None:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        adapter = PostgresAdapter(f"postgresql://postgres@127.0.0.1:{port}/test", table_name=table)
        started = time.monotonic()
        with pytest.raises(BackendError, match="failed"):
            await adapter.get("k")
        with pytest.raises(BackendError):
            await adapter.ping()
        assert time.monotonic() - started < 2
        await adapter.close()


async def test_a_table_dropped_by_someone_else_is_recreated(pg: PostgresAdapter, db: Any, table: str) -> None:
    await pg.set("k", b"v", 60)
    await db.execute(f'DROP TABLE "{table}"')  # another adapter's drop_on_close, or a manual reset
    assert await pg.get("k") is None
    await pg.set("k", b"w", 60, ["t"])
    assert await pg.get("k") == b"w"
    assert await pg.invalidate_tags(["t"]) == 1


async def test_a_table_altered_by_someone_else_is_still_read(pg: PostgresAdapter, db: Any, table: str) -> None:
    await pg.set("k", b"v", 60)
    assert await pg.mget(["k"]) == [b"v"]  # statements now prepared on the pooled connection
    domain = f"{table}_bytes"
    await db.execute(f'CREATE DOMAIN "{domain}" AS bytea')
    try:
        # Changes the statements' result type: PostgreSQL refuses to run them as prepared.
        await db.execute(f'ALTER TABLE "{table}" ALTER COLUMN value TYPE "{domain}"')
        assert await pg.get("k") == b"v"
        assert await pg.mget(["k", "x"]) == [b"v", None]
    finally:
        await db.execute(f'DROP TABLE IF EXISTS "{table}"')
        await db.execute(f'DROP DOMAIN "{domain}"')
