"""RedisAdapter against the machine's Redis (shared: every test works under its own prefix)
and against throwaway servers from `servers` (faults, auth, TLS, Sentinel)."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from cachetier.adapters.redis import RedisAdapter
from cachetier.config import CacheConfig
from cachetier.errors import BackendError, ConfigError, NotAnIntegerError
from cachetier.protocols import L2Adapter, L2Entry
from cachetier.testing import L2ContractSuite
from redis_fixtures import fixture_adapter, fixture_prefix, fixture_raw  # noqa: F401 (fixtures, requested by name)


class TestRedisAdapterContract(L2ContractSuite):
    @pytest.fixture
    async def adapter(self, redis_url: str, prefix: str) -> AsyncIterator[L2Adapter]:
        adapter = RedisAdapter.from_url(redis_url)
        yield adapter
        await adapter.clear(prefix)
        await adapter.close()


@pytest.mark.parametrize("purge_chunk", [None, 3], ids=["default-chunks", "3-key-chunks"])
async def test_tagged_writes_finished_before_an_invalidation_are_gone_after_it(
    adapter: RedisAdapter, prefix: str, purge_chunk: int | None
) -> None:
    tag, other = prefix + "hot", prefix + "other"
    if purge_chunk is not None:  # invalidations overlap and finish each other's purges
        adapter.purge_chunk = purge_chunk
    finished: list[str] = []
    writing = True
    counter = itertools.count()

    async def writer() -> None:
        while writing:
            n = next(counter)
            key = f"{prefix}k{n}"  # every write has its own key, so "gone" cannot be undone later
            if n % 3:
                await adapter.set(key, b"v", 60, (tag, other))
            else:
                await adapter.mset([L2Entry(key, b"v", 60, (tag,)), L2Entry(key + "-b", b"v", 60, (other, tag))])
                finished.append(key + "-b")
            finished.append(key)

    async def invalidator() -> int:
        checked = 0
        for _ in range(40):
            await asyncio.sleep(random.uniform(0, 0.01))
            before = list(finished)
            await adapter.invalidate_tags([tag])
            survivors = [key for key, value in zip(before, await adapter.mget(before), strict=True) if value]
            assert survivors == []
            checked += len(before)
        return checked

    writers = [asyncio.create_task(writer()) for _ in range(8)]
    try:
        checked = await asyncio.gather(invalidator(), invalidator())
    finally:
        writing = False
        await asyncio.gather(*writers)
    assert sum(checked) > 500  # the check saw real traffic
    await adapter.invalidate_tags([tag])
    assert await adapter.mget(finished) == [None] * len(finished)


async def test_tag_index_keeps_only_live_members_and_expires(adapter: RedisAdapter, raw: Redis, prefix: str) -> None:
    tag = prefix + "t"
    index = "{t:" + tag + "}"
    for start in range(0, 2000, 500):
        # 1 s: long enough that a loaded machine writes all 2,000 before the first expires
        await adapter.mset([L2Entry(f"{prefix}{i}", b"v", 1.0, (tag,)) for i in range(start, start + 500)])
    assert await raw.zcard(index) == 2000
    await asyncio.sleep(1.2)
    await adapter.set(prefix + "last", b"v", 0.5, (tag,))
    assert await raw.zcard(index) == 1
    assert 0 < await raw.pttl(index) <= 500
    await asyncio.sleep(0.7)
    assert await raw.exists(index, "{k:" + prefix + "last}") == 0


async def test_rewriting_a_key_moves_it_out_of_old_tag_indexes(adapter: RedisAdapter, raw: Redis, prefix: str) -> None:
    old, new = prefix + "old", prefix + "new"
    await adapter.set(prefix + "k", b"1", 60, (old,))
    await adapter.set(prefix + "k", b"2", 60, (new,))
    assert await adapter.invalidate_tags([old]) == 0
    assert await adapter.get(prefix + "k") == b"2"
    await adapter.set(prefix + "k", b"3", 60)
    assert await adapter.invalidate_tags([new]) == 0
    assert await adapter.get(prefix + "k") == b"3"
    assert await raw.exists("{k:" + prefix + "k}") == 0


async def test_untagged_mset_moves_keys_out_of_old_tag_indexes_across_chunks(
    adapter: RedisAdapter, raw: Redis, prefix: str
) -> None:
    tag = prefix + "t"
    await adapter.mset([L2Entry(f"{prefix}{i}", b"tagged", 60, (tag,)) for i in range(0, 1200, 100)])
    # 1,200 untagged entries: three untagged-write scripts, twelve keys among them still tagged
    await adapter.mset([L2Entry(f"{prefix}{i}", str(i).encode(), 60) for i in range(1200)])
    assert await adapter.invalidate_tags([tag]) == 0
    assert await adapter.mget([f"{prefix}{i}" for i in range(1200)]) == [str(i).encode() for i in range(1200)]
    assert await raw.exists(*(f"{{k:{prefix}{i}}}" for i in range(0, 1200, 100))) == 0


async def test_mset_whose_later_duplicate_drops_the_tags_leaves_the_key_untagged(
    adapter: RedisAdapter, prefix: str
) -> None:
    tag = prefix + "t"
    await adapter.mset([L2Entry(prefix + "k", b"1", 60, (tag,)), L2Entry(prefix + "k", b"2", 60)])
    assert await adapter.invalidate_tags([tag]) == 0
    assert await adapter.get(prefix + "k") == b"2"


async def test_concurrent_gets_each_return_their_own_key_when_batched(adapter: RedisAdapter, prefix: str) -> None:
    await adapter.mset([L2Entry(f"{prefix}{i}", str(i).encode(), 60) for i in range(300)])
    keys = [f"{prefix}{random.randrange(400)}" for _ in range(2000)]
    values = await asyncio.gather(*(adapter.get(key) for key in keys))
    for key, found in zip(keys, values, strict=True):
        number = int(key.removeprefix(prefix))
        assert found == (str(number).encode() if number < 300 else None)


async def test_mset_with_a_duplicate_key_keeps_the_last_entry(adapter: RedisAdapter, prefix: str) -> None:
    a, b = prefix + "a", prefix + "b"
    await adapter.set(prefix + "k", b"0", 60, (a,))
    await adapter.mset([L2Entry(prefix + "k", b"1", 60, (b,)), L2Entry(prefix + "k", b"2", 60, (a, b))])
    assert await adapter.get(prefix + "k") == b"2"
    assert await adapter.invalidate_tags([a]) == 1


async def test_expire_extends_a_tagged_key_past_pruning_of_its_tag(adapter: RedisAdapter, prefix: str) -> None:
    tag = prefix + "t"
    await adapter.set(prefix + "k", b"v", 0.2, (tag,))
    assert await adapter.expire(prefix + "k", 60) is True
    await asyncio.sleep(0.4)
    await adapter.set(prefix + "other", b"v", 60, (tag,))  # prunes members scored before now
    assert await adapter.invalidate_tags([tag]) == 2
    assert await adapter.get(prefix + "k") is None


@pytest.mark.parametrize("glob_prefix", ["a*b?:", "x[ab]\\y:"])
async def test_clear_escapes_glob_characters_and_spares_other_prefixes(
    adapter: RedisAdapter, raw: Redis, prefix: str, glob_prefix: str
) -> None:
    target = prefix + glob_prefix
    neighbours = [prefix + name for name in ("aXbY:", "ab:", "xay:", "x[ab]\\y", "other:")]
    for current in [target, *neighbours]:
        await adapter.set(current + "k", b"v", 60, (current + "tag",))
        await adapter.set(current + "plain", b"v", 60)
    assert await adapter.clear(target) == 2
    assert await adapter.mget([target + "k", target + "plain"]) == [None, None]
    assert await raw.exists("{k:" + target + "k}", "{t:" + target + "tag}") == 0
    for current in neighbours:
        assert await adapter.mget([current + "k", current + "plain"]) == [b"v", b"v"]
        assert await adapter.invalidate_tags([current + "tag"]) == 1


async def test_incr_of_non_integer_raises_and_new_counters_get_the_ttl(
    adapter: RedisAdapter, raw: Redis, prefix: str
) -> None:
    await adapter.set(prefix + "text", b"12abc", 60)
    with pytest.raises(NotAnIntegerError):
        await adapter.incr(prefix + "text", 1, 60)
    assert await adapter.incr(prefix + "n", 2, 30) == 2
    assert 29_000 < await raw.pttl(prefix + "n") <= 30_000
    assert await adapter.incr(prefix + "n", 2, 600) == 4
    assert await raw.pttl(prefix + "n") <= 30_000  # an existing counter keeps its TTL


async def test_blocking_pool_makes_callers_wait_for_a_connection(redis_url: str, prefix: str) -> None:
    adapter = RedisAdapter.from_url(redis_url, max_connections=2, pool_timeout=5)
    try:
        await adapter.set(prefix + "k", b"v", 60)
        assert await asyncio.gather(*(adapter.get(prefix + "k") for _ in range(100))) == [b"v"] * 100
        assert (await adapter.stats())["pool_max_connections"] == 2
    finally:
        await adapter.clear(prefix)
        await adapter.close()


async def test_stats_reports_server_and_pool_figures(adapter: RedisAdapter) -> None:
    stats = await adapter.stats()
    assert stats["used_memory"] > 0
    assert stats["connected_clients"] >= 1
    assert stats["keys_in_db"] >= 0
    assert stats["pool_max_connections"] == 64


async def test_close_is_idempotent_and_leaves_a_borrowed_client_open(raw: Redis, redis_url: str) -> None:
    borrowed = RedisAdapter(raw)
    await borrowed.close()
    await borrowed.close()
    assert await raw.ping() is True
    owned = RedisAdapter.from_config(CacheConfig(redis_url=redis_url))
    await owned.ping()
    await owned.close()
    await owned.close()


async def test_close_runs_every_step_when_one_fails_then_raises_backend_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[str] = []

    async def failing_client_close(self: Redis, close_connection_pool: bool | None = None) -> None:
        closed.append("client")
        raise RedisError("socket already gone")

    async def sentinel_close(self: Sentinel) -> None:
        closed.append("sentinel")

    monkeypatch.setattr(Redis, "aclose", failing_client_close)
    monkeypatch.setattr(Sentinel, "aclose", sentinel_close)
    adapter = RedisAdapter.from_url("redis+sentinel://127.0.0.1:9/primary")  # connects lazily: no I/O here
    with pytest.raises(BackendError, match="socket already gone"):
        await adapter.close()
    assert closed == ["client", "sentinel"]


async def test_client_decoding_responses_is_rejected(redis_url: str) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        with pytest.raises(ConfigError, match="decode_responses"):
            RedisAdapter(client)
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    "url",
    ["redis+sentinel:///primary", "redis+sentinel://h:1", "redis+sentinel://h:1/a/b", "redis+sentinel://h/s?x=1"],
)
def test_malformed_sentinel_url_raises_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        RedisAdapter.from_url(url)


def test_unknown_url_scheme_raises_config_error() -> None:
    with pytest.raises(ConfigError):
        RedisAdapter.from_url("http://127.0.0.1:6379")


def test_adapter_satisfies_the_protocol() -> None:
    adapter: L2Adapter = RedisAdapter(Redis())
    assert adapter.name == "redis"
