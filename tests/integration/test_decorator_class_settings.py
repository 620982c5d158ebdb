"""`@cache_class` settings reaching `@cache_method` methods, seed-style key generators and `key_by`, on real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import redis.asyncio as redis

from cachetier import CacheConfig, CacheManager, ConfigError, create_for_testing
from cachetier.integrations.decorators import cache_class, cache_method
from redis_fixtures import fixture_raw  # noqa: F401 (a fixture, requested by name)


@pytest.fixture
async def cache(redis_url: str) -> AsyncIterator[CacheManager]:
    manager = create_for_testing(CacheConfig(adapter="redis", redis_url=redis_url))
    yield manager
    await manager.close()


async def _keys(raw: redis.Redis, cache: CacheManager) -> list[str]:
    found = [key.decode() async for key in raw.scan_iter(match=f"{cache.config.namespace}:*", count=1000)]
    return sorted(found)


async def test_cache_class_namespace_ttl_and_tags_reach_methods_decorated_with_cache_method(
    cache: CacheManager, raw: redis.Redis
) -> None:
    calls: list[str] = []

    @cache_class(cache=cache, namespace="userService", default_ttl=3600, tags=["users"])
    class UserService:
        @cache_method(tags=["user:{user_id}"])
        async def get_user(self, user_id: int) -> dict[str, int]:
            calls.append("get_user")
            return {"id": user_id}

        async def list_users(self) -> list[int]:
            calls.append("list_users")
            return [1]

    service = UserService()
    await service.get_user(1)
    await service.list_users()
    ns = cache.config.namespace
    keys = await _keys(raw, cache)
    assert len(keys) == 2
    assert all(key.startswith(f"{ns}:userService:") for key in keys), keys
    for key in keys:
        assert 3500 < await raw.ttl(key) <= 3600
    assert await cache.invalidate_by_tag("users") == 2  # the class's tag, on both methods
    await service.get_user(1)
    await service.list_users()
    assert await cache.invalidate_by_tag("user:1") == 1  # the method's own tag stays
    assert calls == ["get_user", "list_users", "get_user", "list_users"]


async def test_a_method_keeps_its_own_settings_over_the_classs(cache: CacheManager, raw: redis.Redis) -> None:
    @cache_class(cache=cache, namespace="outer", default_ttl=3600)
    class Service:
        @cache_method(namespace="inner", ttl=60)
        async def value(self) -> int:
            return 1

    await Service().value()
    [key] = await _keys(raw, cache)
    assert key.startswith(f"{cache.config.namespace}:inner:")
    assert 0 < await raw.ttl(key) <= 60


async def test_key_generator_receives_the_arguments_without_self(cache: CacheManager) -> None:
    calls: list[tuple[str, int]] = []

    class Search:
        @cache_method(cache=cache, key_generator=lambda query, limit=10: f"search:{query}:{limit}")
        async def search(self, query: str, limit: int = 10) -> list[str]:
            calls.append((query, limit))
            return [query] * limit

        @cache_method(cache=cache, tags=lambda query: [f"q:{query}"])
        async def count(self, query: str) -> int:
            return len(query)

    assert await Search().search("a", 2) == ["a", "a"]
    assert await Search().search("a", 2) == ["a", "a"]
    assert await cache.get("search:a:2") == ["a", "a"]
    await Search().count("abc")
    assert await cache.invalidate_by_tag("q:abc") == 1
    assert calls == [("a", 2)]


def test_key_and_key_generator_together_are_rejected() -> None:
    with pytest.raises(ConfigError, match="key_generator"):
        cache_method(key="a", key_generator=lambda: "b")


class TenantService:
    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.calls = 0

    async def _load(self, user_id: int) -> str:
        self.calls += 1
        return f"{self.tenant_id}:{user_id}"


async def test_key_by_puts_the_instance_attribute_into_the_key(cache: CacheManager) -> None:
    @cache_class(cache=cache, key_by="tenant_id")
    class Users(TenantService):
        async def get(self, user_id: int) -> str:
            return await self._load(user_id)

    acme, globex, acme_again = Users("acme"), Users("globex"), Users("acme")
    assert await acme.get(1) == "acme:1"
    assert await globex.get(1) == "globex:1"  # shared with acme without key_by
    assert await acme_again.get(1) == "acme:1"
    assert (acme.calls, globex.calls, acme_again.calls) == (1, 1, 0)
    assert await cast(Any, acme.get).invalidate(1) is True
    assert await globex.get(1) == "globex:1"
    assert globex.calls == 1


async def test_key_by_may_be_a_callable_and_a_missing_attribute_is_a_config_error(cache: CacheManager) -> None:
    class Users(TenantService):
        @cache_method(cache=cache, key_by=lambda service: service.tenant_id.upper())
        async def get(self, user_id: int) -> str:
            return await self._load(user_id)

        @cache_method(cache=cache, key_by="region")
        async def broken(self, user_id: int) -> str:
            return await self._load(user_id)

    assert await Users("a").get(1) == "a:1"
    assert await Users("A").get(1) == "a:1"  # "a".upper() == "A".upper(): one entry
    with pytest.raises(ConfigError, match="region"):
        await Users("a").broken(1)


def test_key_by_with_an_explicit_key_is_rejected_at_decoration() -> None:
    with pytest.raises(ConfigError, match="key_by"):

        @cache_method(key="user:{user_id}", key_by="tenant_id")
        async def get(user_id: int) -> int:
            return user_id


def test_cache_class_rejects_a_single_string_for_tags() -> None:
    with pytest.raises(ConfigError, match="tags"):
        cache_class(tags="users")
