"""Fixtures for `PostgresAdapter` tests on the machine's PostgreSQL: a table, a direct connection, an adapter.

A module imports the ones it uses::

    from postgres_fixtures import fixture_db, fixture_pg, fixture_table  # noqa: F401 (fixtures)

and its tests request them by name: `table`, `db`, `pg`. (The functions carry a
``fixture_`` name so that a test's parameter does not shadow the import.) Every
test works in its own `ct_<hex>` table and drops it afterwards, so runs can share the server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from cachetier.adapters.postgres import PostgresAdapter


def table_name() -> str:
    """A table name no other test uses: ``ct_`` and 12 hex digits."""
    return f"ct_{uuid.uuid4().hex[:12]}"


@pytest.fixture(name="table")
def fixture_table() -> str:
    """The test's own table name (see `table_name`)."""
    return table_name()


@pytest.fixture(name="db")
async def fixture_db(postgres_dsn: str, table: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A direct connection for looking behind the adapter; drops the test's table afterwards."""
    conn = await asyncpg.connect(postgres_dsn)
    yield conn
    await conn.execute(f'DROP TABLE IF EXISTS "{table}"')
    await conn.close()


@pytest.fixture(name="pg")
async def fixture_pg(postgres_dsn: str, table: str, db: asyncpg.Connection[Any]) -> AsyncIterator[PostgresAdapter]:
    """A `PostgresAdapter` on the test's table, which it drops on close (and `db` drops it after that)."""
    adapter = PostgresAdapter(postgres_dsn, table_name=table, drop_on_close=True)
    yield adapter
    await adapter.close()
