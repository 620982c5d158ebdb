"""Construction as the seed spells it, the default namespace, the REDIS_URL warning, stats units, health."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from cachetier import CacheConfig, ConfigError, create_cache, create_health_check, create_with_config
from cachetier import selection as selection_module
from cachetier.adapters.memory import MemoryAdapter
from cachetier.factory import app_namespace
from servers import RedisServer, free_port


async def test_create_with_config_takes_the_seeds_shape(redis_url: str) -> None:
    port = int(redis_url.rsplit(":", 1)[1].split("/", 1)[0])
    cache = create_with_config(
        adapter="redis",
        default_ttl=7200,
        enable_compression=True,
        redis={"host": "127.0.0.1", "port": port, "password": None, "db": 0},
        namespace="seedshape",
    )
    async with cache:
        assert cache.adapter_type == "redis"
        assert (cache.config.default_ttl, cache.config.enable_compression) == (7200, True)
        assert (cache.config.redis_host, cache.config.redis_port, cache.config.redis_database) == ("127.0.0.1", port, 0)
        await cache.set("k", "v")
        assert await cache.get("k") == "v"
        await cache.clear()


async def test_create_with_config_database_group_names_the_url_and_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'seed.sqlite3'}"
    async with create_with_config(adapter="database", database={"url": url, "table": "seed_cache"}) as cache:
        assert cache.adapter_type == "sqlite"
        assert (cache.config.database_url, cache.config.table_name) == (url, "seed_cache")
        await cache.set("k", 1)
        assert await cache.get("k") == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"adapter": "mongo"}, "adapter must be one of"),
        ({"adapter": 42}, "adapter must be one of"),
        ({"adapter": "redis", "l2": MemoryAdapter()}, "choose one"),
        ({"redis": {"hostname": "x"}}, "hostname"),
        ({"database": {"uri": "x"}}, "uri"),
        ({"redis": "redis://x"}, "must be a mapping"),
        ({"default_ttl_seconds": 5}, "default_ttl_seconds"),
    ],
)
def test_create_with_config_rejects_anything_else_at_construction(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        create_with_config(**kwargs)  # type: ignore[arg-type]  # wrong on purpose


async def test_an_adapter_object_goes_in_l2_or_adapter() -> None:
    for cache in (create_with_config(l2=MemoryAdapter()), create_with_config(adapter=MemoryAdapter())):
        async with cache:
            assert cache.adapter_type == "memory"
            assert cache.selection_reason == "adapter given explicitly"


def test_the_default_namespace_is_the_calling_apps_package() -> None:
    assert app_namespace() == "test_construction"  # this module, imported by pytest as a top-level module
    assert create_with_config(l2=MemoryAdapter()).config.namespace == "test_construction"
    assert create_with_config(l2=MemoryAdapter(), namespace="shop").config.namespace == "shop"
    assert CacheConfig().namespace == "cachetier"  # a config built by hand keeps the fixed default


def test_two_apps_on_one_sqlite_file_do_not_share_entries(tmp_path: Path) -> None:
    database = tmp_path / "shared.sqlite3"
    for app in ("shop", "blog"):
        package = tmp_path / app
        package.mkdir()
        source = [
            "from cachetier import create_cache",
            "async def run():",
            "    async with create_cache() as cache:",
            '        before = await cache.get("page:/")',
            f'        await cache.set("page:/", "{app}")',
            "        return cache.config.namespace, before",
        ]
        (package / "__init__.py").write_text("\n".join(source) + "\n")
    env = {"DATABASE_URL": f"sqlite:///{database}", "PATH": "/usr/bin:/bin"}
    seen = []
    for app in ("shop", "blog"):
        code = f"import asyncio, {app}; print(asyncio.run({app}.run()))"
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == 0, result.stderr
        seen.append(result.stdout.strip())
    assert seen == ["('shop', None)", "('blog', None)"]  # blog does not get shop's page


def test_redis_url_ignored_in_development_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    selection_module._redis_ignored_warned = False
    config = CacheConfig(redis_url="redis://127.0.0.1:6379/0", environment="development")
    with caplog.at_level(logging.WARNING, logger="cachetier"):
        selection_module.candidates(config)
        selection_module.candidates(config)
    warnings = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(warnings) == 1
    assert "REDIS_URL" in warnings[0]
    assert "CACHE_ENVIRONMENT=production" in warnings[0]


async def test_stats_read_as_the_seeds_mapping_and_as_attributes_with_both_units() -> None:
    async with create_with_config(l2=MemoryAdapter()) as cache:
        await cache.set("a", 1)
        for key in ("a", "a", "a", "absent"):
            await cache.get(key)
        stats = await cache.get_stats()
    assert stats["combined"]["hit_rate"] == stats.combined.hit_rate == stats.hit_rate == 75.0
    assert stats["combined"]["hit_ratio"] == stats.combined.hit_ratio == stats.hit_ratio == 0.75
    assert stats["l1"]["hit_rate"] == stats.l1.hit_rate == 75.0
    assert stats.l1["hits"] == 3
    assert dict(stats) == stats.to_dict()


async def test_health_check_is_degraded_on_a_fallback_backend(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    sqlite = f"sqlite:///{tmp_path / 'fallback.sqlite3'}"
    # auto in production picks Redis when configured, and falls back to the database when it is unreachable
    config = CacheConfig(environment="production", redis_url=dead, database_url=sqlite)
    async with create_with_config(config) as cache:
        report = await create_health_check(cache)()
    assert (report["status"], report["adapter"]) == ("degraded", "sqlite")
    assert "fallback" in report["reason"]


async def test_health_check_is_degraded_while_the_breaker_is_open() -> None:
    with RedisServer() as server:
        cache = create_with_config(adapter="redis", redis_url=server.url, failure_threshold=1, recovery_timeout=30)
        async with cache:
            check = create_health_check(cache)
            assert (await check())["status"] == "healthy"
            server.stop()
            await cache.get("k")  # fails once: the breaker opens
            report = await check()
    assert report["status"] == "degraded"
    assert "does not answer" in report["reason"] or "breaker" in report["reason"]


async def test_create_cache_keeps_the_environments_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_NAMESPACE", "fromenv")
    monkeypatch.setenv("CACHE_ADAPTER", "memory")
    cache = create_cache()
    assert cache.config.namespace == "fromenv"
    await cache.close()
