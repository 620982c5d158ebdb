"""A writer and a second reader over one real backend, as two processes of one app would be.

The reader is a separate manager on the same namespace and table (or SQLite
file), so what it gets came from L2, never from the writer's L1.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NamedTuple

import pytest

from cachetier import CacheConfig, CacheManager, create_for_testing, create_with_config

BACKENDS = ["sqlite", "redis", "postgres"]


class Pair(NamedTuple):
    writer: CacheManager
    reader: CacheManager


def backend_config(request: pytest.FixtureRequest, name: str) -> CacheConfig:
    if name == "redis":
        return CacheConfig(adapter="redis", redis_url=request.getfixturevalue("redis_url"))
    if name == "postgres":
        return CacheConfig(adapter="postgres", database_url=request.getfixturevalue("postgres_dsn"))
    return CacheConfig(adapter="sqlite")


@asynccontextmanager
async def writer_and_reader(config: CacheConfig) -> AsyncIterator[Pair]:
    """Two managers on one isolated namespace; the writer's close removes the namespace's data."""
    writer = create_for_testing(config)
    await writer.start()
    reader = create_with_config(writer.config)
    try:
        yield Pair(writer, reader)
    finally:
        await reader.close()
        await writer.close()
