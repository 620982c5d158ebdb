"""Constructors: from the environment, from code, isolated for tests; and the health check."""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from cachetier.codecs import Codec
from cachetier.config import CacheConfig
from cachetier.drivers import require_backend
from cachetier.manager import CacheManager
from cachetier.protocols import L2Adapter
from cachetier.selection import Candidate, SelectingAdapter, is_postgres_url, redis_candidate

logger = logging.getLogger("cachetier")

HealthCheck = Callable[[], Coroutine[Any, Any, dict[str, Any]]]
"""A coroutine function, so `SyncCache.run(health_check())` works as well as `await`."""


def create_cache(config: CacheConfig | None = None, **overrides: Any) -> CacheManager:
    """A manager configured from the environment (`CacheConfig.from_env`), `overrides` winning.

    The backend is chosen and connected on first use, or by `await cache.start()`
    / `async with create_cache() as cache:`.
    """
    if config is None:
        config = CacheConfig.from_env(**overrides)
    elif overrides:
        config = config.replace(**overrides)
    return CacheManager(SelectingAdapter(config), config)


def create_with_config(
    config: CacheConfig | None = None,
    *,
    adapter: L2Adapter | None = None,
    codec: Codec | None = None,
    **overrides: Any,
) -> CacheManager:
    """A manager from code: `config` (defaults, not the environment) plus `overrides`.

    Pass `adapter` to use a backend you built yourself instead of selection.
    """
    config = (config or CacheConfig()).replace(**overrides) if overrides else (config or CacheConfig())
    if adapter is not None:
        return CacheManager(adapter, config, codec=codec, reason="adapter given explicitly")
    return CacheManager(SelectingAdapter(config), config, codec=codec)


def create_for_testing(config: CacheConfig | None = None, **overrides: Any) -> CacheManager:
    """An isolated manager: its own namespace and table (or SQLite file), removed on close.

    The backend follows `config.adapter` (from the environment when `config` is
    omitted); `auto` uses PostgreSQL when a PostgreSQL URL is configured, else
    a temporary SQLite file. Nothing outside its namespace is touched.
    """
    base = config if config is not None else CacheConfig.from_env()
    run = uuid.uuid4().hex[:12]
    settings = {"environment": "testing", "namespace": f"test_{run}", "table_name": f"cachetier_test_{run}"}
    settings.update(overrides)
    test_config = base.replace(**settings)
    sqlite_dir: tempfile.TemporaryDirectory[str] | None = None
    if test_config.adapter in {"auto", "database", "sqlite"} and not is_postgres_url(test_config.database_url):
        sqlite_dir = tempfile.TemporaryDirectory(prefix="cachetier-test-")
        url = f"sqlite:///{os.path.join(sqlite_dir.name, 'cache.sqlite3')}"
        test_config = test_config.replace(database_url=url, adapter="sqlite")
    options = _testing_candidates(test_config)
    adapter = SelectingAdapter(test_config, options)

    async def cleanup() -> None:
        if adapter.selected is not None:
            try:
                await adapter.selected.clear(f"{test_config.namespace}:")
            except Exception as exc:
                logger.warning("cachetier: test namespace cleanup failed: %s", exc)
        await adapter.close()
        if sqlite_dir is not None:
            sqlite_dir.cleanup()

    return CacheManager(adapter, test_config, on_close=cleanup)


def _testing_candidates(config: CacheConfig) -> list[Candidate] | None:
    """Like normal selection, except a PostgreSQL table is dropped when the cache closes."""
    if config.adapter in {"auto", "database", "postgres"} and is_postgres_url(config.database_url):

        def build() -> L2Adapter:
            require_backend("postgres", "testing: isolated PostgreSQL table")
            from cachetier.adapters.postgres import PostgresAdapter

            return PostgresAdapter.from_config(config, drop_on_close=True)

        return [Candidate("postgres", build, "testing: isolated PostgreSQL table", driver="postgres")]
    if config.adapter == "redis":
        return [redis_candidate(config, "testing: isolated Redis namespace")]
    return None


def create_health_check(cache: CacheManager) -> HealthCheck:
    """An async callable for health endpoints.

    It answers `healthy` when L2 responds, `degraded` when only L1 serves
    (requests still succeed), and `unhealthy` when the cache is closed.
    """

    async def health_check() -> dict[str, Any]:
        try:
            healthy = await cache.is_healthy()
            stats = await cache.get_stats()
            status = "healthy" if healthy else "degraded"
            figures = {"hits": stats.hits, "misses": stats.misses, "hit_rate": stats.hit_rate}
        except Exception as exc:
            logger.warning("cachetier: health check failed: %s", exc)
            status, figures = "unhealthy", {"hits": 0, "misses": 0, "hit_rate": 0.0}
        return {
            "status": status,
            "adapter": cache.adapter_type,
            "stats": figures,
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        }

    return health_check
