"""Bad input raises a `CacheError` at the call and never reaches, or disables, L2 (issue 10).

Before: a key with a lone surrogate ("bad\\ud800") passed validation, failed in
every backend's driver, was queued for replay and left L2 disabled for good; a
tag with one raised `UnicodeEncodeError`; `namespace="{t"` wrote over a Redis
tag index.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hostile_backends import BACKENDS, Backend, open_backend
from redis.asyncio import Redis

from cachetier import CacheManager
from cachetier.errors import CacheError, ConfigError, InvalidKeyError, InvalidTagError
from cachetier.keys import MAX_KEY_BYTES, MAX_TAG_BYTES, check_key, check_namespace, check_tags

SURROGATE = "bad\ud800"

BAD_KEYS: list[Any] = [
    SURROGATE,
    "\udfff",
    "",
    "nul\x00",
    "k" * (MAX_KEY_BYTES + 1),
    "é" * (MAX_KEY_BYTES // 2 + 1),
    5,
    None,
    b"key",
]
BAD_TAG_LISTS: list[Any] = [
    ["t\ud800"], ["t\x00"], ["t\x1f"], ["x" * (MAX_TAG_BYTES + 1)], [5], [""], "single", 5, b"tags",
]  # fmt: skip
BAD_TAGS: list[Any] = ["t\ud800", "", "t\x00", 5, None]
BAD_NAMESPACES: list[Any] = ["{t", "{k", "a:b", "", "x" * 65, "ns\ud800", "n\x00", "ns ", "ns}", 5]
BAD_TTLS: list[Any] = [0, -1, math.nan, math.inf, "5", True, 1e20]
BAD_BYS: list[Any] = ["1", 1.5, True, None]


class _Unencodable:
    pass


def _circular() -> list[Any]:
    items: list[Any] = []
    items.append(items)
    return items


BAD_VALUES: list[Any] = [_Unencodable(), {"k": _Unencodable()}, "v\ud800", 2**70, _circular(), {1: {2, (3,)}}]


def loader() -> int:
    return 1


def hostile_calls(cache: CacheManager) -> list[tuple[str, Callable[[], Awaitable[Any]]]]:
    """(label, call) for every public method with every kind of bad input it takes."""
    calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
    counter = itertools.count()

    def fresh(kind: str) -> str:
        """A key no earlier call touched (a failed call must not change what the next one meets)."""
        return f"fresh-{kind}-{next(counter)}"

    def add(label: str, call: Callable[[], Awaitable[Any]]) -> None:
        calls.append((label, call))

    def sync(function: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            return function()

        return run

    for key in BAD_KEYS:
        add(f"get({key!r:.20})", lambda key=key: cache.get(key))
        add(f"get({key!r:.20}, loader)", lambda key=key: cache.get(key, loader))
        add(f"get({key!r:.20}, default=)", lambda key=key: cache.get(key, default=0))
        add(f"get_local({key!r:.20})", sync(lambda key=key: cache.get_local(key)))
        add(f"exists({key!r:.20})", lambda key=key: cache.exists(key))
        add(f"mget([{key!r:.20}])", lambda key=key: cache.mget([key]))
        add(f"mget(['ok', {key!r:.20}])", lambda key=key: cache.mget(["ok", key]))
        add(f"set({key!r:.20})", lambda key=key: cache.set(key, 1))
        add(f"mset({{{key!r:.20}: 1}})", lambda key=key: cache.mset([("ok", 1), (key, 1)]))
        add(f"refresh({key!r:.20})", lambda key=key: cache.refresh(key, loader))
        add(f"increment({key!r:.20})", lambda key=key: cache.increment(key))
        add(f"decrement({key!r:.20})", lambda key=key: cache.decrement(key))
        add(f"expire({key!r:.20})", lambda key=key: cache.expire(key, 10))
        add(f"delete({key!r:.20})", lambda key=key: cache.delete(key))
        add(f"cache_aside({key!r:.20})", sync(lambda key=key: cache.cache_aside(key, loader)))
    add("mset([5])", lambda: cache.mset([5]))  # type: ignore[list-item]
    add("mset([('k',)])", lambda: cache.mset([("k",)]))  # type: ignore[list-item]
    add("mset([('k', 1, 5)])", lambda: cache.mset([("k", 1, 5)]))  # type: ignore[list-item]
    for tags in BAD_TAG_LISTS:
        add(f"set(tags={tags!r:.20})", lambda tags=tags: cache.set(fresh("set"), 1, tags=tags))
        add(f"get(loader, tags={tags!r:.20})", lambda tags=tags: cache.get(fresh("get"), loader, tags=tags))
        add(f"mset(tags={tags!r:.20})", lambda tags=tags: cache.mset({fresh("mset"): 1}, tags=tags))
        add(f"mset(item tags={tags!r:.20})", lambda tags=tags: cache.mset([(fresh("mset"), 1, {"tags": tags})]))
        add(f"refresh(tags={tags!r:.20})", lambda tags=tags: cache.refresh(fresh("refresh"), loader, tags=tags))
        add(f"invalidate_by_tags({tags!r:.20})", lambda tags=tags: cache.invalidate_by_tags(tags))
        add(f"cache_aside(tags={tags!r:.20})", sync(lambda tags=tags: cache.cache_aside("k", loader, tags=tags)))
    for tag in BAD_TAGS:
        add(f"invalidate_by_tag({tag!r:.20})", lambda tag=tag: cache.invalidate_by_tag(tag))
    for ns in BAD_NAMESPACES:
        add(f"get(namespace={ns!r:.20})", lambda ns=ns: cache.get("k", namespace=ns))
        add(f"get(loader, namespace={ns!r:.20})", lambda ns=ns: cache.get("k", loader, namespace=ns))
        add(f"get_local(namespace={ns!r:.20})", sync(lambda ns=ns: cache.get_local("k", namespace=ns)))
        add(f"exists(namespace={ns!r:.20})", lambda ns=ns: cache.exists("k", namespace=ns))
        add(f"mget(namespace={ns!r:.20})", lambda ns=ns: cache.mget(["k"], namespace=ns))
        add(f"set(namespace={ns!r:.20})", lambda ns=ns: cache.set("k", 1, namespace=ns))
        add(f"mset(namespace={ns!r:.20})", lambda ns=ns: cache.mset({"k": 1}, namespace=ns))
        add(f"refresh(namespace={ns!r:.20})", lambda ns=ns: cache.refresh("k", loader, namespace=ns))
        add(f"increment(namespace={ns!r:.20})", lambda ns=ns: cache.increment("k", namespace=ns))
        add(f"expire(namespace={ns!r:.20})", lambda ns=ns: cache.expire("k", 10, namespace=ns))
        add(f"delete(namespace={ns!r:.20})", lambda ns=ns: cache.delete("k", namespace=ns))
        add(f"clear(namespace={ns!r:.20})", lambda ns=ns: cache.clear(namespace=ns))
    for ttl in BAD_TTLS:
        add(f"set(ttl={ttl!r})", lambda ttl=ttl: cache.set(fresh("set"), 1, ttl=ttl))
        add(f"get(loader, ttl={ttl!r})", lambda ttl=ttl: cache.get(fresh("get"), loader, ttl=ttl))
        add(f"mset(ttl={ttl!r})", lambda ttl=ttl: cache.mset({fresh("mset"): 1}, ttl=ttl))
        add(f"mset(item ttl={ttl!r})", lambda ttl=ttl: cache.mset([(fresh("mset"), 1, {"ttl": ttl})]))
        add(f"refresh(ttl={ttl!r})", lambda ttl=ttl: cache.refresh(fresh("refresh"), loader, ttl=ttl))
        add(f"increment(ttl={ttl!r})", lambda ttl=ttl: cache.increment(fresh("counter"), ttl=ttl))
        add(f"expire(seconds={ttl!r})", lambda ttl=ttl: cache.expire("k", ttl))
    for by in BAD_BYS:
        add(f"increment(by={by!r})", lambda by=by: cache.increment("counter", by))
        add(f"decrement(by={by!r})", lambda by=by: cache.decrement("counter", by))
    for value in BAD_VALUES:
        label = type(value).__name__
        add(f"set(value={label})", lambda value=value: cache.set(fresh("set"), value))
        add(f"mset(value={label})", lambda value=value: cache.mset({"ok": 1, fresh("mset"): value}))
        add(f"get(loader returning {label})", lambda value=value: cache.get(fresh("get"), lambda: value))
        add(f"refresh(loader returning {label})", lambda value=value: cache.refresh(fresh("refresh"), lambda: value))
    return calls


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    # L1 off: every call that gets past validation reaches L2, where a bad name would show.
    async for opened in open_backend(request.param, request, tmp_path, l1_enabled=False, failure_threshold=1):
        yield opened


async def test_every_public_method_raises_a_cache_error_for_bad_input_and_l2_stays_usable(backend: Backend) -> None:
    cache = backend.cache
    wrong: list[str] = []
    for label, call in hostile_calls(cache):
        try:
            await call()
        except CacheError:
            pass
        except Exception as exc:
            wrong.append(f"{label}: {type(exc).__name__}: {exc}"[:160])
        else:
            wrong.append(f"{label}: returned without raising")
    assert wrong == [], f"{len(wrong)} calls on {backend.name} did not raise a CacheError:\n" + "\n".join(wrong)
    stats = await cache.get_stats()
    assert (stats.l2.errors, stats.l2.dropped_writes, stats.l2.circuit) == (0, 0, "closed")
    assert await cache.is_healthy()
    await cache.set("after", {"still": "works"}, tags=["t"])
    assert await cache.get("after") == {"still": "works"}  # L1 is off: this came from L2
    assert await cache.mget(["after"]) == {"after": {"still": "works"}}
    assert await cache.invalidate_by_tag("t") == 1
    assert await cache.get("after") is None
    assert (await cache.get_stats()).l2.errors == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda cache: cache.mget(5),
        lambda cache: cache.mget(None),
        lambda cache: cache.mset(5),
        lambda cache: cache.get("fresh-loader", 5),
    ],
    ids=["mget(5)", "mget(None)", "mset(5)", "get(key, loader=5)"],
)
@pytest.mark.parametrize("backend", ["memory"], indirect=True)
async def test_containers_and_loaders_of_the_wrong_type_raise_cache_errors(
    backend: Backend, call: Callable[[CacheManager], Awaitable[Any]]
) -> None:
    with pytest.raises(CacheError):
        await call(backend.cache)


@pytest.mark.parametrize("key", [SURROGATE, "\udfff", "ok\ud83d\ude00\ud800"])
def test_keys_with_lone_surrogates_raise_invalid_key_error(key: str) -> None:
    with pytest.raises(InvalidKeyError, match="surrogate"):
        check_key(key)


def test_keys_pass_when_valid_utf8_within_the_byte_limit() -> None:
    assert check_key("ключ-🔑") == "ключ-🔑"
    assert check_key("k" * MAX_KEY_BYTES) == "k" * MAX_KEY_BYTES
    assert check_key("é" * (MAX_KEY_BYTES // 2)) == "é" * (MAX_KEY_BYTES // 2)
    with pytest.raises(InvalidKeyError, match="1024"):
        check_key("é" * (MAX_KEY_BYTES // 2) + "x")


@pytest.mark.parametrize("tags", [["t\ud800"], ["ok", "\udc80"]])
def test_tags_with_lone_surrogates_raise_invalid_tag_error(tags: list[str]) -> None:
    with pytest.raises(InvalidTagError, match="surrogate"):
        check_tags(tags)


def test_tags_that_are_not_a_list_of_str_raise_invalid_tag_error() -> None:
    for tags in (5, b"tags", "tag", object()):
        with pytest.raises(InvalidTagError):
            check_tags(tags)  # type: ignore[arg-type]
    assert check_tags(iter(["a", "b", "a"])) == ("a", "b")


@pytest.mark.parametrize("namespace", BAD_NAMESPACES)
def test_namespaces_outside_the_safe_charset_raise_invalid_key_error(namespace: Any) -> None:
    with pytest.raises(InvalidKeyError, match="namespace"):
        check_namespace(namespace)


def test_namespaces_of_the_safe_charset_pass() -> None:
    for namespace in ("cachetier", "examples.flask.users", "test_0a1b", "a-b", "x" * 64):
        assert check_namespace(namespace) == namespace


@pytest.mark.parametrize("namespace", ["{t", "a:b", "", "ns\ud800", "x" * 65])
def test_a_config_namespace_outside_the_safe_charset_raises_config_error(namespace: str) -> None:
    from cachetier.config import CacheConfig

    with pytest.raises(ConfigError, match="namespace"):
        CacheConfig(namespace=namespace)


async def test_a_namespace_spelling_a_redis_tag_index_is_refused_and_the_index_survives(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str
) -> None:
    async for opened in open_backend("redis", request, tmp_path):
        cache, ns = opened.cache, opened.namespace
        await cache.set("page", "v", tags=["pages"])
        index, tag_list = "{t:" + ns + ":pages}", "{k:" + ns + ":page}"
        raw = Redis.from_url(redis_url)
        try:
            assert await raw.type(index) == b"zset"
            with pytest.raises(InvalidKeyError, match="namespace"):
                await cache.set(ns + ":pages}", "overwritten", namespace="{t")  # would be the index's name
            with pytest.raises(InvalidKeyError, match="namespace"):
                await cache.set(ns + ":page}", "overwritten", namespace="{k")  # the key's tag list
            with pytest.raises(InvalidKeyError, match="namespace"):
                await cache.delete(ns + ":pages}", namespace="{t")
            assert await raw.type(index) == b"zset"
            assert await raw.type(tag_list) == b"set"
        finally:
            await raw.aclose()
        assert await cache.invalidate_by_tag("pages") == 1
        assert await cache.get("page") is None
        assert (await cache.get_stats()).l2.errors == 0
