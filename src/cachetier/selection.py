"""Choosing the L2 backend from the config, and falling back instead of failing.

The choice is made on first use (or `await cache.start()`), because it needs
to reach the servers and `create_cache()` is synchronous. With `adapter="auto"`
each candidate is pinged with a short timeout; an unreachable one is closed,
logged, and the next is tried. The in-process memory adapter is the last
resort, so a cache always starts (and its health check says `degraded`). A
first choice that was built but did not answer is `preferred`: the manager
moves back to it once it answers (`cachetier.move_back`).

An explicit choice (`redis`, `postgres`, `database`, `sqlite`) is obeyed: its
settings are checked when the manager is built (a malformed or unsupported
Redis URL raises `ConfigError` there), and a backend that does not answer at
start is kept, degraded, and used as soon as it answers; never a silent switch
to another store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cachetier.adapters.memory import MemoryAdapter
from cachetier.config import CacheConfig
from cachetier.drivers import require_backend
from cachetier.errors import BackendError, ConfigError
from cachetier.protocols import L2Adapter, L2Entry
from cachetier.redis_urls import check_redis_url, is_cluster_url

logger = logging.getLogger("cachetier")

PING_TIMEOUT = 2.0
FALLBACK_MARK = "fallback"
"""In `selection_reason` whenever the backend in use is not the first choice (health checks report it)."""
_redis_ignored_warned = False


@dataclass(frozen=True, slots=True)
class Candidate:
    """One backend to try: how to build it and the reason reported when it is chosen.

    `driver` names a backend whose driver is an optional extra (`redis`, `postgres`).
    A `required` candidate (an explicit choice) is used even when it does not answer at start.
    """

    name: str
    build: Callable[[], L2Adapter]
    reason: str
    driver: str | None = None
    required: bool = False


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and str(url).split("://", 1)[0] in {"postgres", "postgresql", "postgresql+asyncpg"}


def uses_redis_cluster(config: CacheConfig) -> bool:
    """Cluster mode: `redis_cluster=True`, a ``redis+cluster://`` URL, or ``?cluster=true``."""
    return config.redis_cluster or is_cluster_url(config.redis_url)


def redis_candidate(config: CacheConfig, reason: str, *, required: bool = False) -> Candidate:
    """Redis, or Redis Cluster in cluster mode; a `required` one has its URL checked now (`ConfigError`)."""
    cluster = uses_redis_cluster(config)
    if required and config.redis_url:
        check_redis_url(config.redis_url, cluster=cluster)
    if required and cluster and config.redis_database != 0:
        raise ConfigError("a Redis Cluster has database 0 only (redis_database must be 0)")

    def build() -> L2Adapter:
        require_backend("redis", reason)
        if config.redis_url:
            check_redis_url(config.redis_url, cluster=cluster)
        if cluster:
            from cachetier.adapters.redis_cluster import RedisClusterAdapter

            return RedisClusterAdapter.from_config(config)
        from cachetier.adapters.redis import RedisAdapter

        return RedisAdapter.from_config(config)

    return Candidate("redis-cluster" if cluster else "redis", build, reason, driver="redis", required=required)


def postgres_candidate(config: CacheConfig, reason: str, *, required: bool = False) -> Candidate:
    def build() -> L2Adapter:
        require_backend("postgres", reason)
        from cachetier.adapters.postgres import PostgresAdapter

        return PostgresAdapter.from_config(config)

    return Candidate("postgres", build, reason, driver="postgres", required=required)


def sqlite_candidate(config: CacheConfig, reason: str, *, required: bool = False) -> Candidate:
    def build() -> L2Adapter:
        from cachetier.adapters.sqlite import SQLiteAdapter, default_sqlite_path, path_from_url

        url = config.database_url
        path = path_from_url(url) if url and url.startswith("sqlite:") else default_sqlite_path()
        return SQLiteAdapter(path, table_name=config.table_name, cleanup_interval=config.cleanup_interval)

    return Candidate("sqlite", build, reason, required=required)


def database_candidate(config: CacheConfig, why: str, *, required: bool = False) -> Candidate:
    if is_postgres_url(config.database_url):
        return postgres_candidate(config, f"{why}; DATABASE_URL is PostgreSQL", required=required)
    return sqlite_candidate(config, f"{why}; no PostgreSQL URL, using the embedded SQLite file", required=required)


def candidates(config: CacheConfig) -> list[Candidate]:
    """The backends to try for `config`, best first."""
    choice = config.adapter
    if choice == "memory":
        return [Candidate("memory", MemoryAdapter, "CACHE_ADAPTER=memory")]
    if choice == "sqlite":
        return [sqlite_candidate(config, "CACHE_ADAPTER=sqlite", required=True)]
    if choice == "postgres":
        return [postgres_candidate(config, "CACHE_ADAPTER=postgres", required=True)]
    if choice == "database":
        return [database_candidate(config, "CACHE_ADAPTER=database", required=True)]
    if choice == "redis":
        return [redis_candidate(config, "CACHE_ADAPTER=redis", required=True)]
    # auto
    if config.environment == "production" and config.redis_configured:
        return [
            redis_candidate(config, "auto in production: Redis configured"),
            database_candidate(config, "Redis unreachable"),
        ]
    if config.redis_configured:
        _warn_redis_ignored(config)
    return [database_candidate(config, f"auto in {config.environment}")]


def _warn_redis_ignored(config: CacheConfig) -> None:
    """Say once per process that a configured Redis is not used, and what would use it."""
    global _redis_ignored_warned
    if _redis_ignored_warned:
        return
    _redis_ignored_warned = True
    setting = "REDIS_URL" if config.redis_url else "REDIS_HOST"
    logger.warning(
        "cachetier: %s is set but ignored: adapter=auto uses Redis only in production and the environment is %s; "
        "set CACHE_ENVIRONMENT=production (or CACHE_ADAPTER=redis) to use it",
        setting,
        config.environment,
    )


async def connect_first_reachable(options: Sequence[Candidate]) -> tuple[L2Adapter, str, Candidate | None]:
    """Build and ping each candidate in turn; the memory adapter if none answers.

    Returns the backend, the reason, and the first choice when it was passed over
    because it did not answer (worth trying again later), else None: a first choice
    that could not even be built (a bad URL, a missing driver) never will be.
    """
    failures: list[str] = []
    retry: Candidate | None = None
    for candidate in options:
        adapter: L2Adapter | None = None
        try:
            adapter = candidate.build()
            await asyncio.wait_for(adapter.ping(), PING_TIMEOUT)
        except Exception as exc:
            if candidate.required and adapter is not None:
                # An explicit choice is kept: it reconnects by itself, and until then the manager degrades.
                logger.warning("cachetier: %s backend does not answer at start (%s); degraded", candidate.name, exc)
                return adapter, f"{candidate.reason}; not answering at start ({type(exc).__name__}: {exc})", None
            if candidate.required:
                raise
            failures.append(f"{candidate.name}: {type(exc).__name__}: {exc}")
            logger.warning("cachetier: %s backend unavailable at start (%s); trying the next", candidate.name, exc)
            if adapter is not None:
                if candidate is options[0]:
                    retry = candidate
                await close_quietly(adapter)
            continue
        if failures:
            return adapter, f"{candidate.reason} ({FALLBACK_MARK} after: {'; '.join(failures)})", retry
        return adapter, candidate.reason, None
    logger.warning("cachetier: no configured backend reachable; using the in-process memory adapter")
    return MemoryAdapter(), f"{FALLBACK_MARK} to memory: {'; '.join(failures)}", retry


async def close_quietly(adapter: L2Adapter) -> None:
    """Close a backend that is being given up; a failure to close is only logged (DEBUG)."""
    try:
        await adapter.close()
    except Exception as exc:
        logger.debug("cachetier: closing unused %s failed: %s", adapter.name, exc)


class SelectingAdapter:
    """An `L2Adapter` that picks its real backend on first use and then delegates to it."""

    def __init__(self, config: CacheConfig, options: Sequence[Candidate] | None = None) -> None:
        """Raises `MissingDependencyError` when the first choice's driver is not installed.

        A fallback whose driver is missing is skipped at start like an unreachable one.
        """
        self._options = list(options) if options is not None else candidates(config)
        if self._options and self._options[0].driver is not None:
            require_backend(self._options[0].driver, self._options[0].reason)
        self._adapter: L2Adapter | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self.reason = "not connected yet"
        self.preferred: Candidate | None = None
        """The first choice, once passed over at start because it did not answer; None after `adopt`."""

    @property
    def name(self) -> str:
        return self._adapter.name if self._adapter is not None else "pending"

    @property
    def selected(self) -> L2Adapter | None:
        return self._adapter

    async def resolve(self) -> L2Adapter:
        if self._adapter is not None and not self._closed:
            return self._adapter
        async with self._lock:
            if self._closed:
                raise BackendError("this cache's backend is closed")
            if self._adapter is None:
                self._adapter, self.reason, self.preferred = await connect_first_reachable(self._options)
                logger.info("cachetier: using %s L2 (%s)", self._adapter.name, self.reason)
        return self._adapter

    def adopt(self, adapter: L2Adapter, reason: str) -> None:
        """Record that the manager moved to `adapter` (its first choice, answering again), for `reason` and `close`."""
        self._adapter, self.reason, self.preferred = adapter, reason, None

    async def get(self, key: str) -> bytes | None:
        return await (await self.resolve()).get(key)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        return await (await self.resolve()).mget(keys)

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        await (await self.resolve()).set(key, value, ttl, tags)

    async def mset(self, entries: Sequence[L2Entry]) -> None:
        await (await self.resolve()).mset(entries)

    async def delete(self, key: str) -> bool:
        return await (await self.resolve()).delete(key)

    async def exists(self, key: str) -> bool:
        return await (await self.resolve()).exists(key)

    async def expire(self, key: str, ttl: float) -> bool:
        return await (await self.resolve()).expire(key, ttl)

    async def incr(self, key: str, by: int, ttl: float) -> int:
        return await (await self.resolve()).incr(key, by, ttl)

    async def invalidate_tags(self, tags: Sequence[str]) -> int:
        return await (await self.resolve()).invalidate_tags(tags)

    async def clear(self, prefix: str) -> int:
        return await (await self.resolve()).clear(prefix)

    async def ping(self) -> None:
        await (await self.resolve()).ping()

    async def stats(self) -> dict[str, Any]:
        return await (await self.resolve()).stats()

    async def close(self) -> None:
        """Close the chosen backend; a choice still being made finishes first, so its backend is closed too."""
        async with self._lock:
            self._closed = True
            if self._adapter is not None:
                await self._adapter.close()
