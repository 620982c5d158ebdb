"""`@cache_method` / `@cache_class` against real managers (memory L2), counting the underlying calls."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, cast

import orjson
import pytest
import xxhash

from cachetier import CacheManager, SerializationError, create_with_config
from cachetier.adapters.memory import MemoryAdapter
from cachetier.errors import ConfigError
from cachetier.integrations.decorators import (
    CacheKeyError,
    cache_class,
    cache_method,
    no_cache,
    set_default_cache,
)
from cachetier.sync import SyncCache


@pytest.fixture
async def cache() -> AsyncIterator[CacheManager]:
    manager = create_with_config(adapter=MemoryAdapter(), namespace="decorators")
    try:
        yield manager
    finally:
        await manager.close()


@pytest.fixture
def sync_cache() -> Iterator[SyncCache]:
    with SyncCache(create_with_config(adapter=MemoryAdapter(), namespace="syncdecorators")) as facade:
        yield facade


class Calls:
    """Records the underlying calls a cached function made."""

    def __init__(self) -> None:
        self.args: list[Any] = []

    def __call__(self, *args: Any) -> None:
        self.args.append(args)

    @property
    def count(self) -> int:
        return len(self.args)


# -- basic memoisation -----------------------------------------------------------


async def test_second_call_is_served_from_the_cache(cache: CacheManager) -> None:
    calls = Calls()

    @cache_method(cache=cache, ttl=60)
    async def square(x: int) -> int:
        calls(x)
        return x * x

    assert await square(3) == 9
    assert await square(3) == 9
    assert calls.count == 1


async def test_different_arguments_use_different_entries(cache: CacheManager) -> None:
    calls = Calls()

    @cache_method(cache=cache)
    async def echo(x: Any) -> Any:
        calls(x)
        return x

    assert [await echo(v) for v in (1, "1", 1.5, True, None, [1], {"a": 1})] == [1, "1", 1.5, True, None, [1], {"a": 1}]
    assert calls.count == 7


async def test_keyword_positional_and_defaulted_calls_share_one_entry(cache: CacheManager) -> None:
    calls = Calls()

    @cache_method(cache=cache)
    async def page(user_id: int, size: int = 10, *, order: str = "asc") -> str:
        calls(user_id, size, order)
        return f"{user_id}/{size}/{order}"

    assert await page(1) == "1/10/asc"
    assert await page(user_id=1) == "1/10/asc"
    assert await page(1, 10) == "1/10/asc"
    assert await page(1, size=10, order="asc") == "1/10/asc"
    assert calls.count == 1
    assert await page(1, order="desc") == "1/10/desc"
    assert calls.count == 2


async def test_a_cached_none_is_served_without_calling_again(cache: CacheManager) -> None:
    calls = Calls()

    @cache_method(cache=cache)
    async def nothing(x: int) -> int | None:
        calls(x)
        return None

    assert await nothing(1) is None
    assert await nothing(1) is None
    assert calls.count == 1


async def test_an_exception_is_not_cached(cache: CacheManager) -> None:
    calls = Calls()

    @cache_method(cache=cache)
    async def flaky(x: int) -> int:
        calls(x)
        if calls.count == 1:
            raise RuntimeError("first call fails")
        return x

    with pytest.raises(RuntimeError, match="first call fails"):
        await flaky(1)
    assert await flaky(1) == 1
    assert calls.count == 2


async def test_concurrent_misses_call_the_function_once(cache: CacheManager) -> None:
    calls = Calls()
    release = asyncio.Event()

    @cache_method(cache=cache)
    async def slow(x: int) -> int:
        calls(x)
        await release.wait()
        return x + 1

    tasks = [asyncio.create_task(slow(5)) for _ in range(10)]
    await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.gather(*tasks) == [6] * 10
    assert calls.count == 1


# -- keys, tags, invalidate and refresh --------------------------------------------


async def test_generated_keys_are_namespace_qualname_and_hash_of_sorted_json(cache: CacheManager) -> None:
    @cache_method(cache=cache, namespace="reports")
    async def total(x: int, scale: float = 1.0) -> float:
        return x * scale

    await total(2)
    digest = xxhash.xxh3_128_hexdigest(orjson.dumps({"scale": 1.0, "x": 2}, option=orjson.OPT_SORT_KEYS))
    assert await cache.get(f"reports:{total.__qualname__}:{digest}") == 2.0


async def test_closures_from_one_factory_keep_apart_by_what_they_captured(cache: CacheManager) -> None:
    def scaled_by(factor: int, client: object) -> Any:
        @cache_method(cache=cache)
        async def scaled(x: int) -> int:
            assert client is not None  # captured but not encodable: left out of the key
            return x * factor

        return scaled

    double, triple, double_again = scaled_by(2, object()), scaled_by(3, object()), scaled_by(2, object())
    assert double.__qualname__ == triple.__qualname__
    assert (await double(5), await triple(5)) == (10, 15)
    assert await double_again(5) == 10  # same captured factor: the same entry is fine


async def test_functions_without_captured_values_keep_the_plain_prefix(cache: CacheManager) -> None:
    @cache_method(cache=cache, namespace="reports")
    async def plain(x: int) -> int:
        return x

    await plain(1)
    digest = xxhash.xxh3_128_hexdigest(orjson.dumps({"x": 1}, option=orjson.OPT_SORT_KEYS))
    assert await cache.get(f"reports:{plain.__qualname__}:{digest}") == 1


async def test_key_callable_receives_the_call_arguments(cache: CacheManager) -> None:
    seen: list[tuple[Any, ...]] = []

    def make_key(x: int, *, unit: str = "m") -> str:
        seen.append((x, unit))
        return f"manual:{x}{unit}"

    @cache_method(cache=cache, key=make_key)
    async def manual(x: int, *, unit: str = "m") -> int:
        return x * 2

    assert await manual(4, unit="km") == 8
    assert await cache.get("manual:4km") == 8
    assert seen == [(4, "km")]


async def test_key_template_is_formatted_with_the_bound_arguments(cache: CacheManager) -> None:
    @cache_method(cache=cache, key="user:{user_id}:{fields}")
    async def load_user(user_id: int, fields: str = "all") -> dict[str, Any]:
        return {"id": user_id}

    await load_user(7)
    assert await cache.get("user:7:all") == {"id": 7}


async def test_tag_templates_let_invalidate_by_tag_remove_the_entries(cache: CacheManager) -> None:
    calls = Calls()

    @cache_method(cache=cache, tags=["user:{user_id}", "users"])
    async def profile(user_id: int) -> str:
        calls(user_id)
        return f"profile {user_id}"

    await profile(1)
    await profile(2)
    assert await cache.invalidate_by_tag("user:1") == 1
    await profile(1)
    await profile(2)
    assert calls.args == [(1,), (2,), (1,)]
    await cache.invalidate_by_tag("users")
    await profile(2)
    assert calls.count == 4


async def test_tags_may_be_a_callable_taking_the_arguments(cache: CacheManager) -> None:
    calls = Calls()

    @cache_method(cache=cache, tags=lambda team, user: [f"team:{team}", f"user:{user}"])
    async def membership(team: int, user: int) -> bool:
        calls(team, user)
        return True

    await membership(1, user=2)
    await cache.invalidate_by_tag("user:2")
    await membership(1, 2)
    assert calls.count == 2


async def test_invalidate_removes_the_entry_for_those_arguments_only(cache: CacheManager) -> None:
    calls = Calls()

    @cache_method(cache=cache)
    async def double(x: int, y: int = 0) -> int:
        calls(x)
        return 2 * x

    await double(1)
    await double(2)
    assert await double.invalidate(x=1, y=0) is True
    assert await double.invalidate(1) is False
    await double(1)
    await double(2)
    assert calls.args == [(1,), (2,), (1,)]


async def test_refresh_calls_again_and_stores_the_new_result(cache: CacheManager) -> None:
    version = 0

    @cache_method(cache=cache)
    async def current(name: str) -> str:
        return f"{name}-v{version}"

    assert await current("a") == "a-v0"
    version = 1
    assert await current("a") == "a-v0"
    assert await current.refresh("a") == "a-v1"
    assert await current("a") == "a-v1"


async def test_an_unencodable_argument_raises_naming_the_parameter(cache: CacheManager) -> None:
    @cache_method(cache=cache)
    async def lookup(name: str, opts: object) -> str:
        return name

    with pytest.raises(CacheKeyError, match=r"argument 'opts' \(object\)") as info:
        await lookup("a", object())
    assert isinstance(info.value, SerializationError)


async def test_a_template_naming_no_parameter_fails_at_decoration() -> None:
    with pytest.raises(ConfigError, match="usr_id"):

        @cache_method(key="user:{usr_id}")
        async def load(user_id: int) -> int:
            return user_id


async def test_a_single_string_for_tags_is_rejected() -> None:
    with pytest.raises(ConfigError, match="tags"):

        @cache_method(tags="users")
        async def load(user_id: int) -> int:
            return user_id


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


# -- sync functions --------------------------------------------------------------------


def test_sync_function_with_a_sync_cache(sync_cache: SyncCache) -> None:
    calls = Calls()

    @cache_method(cache=sync_cache, tags=["n:{n}"])
    def fib(n: int) -> int:
        calls(n)
        a, b = 0, 1
        for _ in range(n):
            a, b = b, a + b
        return a

    assert fib(20) == 6765
    assert fib(20) == 6765
    assert calls.count == 1
    assert fib.invalidate(20) is True
    assert fib.invalidate(20) is False
    assert fib.refresh(20) == 6765
    assert calls.count == 2
    assert fib(19) == 4181
    assert sync_cache.invalidate_by_tag("n:19") == 1
    assert fib(19) == 4181
    assert fib(20) == 6765
    assert calls.count == 4
    assert not inspect.iscoroutinefunction(fib)


def test_recursive_cached_sync_functions_do_not_exhaust_threads(sync_cache: SyncCache) -> None:
    calls = Calls()

    @cache_method(cache=sync_cache)
    def fib(n: int) -> int:
        calls(n)
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    assert fib(30) == 832040  # finishes: nested loaders run in the calling thread
    assert fib(30) == 832040


async def test_a_result_is_cached_even_when_computing_it_cached_another_call(cache: CacheManager) -> None:
    calls = Calls()

    @cache_method(cache=cache)
    async def inner(x: int) -> int:
        return x

    @cache_method(cache=cache)
    async def outer(x: int) -> int:
        calls(x)
        return await inner(x) + 1

    await outer(1)
    await outer(1)
    assert calls.count == 1


def test_concurrent_sync_callers_run_the_function_once(sync_cache: SyncCache) -> None:
    calls = Calls()

    @cache_method(cache=sync_cache)
    def slow(x: int) -> int:
        calls(x)
        time.sleep(0.2)
        return x

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(slow(3))) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [3] * 5
    assert calls.count == 1


async def test_sync_function_given_a_cache_manager_fails_at_decoration(cache: CacheManager) -> None:
    with pytest.raises(TypeError, match="SyncCache"):

        @cache_method(cache=cache)
        def compute(x: int) -> int:
            return x


def test_sync_function_whose_cache_factory_returns_a_manager_fails_at_call() -> None:
    manager = create_with_config(adapter=MemoryAdapter())

    @cache_method(cache=lambda: manager)
    def compute(x: int) -> int:
        return x

    with pytest.raises(TypeError, match="SyncCache"):
        compute(1)
    asyncio.run(manager.close())


async def test_async_function_can_use_a_sync_caches_manager() -> None:
    facade = SyncCache(create_with_config(adapter=MemoryAdapter()))
    calls = Calls()

    @cache_method(cache=facade)
    async def value(x: int) -> int:
        calls(x)
        return x

    try:
        assert await value(1) == 1
        assert await value(1) == 1
        assert calls.count == 1
    finally:
        await asyncio.to_thread(facade.close)


# -- resolving the cache lazily -------------------------------------------------------


async def test_a_cache_factory_is_called_on_first_call_not_at_decoration(cache: CacheManager) -> None:
    made = Calls()

    def factory() -> CacheManager:
        made()
        return cache

    @cache_method(cache=factory)
    async def one(x: int) -> int:
        return x

    assert made.count == 0
    await one(1)
    await one(2)
    assert made.count == 1


async def test_a_call_before_any_default_cache_is_set_raises_config_error(cache: CacheManager) -> None:
    set_default_cache(None)

    @cache_method(tags=["lazy"])
    async def one(x: int) -> int:
        return x

    with pytest.raises(ConfigError, match=r"set_default_cache"):
        await one(1)
    set_default_cache(cache)  # bound lazily: the same function works once the app sets its cache
    try:
        assert await one(1) == 1
        assert await cache.invalidate_by_tag("lazy") == 1
    finally:
        set_default_cache(None)


async def test_set_default_cache_is_used_when_no_cache_is_given(cache: CacheManager) -> None:
    calls = Calls()

    @cache_method(tags=["d"])
    async def one(x: int) -> int:
        calls(x)
        return x

    set_default_cache(cache)
    try:
        await one(1)
        await one(1)
        assert calls.count == 1
        assert await cache.invalidate_by_tag("d") == 1
    finally:
        set_default_cache(None)


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


@dataclass(frozen=True)
class Point:
    x: int
    y: int


async def test_dataclass_arguments_are_encoded_by_value(cache: CacheManager) -> None:
    calls = Calls()

    @cache_method(cache=cache)
    async def norm(p: Point) -> int:
        calls(p)
        return abs(p.x) + abs(p.y)

    assert await norm(Point(1, 2)) == 3
    assert await norm(Point(1, 2)) == 3
    assert await norm(Point(2, 1)) == 3
    assert calls.count == 2
