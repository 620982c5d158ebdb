"""PostgreSQL storage stays bounded under mass expiry: purged space is reused, not added to."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from cachetier.adapters.pg_names import names
from cachetier.adapters.postgres import PostgresAdapter
from cachetier.protocols import L2Entry

ROUNDS = 3
EXPIRING = 4000
VALUE = 2048  # random bytes: stored out of line, in the TOAST table


@pytest.fixture
def table() -> str:
    return f"ct_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def db(postgres_dsn: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await asyncpg.connect(postgres_dsn)
    yield conn
    await conn.close()


async def test_table_size_stays_flat_across_rounds_of_mass_expiry(
    postgres_dsn: str, table: str, db: asyncpg.Connection[Any]
) -> None:
    adapter = PostgresAdapter(postgres_dsn, table_name=table, drop_on_close=True)
    try:
        await adapter.mset([L2Entry(f"live{i}", os.urandom(256), 600) for i in range(2000)])
        sizes = []
        for round_ in range(ROUNDS):
            for start in range(0, EXPIRING, 1000):
                batch = range(start, start + 1000)
                await adapter.mset([L2Entry(f"r{round_}:{i}", os.urandom(VALUE), 0.2, ("t",)) for i in batch])
            await asyncio.sleep(0.3)
            assert await adapter.purge_expired() == EXPIRING
            sizes.append(await db.fetchval("SELECT pg_total_relation_size($1::regclass)", table))
        assert await adapter.get("live0") is not None
    finally:
        await adapter.close()
    # Without the vacuum each round adds its rows' size again (8 MB, then 16, then 24 or so).
    assert sizes[-1] < EXPIRING * VALUE / 2, sizes
    assert sizes[-1] <= sizes[1] * 1.1, sizes


async def test_tables_are_created_with_autovacuum_settings_for_churn(
    postgres_dsn: str, table: str, db: asyncpg.Connection[Any]
) -> None:
    adapter = PostgresAdapter(postgres_dsn, table_name=table, drop_on_close=True)
    try:
        await adapter.ping()
        options = await db.fetchval("SELECT reloptions FROM pg_class WHERE oid = $1::regclass", table)
        assert "autovacuum_vacuum_scale_factor=0.02" in options
        toast = await db.fetchval(
            "SELECT t.reloptions FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid WHERE c.oid = $1::regclass",
            table,
        )
        assert "autovacuum_vacuum_scale_factor=0.02" in toast
        leases = names(table)["leases"].strip('"')
        assert await db.fetchval("SELECT reloptions FROM pg_class WHERE oid = $1::regclass", f'"{leases}"')
    finally:
        await adapter.close()
