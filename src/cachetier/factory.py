"""Constructors: from the environment, from code, isolated for tests; and the health check."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import re
import sys
import tempfile
import uuid
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, Final, get_args

from cachetier.codecs import Codec
from cachetier.config import AdapterChoice, CacheConfig
from cachetier.drivers import require_backend
from cachetier.errors import ConfigError
from cachetier.manager import CacheManager
from cachetier.protocols import L2Adapter
from cachetier.selection import FALLBACK_MARK, Candidate, SelectingAdapter, is_postgres_url, redis_candidate

logger = logging.getLogger("cachetier")

HealthCheck = Callable[[], Coroutine[Any, Any, dict[str, Any]]]
"""A coroutine function, so `SyncCache.run(health_check())` works as well as `await`."""


_FIELDS: Final = frozenset(field.name for field in dataclasses.fields(CacheConfig))
_ADAPTER_NAMES: Final = get_args(AdapterChoice)
_ADAPTER_METHODS: Final = ("get", "mget", "set", "mset", "delete", "exists", "expire", "incr", "invalidate_tags")
# The seed's `redis: {...}` and `database: {...}` groups, by their names there, to CacheConfig fields.
_REDIS_GROUP: Final = {
    "url": "redis_url",
    "host": "redis_host",
    "port": "redis_port",
    "password": "redis_password",
    "db": "redis_database",
    "database": "redis_database",
    "cluster": "redis_cluster",
}
_DATABASE_GROUP: Final = {"url": "database_url", "table": "table_name", "table_name": "table_name"}
_NOT_NAMESPACE: Final = re.compile(r"[^A-Za-z0-9_.-]")


def app_namespace() -> str:
    """The default namespace: the top-level package of the code that called into cachetier.

    `myapp.web.factory` calling `create_cache()` gives `myapp`; a script run as
    `__main__` gives its file name (`worker.py` gives `worker`); with neither
    (`python -c`, a REPL) it is `cachetier`. So two apps sharing one Redis or
    SQLite file keep apart unless they choose the same namespace.
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module != "cachetier" and not module.startswith("cachetier."):
            break
        frame = frame.f_back
    if frame is None:
        return "cachetier"
    module = str(frame.f_globals.get("__name__", ""))
    if module == "__main__":
        script = frame.f_globals.get("__file__")
        module = Path(script).stem if isinstance(script, str) else ""
    name = _NOT_NAMESPACE.sub("_", module.split(".", 1)[0])[:64]
    return name or "cachetier"


def create_cache(config: CacheConfig | None = None, **overrides: Any) -> CacheManager:
    """A manager configured from the environment (`CacheConfig.from_env`), `overrides` winning.

    Without `CACHE_NAMESPACE` or `namespace=`, the namespace is `app_namespace()`.
    The backend is chosen and connected on first use, or by `await cache.start()`
    / `async with create_cache() as cache:`.
    """
    if config is None:
        config = CacheConfig.from_env(defaults={"namespace": app_namespace()}, **overrides)
    elif overrides:
        config = config.replace(**overrides)
    return CacheManager(SelectingAdapter(config), config)


def create_with_config(
    config: CacheConfig | None = None,
    *,
    adapter: AdapterChoice | L2Adapter | None = None,
    l2: L2Adapter | None = None,
    codec: Codec | None = None,
    redis: Mapping[str, Any] | None = None,
    database: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> CacheManager:
    """A manager from code (not the environment): the seed's `createWithConfig({...})`.

    `create_with_config(adapter="redis", default_ttl=7200, enable_compression=True,
    redis={"host": ..., "port": ..., "password": ..., "db": ...})`, or
    `database={"url": ..., "table": ...}`; other keywords are `CacheConfig`
    fields. `adapter` is a backend name (`auto`, `redis`, `database`,
    `postgres`, `sqlite`, `memory`); a backend object you built goes in `l2=`
    (an object given as `adapter=` is accepted too). `config` is the base
    (`CacheConfig()` with `namespace=app_namespace()` when omitted).

    Raises:
        ConfigError: an unknown adapter name, setting or group key, or an
            adapter that is neither a name nor an `L2Adapter`.
    """
    settings = {**_group("redis", redis, _REDIS_GROUP), **_group("database", database, _DATABASE_GROUP), **overrides}
    unknown = set(settings) - _FIELDS
    if unknown:
        raise ConfigError(f"create_with_config: no setting named {sorted(unknown)} (see CacheConfig)")
    if isinstance(adapter, str):
        if l2 is not None:
            raise ConfigError(f"create_with_config: adapter={adapter!r} names a backend and l2= gives one; choose one")
        settings["adapter"] = adapter
    elif adapter is not None:
        if l2 is not None:
            raise ConfigError("create_with_config: give the backend object once, as l2=")
        l2 = adapter
    if config is None:
        config = CacheConfig(namespace=settings.pop("namespace", None) or app_namespace())
    config = config.replace(**settings) if settings else config
    if l2 is not None:
        return CacheManager(_check_adapter(l2), config, codec=codec, reason="adapter given explicitly")
    return CacheManager(SelectingAdapter(config), config, codec=codec)


def _group(name: str, group: Mapping[str, Any] | None, fields: Mapping[str, str]) -> dict[str, Any]:
    if group is None:
        return {}
    if not isinstance(group, Mapping):
        raise ConfigError(f"create_with_config: {name}= must be a mapping with keys {sorted(fields)}")
    unknown = set(group) - set(fields)
    if unknown:
        raise ConfigError(f"create_with_config: {name}= has no {sorted(unknown)}; known keys: {sorted(fields)}")
    return {fields[key]: value for key, value in group.items()}


def _check_adapter(adapter: object) -> L2Adapter:
    client = _adapter_for_client(adapter)
    if client is not None:
        return client
    if isinstance(adapter, str) or not all(callable(getattr(adapter, m, None)) for m in _ADAPTER_METHODS):
        raise ConfigError(
            f"adapter must be one of {', '.join(_ADAPTER_NAMES)} or an L2Adapter object (as l2=), got {adapter!r:.80}"
        )
    return adapter  # type: ignore[return-value]  # checked structurally above


def _adapter_for_client(client: object) -> L2Adapter | None:
    """The adapter for a redis-py asyncio client given as the backend (`Redis` or `RedisCluster`), else None.

    The caller keeps ownership of the client: closing the cache leaves it open.
    """
    module = type(client).__module__
    if not module.startswith("redis."):
        return None
    if not module.startswith("redis.asyncio"):
        raise ConfigError(f"cachetier needs a redis.asyncio client, got {module}.{type(client).__name__}")
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

    if isinstance(client, RedisCluster):
        from cachetier.adapters.redis_cluster import RedisClusterAdapter

        return RedisClusterAdapter(client)
    if isinstance(client, Redis):
        from cachetier.adapters.redis import RedisAdapter

        return RedisAdapter(client)
    return None


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

    It answers `healthy` when the configured L2 responds; `degraded` when
    requests still succeed but not as configured: L2 does not answer (only L1
    serves), its circuit breaker is not closed, or the cache runs on a
    fallback backend because the configured one was unreachable at start;
    and `unhealthy` when the cache is closed. `reason` says why. `hit_rate`
    is in percent, `hit_ratio` the same as a fraction.
    """

    async def health_check() -> dict[str, Any]:
        try:
            healthy = await cache.is_healthy()
            stats = await cache.get_stats()
            reason = cache.selection_reason
            if not healthy:
                status, reason = "degraded", f"L2 ({cache.adapter_type}) does not answer; serving from L1"
            elif stats.l2.circuit != "closed":
                status, reason = "degraded", f"circuit breaker {stats.l2.circuit}"
            elif FALLBACK_MARK in reason:
                status = "degraded"
            else:
                status = "healthy"
            figures = {
                "hits": stats.hits,
                "misses": stats.misses,
                "hit_rate": stats.hit_rate,
                "hit_ratio": stats.hit_ratio,
            }
        except Exception as exc:
            logger.warning("cachetier: health check failed: %s", exc)
            status, reason = "unhealthy", f"{type(exc).__name__}: {exc}"
            figures = {"hits": 0, "misses": 0, "hit_rate": 0.0, "hit_ratio": 0.0}
        return {
            "status": status,
            "adapter": cache.adapter_type,
            "reason": reason,
            "stats": figures,
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        }

    return health_check
