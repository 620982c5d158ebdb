"""PostgresAdapter against the machine's real PostgreSQL: the contract suite plus what only SQL can get wrong.

Every test works in its own `ct_<hex>` table and drops it afterwards, so runs can share the server.
Connections, cancellation and changes made under the adapter are in test_postgres_connections.py.
"""

from __future__ import annotations

import asyncio
import random
import string
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from cachetier.adapters.postgres import MAX_KEY_BYTES, PostgresAdapter
from cachetier.config import CacheConfig
from cachetier.errors import (
    CacheClosedError,
    ConfigError,
    InvalidKeyError,
    InvalidTagError,
    NotAnIntegerError,
)
from cachetier.protocols import L2Adapter, L2Entry
from cachetier.testing import L2ContractSuite
from postgres_fixtures import fixture_db, fixture_pg, fixture_table, table_name  # noqa: F401 (fixture_*)


class TestPostgresAdapterContract(L2ContractSuite):
    @pytest.fixture
    async def adapter(self, postgres_dsn: str) -> AsyncIterator[L2Adapter]:
        adapter: L2Adapter = PostgresAdapter(postgres_dsn, table_name=table_name(), drop_on_close=True)
        yield adapter
        await adapter.close()


async def _persistence(db: asyncpg.Connection[Any], table: str) -> str:
    return str(await db.fetchval("SELECT relpersistence::text FROM pg_class WHERE oid = to_regclass($1)", table))


async def _row_count(db: asyncpg.Connection[Any], table: str) -> int:
    return int(await db.fetchval(f'SELECT count(*) FROM "{table}"'))


async def test_purge_expired_deletes_expired_rows_in_batches(pg: PostgresAdapter, db: Any, table: str) -> None:
    await pg.set("live", b"v", 60)
    await pg.set("short", b"v", 0.2)
    await db.execute(
        f"INSERT INTO \"{table}\" (key, value, expires_at) SELECT 'old' || g, 'x', now() - interval '1 second'"
        " FROM generate_series(1, 2500) g"
    )
    await asyncio.sleep(0.4)
    assert await pg.purge_expired() == 2501
    assert await _row_count(db, table) == 1
    assert await pg.get("live") == b"v"
    assert await pg.purge_expired() == 0


async def test_background_cleanup_deletes_expired_rows(postgres_dsn: str, db: Any, table: str) -> None:
    adapter = PostgresAdapter(postgres_dsn, table_name=table, cleanup_interval=0.1, drop_on_close=True)
    try:
        await adapter.set("short", b"v", 0.2)
        await adapter.set("long", b"v", 60)
        for _ in range(100):  # polls the table: the purge happens in another task, with no event to wait on
            if await _row_count(db, table) == 1:
                break
            await asyncio.sleep(0.05)
        assert await _row_count(db, table) == 1
        assert await adapter.get("long") == b"v"
    finally:
        await adapter.close()


@pytest.mark.parametrize(
    "name", ["x; DROP TABLE y", '"quoted"', "таблица", "t" * 100, "", "1starts_with_digit", "a-b", "a b", "tab\n"]
)
def test_hostile_table_names_are_rejected(name: str) -> None:
    with pytest.raises(ConfigError, match="table_name"):
        PostgresAdapter("postgresql://unused", table_name=name)
    with pytest.raises(ConfigError, match="table_name"):
        PostgresAdapter.from_config(CacheConfig(database_url="postgresql://unused"), table_name=name)


HOSTILE = [
    "it's",
    'say "hi"',
    "a'; DROP TABLE x; --",
    "back\\slash\\",
    "\\x00\\'",
    "100%",
    "under_score",
    "$1::text",
    "ключ-キー-🔑",
    "tab\tnew\nline",
    "{a,b}",
    "é" * 1000,  # 2000 UTF-8 bytes, under the limit
]


@pytest.mark.parametrize("text", HOSTILE)
async def test_hostile_keys_and_tags_are_stored_verbatim(pg: PostgresAdapter, text: str) -> None:
    await pg.set(text, b"v", 60, (text,))
    await pg.mset([L2Entry(text + "2", b"w", 60, (text, "other"))])
    assert await pg.get(text) == b"v"
    assert await pg.mget([text, text + "2", text + "3"]) == [b"v", b"w", None]
    assert await pg.get(text[:-1]) is None
    assert await pg.invalidate_tags([text]) == 2
    assert await pg.mget([text, text + "2"]) == [None, None]


async def test_keys_up_to_max_key_bytes_round_trip(pg: PostgresAdapter) -> None:
    key = "".join(random.choices(string.ascii_letters + string.digits, k=MAX_KEY_BYTES))  # incompressible
    await pg.set(key, b"v", 60, (key,))
    assert await pg.get(key) == b"v"
    assert await pg.incr(key[:-1] + "!", 1, 60) == 1


async def test_oversized_or_nul_keys_and_tags_raise_clear_errors(pg: PostgresAdapter) -> None:
    huge = "k" * 10_240
    for bad_key in (huge, "🔑" * (MAX_KEY_BYTES // 4 + 1), "nul\x00key"):
        with pytest.raises(InvalidKeyError, match="at most"):
            await pg.set(bad_key, b"v", 60)
        with pytest.raises(InvalidKeyError):
            await pg.get(bad_key)
        with pytest.raises(InvalidKeyError):
            await pg.mset([L2Entry("fine", b"v", 60), L2Entry(bad_key, b"v", 60)])
    with pytest.raises(InvalidTagError):
        await pg.set("k", b"v", 60, (huge,))
    with pytest.raises(InvalidTagError):
        await pg.invalidate_tags(["nul\x00tag"])
    assert await pg.get("fine") is None  # the rejected mset wrote nothing


async def test_clear_treats_like_wildcards_literally(pg: PostgresAdapter) -> None:
    prefix = "a%_"
    keys = {prefix + "1": True, prefix + "2": True, "a%Z1": False, "abc_1": False, "a%": False, "b": False}
    for key in keys:
        await pg.set(key, b"v", 60)
    assert await pg.clear(prefix) == 2
    assert [await pg.exists(key) for key in keys] == [not doomed for doomed in keys.values()]


async def test_clear_handles_prefixes_at_code_point_edges(pg: PostgresAdapter) -> None:
    top, before_surrogates = "\U0010ffff", "\ud7ff"
    await pg.mset([L2Entry(k, b"v", 60) for k in ("p" + top, "p" + top + "x", "q", "s" + before_surrogates + "x")])
    await pg.set("s\ue000", b"v", 60)
    assert await pg.clear("p" + top) == 2
    assert await pg.clear("s" + before_surrogates) == 1
    assert await pg.mget(["q", "s\ue000"]) == [b"v", b"v"]
    assert await pg.clear("") == 2


async def test_incr_rejects_non_integers_and_overflow_leaving_value(pg: PostgresAdapter) -> None:
    for stored in (b"9223372036854775807", b"\xff\xfe", b"1.5", b""):
        await pg.set("n", stored, 60)
        with pytest.raises(NotAnIntegerError):
            await pg.incr("n", 1, 60)
        assert await pg.get("n") == stored
    with pytest.raises(NotAnIntegerError):
        await pg.incr("m", 2**63, 60)


async def test_incr_restarts_expired_value_and_keeps_live_tags(pg: PostgresAdapter) -> None:
    await pg.set("n", b"not a number", 0.2)
    await asyncio.sleep(0.4)
    assert await pg.incr("n", 3, 60) == 3
    await pg.set("tagged", b"10", 60, ("t",))
    assert await pg.incr("tagged", -4, 60) == 6
    assert await pg.invalidate_tags(["t"]) == 1


async def test_stats_count_live_rows(pg: PostgresAdapter, table: str) -> None:
    await pg.mset([L2Entry("a", b"1", 60), L2Entry("b", b"2", 60), L2Entry("c", b"3", 0.2)])
    await asyncio.sleep(0.4)
    stats = await pg.stats()
    assert stats["entries"] == 2
    assert stats["table"] == table
    assert stats["pool_size"] == 10


@pytest.mark.parametrize(("unlogged", "persistence"), [(True, "u"), (False, "p")])
async def test_unlogged_option_sets_table_persistence(
    postgres_dsn: str, db: Any, table: str, unlogged: bool, persistence: str
) -> None:
    adapter = PostgresAdapter(postgres_dsn, table_name=table, unlogged=unlogged)
    try:
        await adapter.ping()
    finally:
        await adapter.close()
    assert await _persistence(db, table) == persistence


async def test_from_config_uses_database_settings(postgres_dsn: str, db: Any, table: str) -> None:
    config = CacheConfig(database_url=postgres_dsn, table_name=table, database_pool_size=3, database_unlogged=True)
    adapter = PostgresAdapter.from_config(config, drop_on_close=True)
    try:
        await adapter.set("k", b"v", 60)
        assert (await adapter.stats())["pool_size"] == 3
        assert await _persistence(db, table) == "u"
    finally:
        await adapter.close()
    for url in (None, "sqlite:///cache.db"):
        with pytest.raises(ConfigError, match="database_url"):
            PostgresAdapter.from_config(CacheConfig(database_url=url))


async def test_adapters_creating_the_same_table_at_once_all_succeed(postgres_dsn: str, db: Any, table: str) -> None:
    adapters = [PostgresAdapter(postgres_dsn, table_name=table) for _ in range(6)]
    try:
        await asyncio.gather(*(adapter.set(f"k{i}", b"v", 60) for i, adapter in enumerate(adapters)))
        assert await _row_count(db, table) == 6
    finally:
        for adapter in adapters:
            await adapter.close()


async def test_longest_table_name_gets_distinct_index_names(postgres_dsn: str, db: Any) -> None:
    table = ("ct_" + uuid.uuid4().hex).ljust(63, "x")
    adapter = PostgresAdapter(postgres_dsn, table_name=table, drop_on_close=True)
    try:
        await adapter.set("k", b"v", 60, ("t",))
        indexes = await db.fetchval("SELECT count(*) FROM pg_indexes WHERE tablename = $1", table)
        assert indexes == 3  # primary key, tags, expires_at
    finally:
        await adapter.close()


async def test_drop_on_close_drops_the_table(postgres_dsn: str, db: Any, table: str) -> None:
    adapter = PostgresAdapter(postgres_dsn, table_name=table, drop_on_close=True)
    await adapter.set("k", b"v", 60)
    assert await db.fetchval("SELECT to_regclass($1)", table) is not None
    await adapter.close()
    await adapter.close()
    assert await db.fetchval("SELECT to_regclass($1)", table) is None


async def test_use_after_close_raises_cache_closed(pg: PostgresAdapter) -> None:
    await pg.set("k", b"v", 60)
    await pg.close()
    with pytest.raises(CacheClosedError):
        await pg.get("k")
