"""Call sites mypy must accept: every adapter satisfies the L2 contract statically.

Checked by `mypy tests/typing` in CI; never executed.
"""

from __future__ import annotations

from cachetier import CacheConfig, CacheManager, L2Adapter, create_with_config
from cachetier.adapters.memory import MemoryAdapter
from cachetier.adapters.postgres import PostgresAdapter
from cachetier.adapters.redis import RedisAdapter
from cachetier.adapters.redis_cluster import RedisClusterAdapter
from cachetier.adapters.sqlite import SQLiteAdapter
from cachetier.guard import GuardedAdapter
from cachetier.protocols import InvalidationSource, LeasingAdapter
from cachetier.selection import SelectingAdapter


def adapters_conform() -> list[L2Adapter]:
    return [
        MemoryAdapter(),
        SQLiteAdapter(":memory:"),
        RedisAdapter.from_url("redis://127.0.0.1:6379/0"),
        RedisClusterAdapter.from_url("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/"),
        PostgresAdapter("postgresql://postgres@127.0.0.1/test"),
        SelectingAdapter(CacheConfig()),
    ]


def cluster_adapter_leases() -> LeasingAdapter:
    return RedisClusterAdapter.from_url("redis+cluster://127.0.0.1:7000/")


def cluster_adapter_has_a_change_feed() -> InvalidationSource:
    return RedisClusterAdapter.from_url("redis+cluster://127.0.0.1:7000/")


def guard_wraps_any_adapter(adapter: L2Adapter) -> GuardedAdapter:
    return GuardedAdapter(adapter, namespace_prefix="ns:")


async def typed_results(cache: CacheManager) -> None:
    loaded: int = await cache.get("k", lambda: 1)
    counted: int | None = await cache.increment("n")
    found: dict[str, object] = await cache.mget(["a"])
    removed: int = await cache.invalidate_by_tags(["t"])
    refreshed: str = await cache.refresh("k", lambda: "v")
    handle_value: float = await cache.cache_aside("k", lambda: 1.5).get()
    del loaded, counted, found, removed, refreshed, handle_value


manager: CacheManager = create_with_config(adapter=MemoryAdapter())


async def typed_async_loaders(cache: CacheManager) -> None:
    async def load_user() -> dict[str, str]:
        return {"name": "J"}

    user: dict[str, str] = await cache.get("user", load_user)
    again: dict[str, str] = await cache.refresh("user", load_user)
    aside: dict[str, str] = await cache.cache_aside("user", load_user).get()
    del user, again, aside
