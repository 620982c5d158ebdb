"""A manager over each real backend, for the hostile-input and corrupt-entry fault tests.

Every cache gets its own namespace (and PostgreSQL table, SQLite file), cleared or
dropped afterwards, so runs can share the machine's servers.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cachetier import CacheManager, create_with_config
from cachetier.adapters.memory import MemoryAdapter
from cachetier.adapters.postgres import PostgresAdapter
from cachetier.adapters.redis import RedisAdapter
from cachetier.adapters.sqlite import SQLiteAdapter
from cachetier.protocols import L2Adapter

BACKENDS = ["memory", "sqlite", "redis", "postgres"]


@dataclass
class Backend:
    """A cache and the adapter under it (to write stored bytes straight into L2)."""

    name: str
    cache: CacheManager
    adapter: L2Adapter
    namespace: str


def make_adapter(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> L2Adapter:
    if name == "memory":
        return MemoryAdapter()
    if name == "sqlite":
        return SQLiteAdapter(tmp_path / "cache.sqlite3")
    if name == "redis":
        return RedisAdapter.from_url(request.getfixturevalue("redis_url"))
    dsn = request.getfixturevalue("postgres_dsn")
    return PostgresAdapter(dsn, table_name=f"ct_{uuid.uuid4().hex[:12]}", drop_on_close=True)


async def open_backend(
    name: str, request: pytest.FixtureRequest, tmp_path: Path, **config: Any
) -> AsyncIterator[Backend]:
    """Yield a started cache on backend `name`; clear its namespace and close it afterwards."""
    namespace = f"f{uuid.uuid4().hex[:12]}"
    adapter = make_adapter(name, request, tmp_path)
    cache = create_with_config(adapter=adapter, namespace=namespace, **config)
    await cache.start()
    try:
        yield Backend(name, cache, adapter, namespace)
    finally:
        await cache.clear()
        await cache.close()
