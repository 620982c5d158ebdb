"""Two managers ("processes") on one PostgreSQL table: what one changes leaves the other's L1 (the manager
subscribes to `PostgresAdapter`'s change feed by itself), and a process keeps the L1 copy of its own write."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from cachetier import CacheConfig, CacheManager, create_with_config
from cachetier.adapters.postgres import PostgresAdapter
from cachetier.sentinel import MISS

DROP_WAIT = 2.0  # generous on a shared machine; the measured figure is in the README


async def eventually(check: Callable[[], Any], within: float = DROP_WAIT) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not true within {within} s"
        await asyncio.sleep(0.005)


@pytest.fixture
async def processes(postgres_dsn: str) -> AsyncIterator[tuple[CacheManager, CacheManager]]:
    table, namespace = f"ct_{uuid.uuid4().hex[:12]}", f"feed-{uuid.uuid4().hex[:8]}"
    a = create_with_config(CacheConfig(namespace=namespace), adapter=PostgresAdapter(postgres_dsn, table_name=table))
    b = create_with_config(
        CacheConfig(namespace=namespace), adapter=PostgresAdapter(postgres_dsn, table_name=table, drop_on_close=True)
    )
    yield a, b
    await a.close()
    await b.close()


async def cached_in_l1(cache: CacheManager, key: str, expected: Any) -> None:
    assert await cache.get(key) == expected
    assert cache.get_local(key) == expected


async def test_a_value_set_by_another_process_leaves_the_l1(processes: tuple[CacheManager, CacheManager]) -> None:
    a, b = processes
    await b.set("user:1", {"name": "old"})
    await cached_in_l1(a, "user:1", {"name": "old"})
    await b.set("user:1", {"name": "new"})
    await eventually(lambda: a.get_local("user:1") is MISS)
    assert await a.get("user:1") == {"name": "new"}


async def test_deletes_and_tag_invalidations_by_another_process_leave_the_l1(
    processes: tuple[CacheManager, CacheManager],
) -> None:
    a, b = processes
    await b.set("user:1", "one", tags=["users"])
    await b.set("user:2", "two")
    await b.set("page", "kept", tags=["pages"])
    for key, value in {"user:1": "one", "user:2": "two", "page": "kept"}.items():
        await cached_in_l1(a, key, value)
    assert await b.invalidate_by_tag("users") == 1
    assert await b.delete("user:2")
    await eventually(lambda: a.get_local("user:1") is MISS and a.get_local("user:2") is MISS)
    assert a.get_local("page") == "kept"


async def test_a_process_keeps_the_l1_copy_of_its_own_write(processes: tuple[CacheManager, CacheManager]) -> None:
    a, _ = processes
    await a.set("mine", "v")
    await cached_in_l1(a, "mine", "v")
    await asyncio.sleep(0.3)  # any notice of our own has arrived and been skipped by now
    assert a.get_local("mine") == "v"
