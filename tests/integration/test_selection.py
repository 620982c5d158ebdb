"""Backend selection on real servers: auto rules, the reason reported, and fallback at start."""

from __future__ import annotations

import logging
import os
import pathlib
import socket

import asyncpg
import pytest

from cachetier import CacheConfig, create_cache, create_for_testing, create_health_check


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sqlite_url(tmp_path: pathlib.Path) -> str:
    return f"sqlite:///{tmp_path / 'cache.sqlite3'}"


async def test_auto_in_production_uses_reachable_redis(redis_url: str, sqlite_url: str) -> None:
    config = CacheConfig(environment="production", redis_url=redis_url, database_url=sqlite_url, namespace="sel1")
    async with create_cache(config) as cache:
        assert cache.adapter_type == "redis"
        assert "Redis configured" in cache.selection_reason
        await cache.set("k", 1)
        assert await cache.get("k") == 1
        await cache.clear()


async def test_auto_in_production_falls_back_to_database_when_redis_is_unreachable(
    sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = CacheConfig(
        environment="production",
        redis_url=f"redis://127.0.0.1:{closed_port()}/0",
        database_url=sqlite_url,
        redis_connect_timeout=0.5,
    )
    with caplog.at_level(logging.WARNING, logger="cachetier"):
        async with create_cache(config) as cache:
            assert cache.adapter_type == "sqlite"
            assert "fallback after: redis" in cache.selection_reason
            await cache.set("k", "still works")
            assert await cache.get("k") == "still works"
    assert "redis backend unavailable at start" in caplog.text


async def test_auto_in_development_uses_postgres_when_database_url_is_postgres(postgres_dsn: str) -> None:
    async with create_for_testing(CacheConfig(database_url=postgres_dsn)) as cache:
        assert cache.adapter_type == "postgres"
        await cache.set("k", {"v": 1}, tags=["t"])
        assert await cache.invalidate_by_tag("t") == 1


async def test_auto_in_development_without_urls_uses_embedded_sqlite(sqlite_url: str) -> None:
    async with create_cache(CacheConfig(database_url=sqlite_url)) as cache:
        assert cache.adapter_type == "sqlite"
        assert "embedded SQLite" in cache.selection_reason


async def test_explicit_postgres_that_does_not_answer_is_kept_degraded_not_swapped_for_sqlite() -> None:
    config = CacheConfig(adapter="postgres", database_url=f"postgresql://postgres@127.0.0.1:{closed_port()}/test")
    async with create_cache(config) as cache:
        assert cache.adapter_type == "postgres"
        assert "not answering at start" in cache.selection_reason
        assert (await create_health_check(cache)())["status"] == "degraded"
        await cache.set("k", "kept in L1")
        assert await cache.get("k") == "kept in L1"


async def test_nothing_reachable_in_auto_falls_back_to_memory() -> None:
    config = CacheConfig(
        environment="production",
        redis_url=f"redis://127.0.0.1:{closed_port()}/0",
        database_url=f"postgresql://postgres@127.0.0.1:{closed_port()}/test",
    )
    async with create_cache(config) as cache:
        assert cache.adapter_type == "memory"
        assert cache.selection_reason.startswith("fallback to memory")


async def test_environment_variables_drive_selection(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    monkeypatch.setenv("CACHE_ADAPTER", "database")
    monkeypatch.setenv("CACHE_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("CACHE_DEFAULT_TTL", "42")
    async with create_cache() as cache:
        assert cache.adapter_type == "sqlite"
        assert cache.config.default_ttl == 42


async def test_create_for_testing_drops_its_postgres_table_on_close(postgres_dsn: str) -> None:
    cache = create_for_testing(CacheConfig(adapter="postgres", database_url=postgres_dsn))
    await cache.set("k", 1)
    table = cache.config.table_name
    connection = await asyncpg.connect(postgres_dsn)
    try:
        assert await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
        await cache.close()
        assert not await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
    finally:
        await connection.close()


async def test_create_for_testing_removes_its_sqlite_file_on_close() -> None:
    cache = create_for_testing()
    await cache.set("k", 1)
    url = cache.config.database_url
    assert url is not None
    path = url.removeprefix("sqlite:///")
    assert os.path.exists(path)
    await cache.close()
    assert not os.path.exists(path)


async def test_create_for_testing_on_redis_clears_only_its_namespace(redis_url: str) -> None:
    async with create_for_testing(CacheConfig(adapter="redis", redis_url=redis_url)) as other:
        await other.set("survivor", 1)
        cache = create_for_testing(CacheConfig(adapter="redis", redis_url=redis_url))
        await cache.set("k", 1)
        await cache.close()
        assert await other.get("survivor") == 1
