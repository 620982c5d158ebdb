"""Every code block of the seed's README (the TypeScript cache manager), ported to Python, on SQLite, Redis, PostgreSQL.

Each test is one README section, in its order, written as a user coming from the
seed would write it. The Python names are in the README table "Coming from the
TypeScript cache".
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from backend_pairs import BACKENDS, backend_config
from cachetier import (
    CacheConfig,
    CacheManager,
    CachePatterns,
    cache_class,
    cache_method,
    create_for_testing,
    create_health_check,
    create_with_config,
)
from cachetier.integrations.decorators import set_default_cache


@pytest.fixture(params=BACKENDS)
def config(request: pytest.FixtureRequest) -> CacheConfig:
    return backend_config(request, request.param)


@pytest.fixture
async def cache(config: CacheConfig) -> AsyncIterator[CacheManager]:
    manager = create_for_testing(config)
    yield manager
    await manager.close()


@dataclasses.dataclass(frozen=True)
class User:
    id: int
    name: str


class Database:
    """Stands in for the application's database; counts queries."""

    def __init__(self) -> None:
        self.queries = 0

    async def get_user(self, user_id: int) -> User:
        self.queries += 1
        return User(user_id, f"user {user_id}")


# -- Basic usage ---------------------------------------------------------------------------------


async def test_get_with_a_loader_set_with_ttl_and_tags_delete_exists_expire(cache: CacheManager) -> None:
    db = Database()
    # const user = await cache.get('user:123', () => db.getUser(123), { ttl: 3600, tags: ['users'] });
    # (TypeScript's get<User> is `type=User`: the value comes back as a User from every tier)
    user = await cache.get("user:123", lambda: db.get_user(123), ttl=3600, tags=["users"], type=User)
    assert user == User(123, "user 123")
    assert await cache.get("user:123", type=User) == user
    assert await cache.get("user:123") == {"id": 123, "name": "user 123"}  # without a type: as JSON gives it
    assert db.queries == 1
    # await cache.set('user:123', user, { ttl: 3600, tags: ['users', 'user:123'] });
    await cache.set("user:124", {"id": 124, "name": "John"}, ttl=3600, tags=["users", "user:124"])
    assert await cache.get("user:124") == {"id": 124, "name": "John"}
    assert await cache.exists("user:124") is True
    assert await cache.expire("user:124", 60) is True
    assert await cache.delete("user:124") is True
    assert await cache.exists("user:124") is False
    assert await cache.get("user:124") is None


async def test_counters_increment_and_decrement(cache: CacheManager) -> None:
    assert await cache.increment("page-views") == 1
    assert await cache.increment("page-views", 5) == 6
    assert await cache.decrement("page-views") == 5
    assert await cache.decrement("page-views", 2) == 3


async def test_mget_and_mset(cache: CacheManager) -> None:
    await cache.mset({"a": 1, "b": 2})
    await cache.mset([("c", 3), ("d", 4, {"ttl": 60, "tags": ["letters"]})])
    assert await cache.mget(["a", "b", "c", "d", "missing"]) == {"a": 1, "b": 2, "c": 3, "d": 4}
    # await cache.mset([{ key: 'e', value: 5, options: { ttl: 60, tags: ['letters'] } }, { key: 'f', value: 6 }]);
    await cache.mset([{"key": "e", "value": 5, "options": {"ttl": 60, "tags": ["letters"]}}, {"key": "f", "value": 6}])
    assert await cache.mget(["e", "f"]) == {"e": 5, "f": 6}
    assert await cache.invalidate_by_tag("letters") == 2


async def test_tag_invalidation_and_clear(cache: CacheManager) -> None:
    await cache.set("user:1", 1, tags=["users", "user:1"])
    await cache.set("user:2", 2, tags=["users", "user:2"])
    await cache.set("post:1", 3, tags=["posts"])
    await cache.set("other", 4)
    assert await cache.invalidate_by_tag("user:1") == 1
    assert await cache.invalidate_by_tags(["users", "posts"]) == 2
    assert await cache.mget(["user:1", "user:2", "post:1", "other"]) == {"other": 4}
    assert await cache.clear() == 1
    assert await cache.get("other") is None
    # Tags belong to the cache: an entry stored under another key namespace is reached too.
    await cache.set("report", 5, namespace="reports", tags=["users"])
    assert await cache.invalidate_by_tag("users") == 1
    assert await cache.get("report", namespace="reports") is None


# -- Monitoring ----------------------------------------------------------------------------------


async def test_stats_health_and_adapter_type(cache: CacheManager, config: CacheConfig) -> None:
    await cache.set("k", "v")
    await cache.get("k")
    await cache.get("absent")
    stats = await cache.get_stats()
    # console.log(`Hit rate: ${stats.combined.hitRate}%`);
    assert stats["combined"]["hit_rate"] == stats.combined.hit_rate == 50.0
    assert stats.combined.hit_ratio == 0.5
    assert await cache.is_healthy() is True
    assert cache.adapter_type == config.adapter


# -- Refresh and cache-aside ---------------------------------------------------------------------


async def test_refresh_and_cache_aside(cache: CacheManager) -> None:
    db = Database()
    aside = cache.cache_aside("user:7", lambda: db.get_user(7), ttl=600, tags=["users"], type=User)
    assert await aside.get() == User(7, "user 7")
    assert await aside.get() == User(7, "user 7")
    assert db.queries == 1
    assert await cache.refresh("user:7", lambda: db.get_user(7), ttl=600, tags=["users"], type=User) == User(
        7, "user 7"
    )
    assert db.queries == 2
    assert await aside.invalidate() is True


# -- Configuration -------------------------------------------------------------------------------


async def test_create_with_config_in_the_seeds_shape(config: CacheConfig, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:10]
    groups: dict[str, Any] = {}
    if config.adapter == "redis":
        # createWithConfig({ adapter: 'redis', redis: { host, port, password, db } })
        port = int(str(config.redis_url).rsplit(":", 1)[1].split("/", 1)[0])
        groups["redis"] = {"host": "127.0.0.1", "port": port, "password": None, "db": 0}
    else:
        url = config.database_url if config.adapter == "postgres" else f"sqlite:///{tmp_path / 'seed.sqlite3'}"
        groups["database"] = {"url": url, "table": f"seed_{run}"}
    cache = create_with_config(
        adapter=config.adapter, default_ttl=7200, enable_compression=True, namespace=f"seed_{run}", **groups
    )
    try:
        async with cache:
            assert cache.adapter_type == config.adapter
            await cache.set("big", "x" * 5000, tags=["t"])
            assert await cache.get("big") == "x" * 5000
            assert cache.config.default_ttl == 7200
            await cache.clear()
    finally:
        if config.adapter == "postgres":
            connection = await asyncpg.connect(config.database_url)
            await connection.execute(f'DROP TABLE IF EXISTS "seed_{run}"')
            await connection.close()


async def test_create_for_testing_is_isolated_and_removed_on_close(config: CacheConfig) -> None:
    first, second = create_for_testing(config), create_for_testing(config)
    await first.set("k", "first")
    assert await second.get("k") is None  # namespaces of their own
    assert first.config.namespace != second.config.namespace
    await first.close()
    await second.close()


async def test_health_check(cache: CacheManager, config: CacheConfig) -> None:
    health_check = create_health_check(cache)
    report = await health_check()
    assert report["status"] == "healthy"
    assert report["adapter"] == config.adapter
    assert {"hits", "misses", "hit_rate", "hit_ratio"} <= set(report["stats"])


# -- Decorators --------------------------------------------------------------------------------


@cache_class(namespace="userService", default_ttl=3600)
class UserService:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.searches = 0

    @cache_method(ttl=300, tags=["users"])
    async def get_user(self, user_id: int) -> User:
        return await self.db.get_user(user_id)

    @cache_method(key_generator=lambda query, limit: f"search:{query}:{limit}")
    async def search_users(self, query: str, limit: int) -> list[User]:
        self.searches += 1
        return [User(i, query) for i in range(limit)]


@pytest.fixture
def default_cache(cache: CacheManager) -> Iterator[CacheManager]:
    set_default_cache(cache)
    yield cache
    set_default_cache(None)


async def test_cache_class_and_cache_method(default_cache: CacheManager) -> None:
    db = Database()
    service = UserService(db)
    assert await service.get_user(1) == User(1, "user 1")  # typed from the return annotation
    assert await service.get_user(1) == User(1, "user 1")
    assert db.queries == 1
    assert await service.search_users("ann", 2) == [User(0, "ann"), User(1, "ann")]
    assert await service.search_users("ann", 2) == [User(0, "ann"), User(1, "ann")]
    assert service.searches == 1
    assert await default_cache.exists("search:ann:2")  # the generator's key, as the seed names it
    assert await default_cache.invalidate_by_tag("users") == 1
    await service.get_user(1)
    assert db.queries == 2


# -- Patterns ----------------------------------------------------------------------------------


async def test_cache_patterns(cache: CacheManager) -> None:
    db = Database()
    saved: list[User] = []

    async def save(user: User) -> None:
        saved.append(user)

    async with CachePatterns(cache) as patterns:
        aside = patterns.cache_aside("user:1", lambda: db.get_user(1), ttl=300, type=User)
        assert await aside.get() == User(1, "user 1")
        for _ in range(2):
            assert await patterns.read_through("user:2", lambda: db.get_user(2), ttl=300, type=User) == User(
                2, "user 2"
            )
        assert db.queries == 2
        new = User(3, "Ann")
        assert await patterns.write_through("user:3", new, save, ttl=300) == new
        assert saved == [new]
        hot = await patterns.refresh_ahead("hot", lambda: db.get_user(4), ttl=60, refresh_ratio=0.5, type=User)
        assert hot == User(4, "user 4")
