"""`@cache_method` on plain async functions (memory L2), counting the underlying calls.

Pins what is memoised (a cached None, never an exception, one call for concurrent misses), the keys
and tags it writes, `invalidate` and `refresh`, how arguments are encoded (dataclasses by value), and
the errors for arguments, templates and tags it cannot use. Methods and `@cache_class` are in
test_decorator_methods.py; sync functions and the choice of cache in test_decorator_sync_and_default_cache.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import xxhash

from cachetier import CacheManager, SerializationError
from cachetier.errors import ConfigError
from cachetier.integrations.decorators import CacheKeyError, cache_method
from decorator_support import Calls, fixture_cache  # noqa: F401 (fixture_cache: the `cache` fixture)

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
