"""Leases on Redis beyond the contract suite: where their keys live, one script per step, a lost counter.

The contract (`cachetier.lease_contract`) runs in test_redis_adapter.py; these
pin what is Redis's own: reserved key families, round trips, and a token
counter that goes missing (on a throwaway server, since it is shared by every
client of a server).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from redis.asyncio import Redis

from cachetier.adapters.redis import MAX_LEASE_TTL, RedisAdapter
from cachetier.adapters.redis_keys import LEASE_COUNTER, lease, prefix_mark, tag_mark
from cachetier.protocols import Lease
from redis_fixtures import fixture_adapter, fixture_prefix, fixture_raw  # noqa: F401 (fixtures, requested by name)
from servers import RedisServer


async def _evalsha_calls(client: Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_a_miss_with_a_loader_is_one_script_to_lease_and_one_to_store() -> None:
    with RedisServer() as server:
        adapter, raw = RedisAdapter.from_url(server.url), Redis.from_url(server.url)
        try:
            await adapter.set_leased("warm", b"v", 60, ("t",), 1)  # loads the scripts
            await adapter.get_or_lease("warm-2", 30)
            before = await _evalsha_calls(raw)
            token = (await adapter.get_or_lease("k", 30)).token
            assert token is not None
            assert await adapter.set_leased("k", b"loaded", 60, ("t",), token) is True
            assert await _evalsha_calls(raw) - before == 2
            assert await raw.exists(lease("k")) == 0  # released by the store
        finally:
            await adapter.close()
            await raw.aclose()


async def test_leases_and_marks_are_kept_apart_from_entries(adapter: RedisAdapter, raw: Redis, prefix: str) -> None:
    token = (await adapter.get_or_lease(prefix + "k", 30)).token
    assert await raw.get(lease(prefix + "k")) == str(token).encode()
    assert 29_000 < await raw.pttl(lease(prefix + "k")) <= 30_000
    await adapter.invalidate_tags([prefix + "t"])
    assert await raw.exists(tag_mark(prefix + "t")) == 1
    assert await adapter.clear(prefix) == 0  # neither the lease nor the mark counts as an entry
    assert await raw.exists(lease(prefix + "k")) == 0  # clear revokes the leases under its prefix...
    assert await raw.exists(prefix_mark(prefix)) == 1  # ...and marks it for loads it cannot see
    assert await raw.exists(tag_mark(prefix + "t")) == 1  # marks outlive the clear, and expire by themselves
    assert 0 < await raw.pttl(prefix_mark(prefix)) <= MAX_LEASE_TTL * 1000
    assert (await adapter.get_or_lease(prefix + "k", 30)).token is not None  # a new lease at once


async def test_marks_live_as_long_as_the_longest_lease_granted() -> None:
    with RedisServer() as server:
        adapter, raw = RedisAdapter.from_url(server.url), Redis.from_url(server.url)
        try:
            await adapter.get_or_lease("a:short", 2)
            await adapter.invalidate_tags(["a:t"])
            assert 1_000 < await raw.pttl(tag_mark("a:t")) <= 2_000
            await adapter.get_or_lease("a:long", 20)
            await adapter.get_or_lease("a:again", 2)
            await adapter.clear("a:")
            assert 19_000 < await raw.pttl(prefix_mark("a:")) <= 20_000
            await adapter.get_or_lease("a:huge", 10 * MAX_LEASE_TTL)
            assert await raw.pttl(lease("a:huge")) <= MAX_LEASE_TTL * 1000
        finally:
            await adapter.close()
            await raw.aclose()


async def test_a_lost_token_counter_restarts_above_every_token_given_before() -> None:
    with RedisServer() as server:
        adapter, raw = RedisAdapter.from_url(server.url), Redis.from_url(server.url)
        try:
            old = (await adapter.get_or_lease("a:old", 30)).token
            assert old is not None
            await raw.delete(LEASE_COUNTER)  # eviction, or someone's DEL
            await adapter.invalidate_tags(["a:t"])  # a mark taken from the restarted counter
            new = (await adapter.get_or_lease("a:new", 30)).token
            assert new is not None
            assert new > old
            assert await adapter.set_leased("a:old", b"stale", 60, ("a:t",), old) is False
            assert await adapter.set_leased("a:new", b"fresh", 60, ("a:t",), new) is True
            # Tokens stay exact past Lua's 14 formatted digits (they start at the server's time in µs).
            assert await raw.get(lease("a:old")) is None
            assert new > 10**15
        finally:
            await adapter.close()
            await raw.aclose()


async def test_a_clear_of_a_namespace_does_not_revoke_the_leases_of_another(adapter: RedisAdapter, prefix: str) -> None:
    other = f"redis-lease-other-{uuid.uuid4().hex[:12]}:"
    inside = (await adapter.get_or_lease(prefix + "sub:k", 30)).token
    outside = (await adapter.get_or_lease(other + "k", 30)).token
    assert inside is not None
    assert outside is not None
    try:
        await adapter.clear(prefix + "sub:")  # marks the whole namespace: more revoked, never less
        assert await adapter.set_leased(prefix + "sub:k", b"old", 60, (), inside) is False
        assert await adapter.set_leased(other + "k", b"kept", 60, (), outside) is True
    finally:
        await adapter.clear(other)


async def test_leases_and_marks_are_not_reported_by_the_change_feed(redis_url: str, prefix: str) -> None:
    seen: list[Sequence[str] | None] = []
    listening, writer = RedisAdapter.from_url(redis_url), RedisAdapter.from_url(redis_url)
    writer.purge_chunk = 2
    unsubscribe = await listening.subscribe_invalidations(prefix, seen.append)
    try:
        token = (await writer.get_or_lease(prefix + "k", 30)).token
        assert token is not None
        assert await writer.get_or_lease(prefix + "k", 30) == Lease(None, None, True)
        await writer.set_leased(prefix + "k", b"v", 60, (prefix + "t",), token)
        await writer.get_or_lease(prefix + "j", 30)
        await writer.set(prefix + "x", b"v", 60, (prefix + "t",))
        await writer.invalidate_tags([prefix + "t"])  # marks, purge sets and doomed indexes, in 2-key chunks
        await writer.clear(prefix)
        await asyncio.sleep(0.2)
        reported = {key for keys in seen for key in keys or ()}
        assert None not in seen
        assert reported == {prefix + "k", prefix + "x"}
    finally:
        await unsubscribe()
        await listening.close()
        await writer.close()
