"""`@cache_method` on methods and `@cache_class` on classes (memory L2), counting the underlying calls.

Pins what part the instance or class plays in the key (none for `self` unless it has `__cache_key__`;
the class for classmethods), `invalidate`/`refresh` on bound methods, the wrapper's signature and
docstring, and which methods `@cache_class` caches (public ones, not excluded or `@no_cache`).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any, cast

import pytest

from cachetier import CacheManager
from cachetier.errors import ConfigError
from cachetier.integrations.decorators import cache_class, cache_method, no_cache, set_default_cache
from decorator_support import Calls, fixture_cache  # noqa: F401 (fixture_cache: the `cache` fixture)

# -- methods ----------------------------------------------------------------------------


class UserService:
    calls = Calls()

    def __init__(self, region: str) -> None:
        self.region = region

    @cache_method()  # the default cache, which the `services` fixture sets
    async def get_user(self, user_id: int) -> dict[str, Any]:
        """Load one user."""
        self.calls(self.region, user_id)
        return {"id": user_id}


class RegionalService(UserService):
    def __cache_key__(self) -> str:
        return self.region


@pytest.fixture
def services(cache: CacheManager) -> Iterator[None]:
    set_default_cache(cache)
    UserService.calls = Calls()
    yield
    set_default_cache(None)


@pytest.mark.usefixtures("services")
async def test_instances_share_results_because_self_is_not_part_of_the_key() -> None:
    assert await UserService("eu").get_user(1) == {"id": 1}
    assert await UserService("us").get_user(1) == {"id": 1}
    assert UserService.calls.count == 1


@pytest.mark.usefixtures("services")
async def test_cache_key_method_makes_instances_distinct() -> None:
    await RegionalService("eu").get_user(1)
    await RegionalService("us").get_user(1)
    await RegionalService("eu").get_user(1)
    assert UserService.calls.args == [("eu", 1), ("us", 1)]


@pytest.mark.usefixtures("services")
async def test_bound_methods_offer_invalidate_and_refresh() -> None:
    service = UserService("eu")
    await service.get_user(1)
    assert await service.get_user.invalidate(1) is True
    await service.get_user(1)
    assert await UserService.get_user.invalidate(service, 1) is True
    assert await UserService.get_user(service, 1) == {"id": 1}
    assert await service.get_user.refresh(user_id=1) == {"id": 1}
    assert UserService.calls.count == 4


async def test_classmethods_and_staticmethods_are_cached_in_either_decorator_order(cache: CacheManager) -> None:
    calls = Calls()

    class Factory:
        @cache_method(cache=cache)
        @classmethod
        async def build(cls, size: int) -> str:
            calls("build", cls.__name__, size)
            return f"{cls.__name__}:{size}"

        @classmethod
        @cache_method(cache=cache)
        async def make(cls, size: int) -> str:
            calls("make", cls.__name__, size)
            return f"{cls.__name__}:{size}"

        @cache_method(cache=cache)
        @staticmethod
        async def scale(size: int) -> int:
            calls("scale", size)
            return size * 10

        @staticmethod
        @cache_method(cache=cache)
        async def shrink(size: int) -> int:
            calls("shrink", size)
            return size // 10

    class Special(Factory):
        pass

    assert await Factory.build(1) == "Factory:1"
    assert await Factory().build(1) == "Factory:1"
    assert await Special.build(1) == "Special:1"  # the class is part of the key
    assert await Factory.make(1) == "Factory:1"
    assert await Special.make(1) == "Special:1"
    assert await Factory.make(1) == "Factory:1"
    assert await Factory.scale(2) == 20
    assert await cast(Any, Factory()).scale(2) == 20  # mypy would bind `size`: see decorator_types
    assert await Factory.shrink(20) == 2
    assert await cast(Any, Factory()).shrink(20) == 2
    assert calls.args == [
        ("build", "Factory", 1),
        ("build", "Special", 1),
        ("make", "Factory", 1),
        ("make", "Special", 1),
        ("scale", 2),
        ("shrink", 20),
    ]
    assert await Special.build.invalidate(1) is True
    assert await Factory.scale.invalidate(2) is True
    assert await cast(Any, Factory()).shrink.invalidate(20) is True
    assert await Factory().make.invalidate(1) is True


async def test_the_wrapper_keeps_signature_name_docstring_and_coroutine_nature(cache: CacheManager) -> None:
    @cache_method(cache=cache)
    async def fetch(item_id: int, *, fresh: bool = False) -> str:
        """Fetch an item."""
        return str(item_id)

    assert str(inspect.signature(fetch)) == "(item_id: 'int', *, fresh: 'bool' = False) -> 'str'"
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch an item."
    assert inspect.iscoroutinefunction(fetch)
    assert str(inspect.signature(UserService("x").get_user)) == "(user_id: 'int') -> 'dict[str, Any]'"
    assert UserService.get_user.__doc__ == "Load one user."


# -- cache_class ---------------------------------------------------------------------------


async def test_cache_class_caches_public_methods_except_excluded_and_no_cache(cache: CacheManager) -> None:
    calls = Calls()

    @cache_class(cache=cache, namespace="users", default_ttl=300, exclude=["save"])
    class Users:
        async def get(self, user_id: int) -> int:
            calls("get", user_id)
            return user_id

        async def save(self, user_id: int) -> int:
            calls("save", user_id)
            return user_id

        @no_cache
        async def now(self) -> int:
            calls("now")
            return 0

        async def _private(self, x: int) -> int:
            calls("_private", x)
            return x

        @cache_method(cache=cache, key="custom:{x}")
        async def custom(self, x: int) -> int:
            calls("custom", x)
            return x

        @property
        def label(self) -> str:
            return "users"

        @staticmethod
        async def helper(x: int) -> int:
            calls("helper", x)
            return x

    users = Users()
    for _ in range(2):
        await users.get(1)
        await users.save(1)
        await users.now()
        await users._private(1)
        await users.custom(1)
        await Users.helper(1)
    assert calls.args.count(("get", 1)) == 1
    assert calls.args.count(("save", 1)) == 2
    assert calls.args.count(("now",)) == 2
    assert calls.args.count(("_private", 1)) == 2
    assert calls.args.count(("custom", 1)) == 1
    assert calls.args.count(("helper", 1)) == 1
    assert await cache.get("custom:1") == 1
    assert users.label == "users"
    assert await cast(Any, users.get).invalidate(1) is True  # cache_class cannot change static types


async def test_cache_class_can_include_private_methods(cache: CacheManager) -> None:
    calls = Calls()

    @cache_class(cache=cache, include_private=True)
    class Repo:
        async def _load(self, x: int) -> int:
            calls(x)
            return x

    await Repo()._load(1)
    await Repo()._load(1)
    assert calls.count == 1


def test_cache_class_rejects_excluding_a_method_it_does_not_define() -> None:
    with pytest.raises(ConfigError, match="sav"):

        @cache_class(exclude=["sav"])
        class Repo:
            async def save(self) -> None: ...
