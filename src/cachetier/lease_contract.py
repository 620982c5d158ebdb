"""The lease half of the adapter contract suite (`cachetier.testing.L2ContractSuite` includes it).

Leases are what keep a loader's value from overwriting a newer write (see
`cachetier.protocols.LeasingAdapter`); every built-in adapter must pass these.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any, cast

import pytest

from cachetier.protocols import L2Adapter, L2Entry, Lease, LeasingAdapter

LEASE_TTL = 30.0
SHORT_LEASE = 0.3
LEASE_EXPIRY_WAIT = 0.7


def _leasing(adapter: L2Adapter) -> Any:
    assert isinstance(adapter, LeasingAdapter), f"{type(adapter).__name__} does not implement LeasingAdapter"
    return cast(Any, adapter)


async def race_leased_stores_against_changes(
    loader: Any, writer: Any, prefix: str, seed: int, rounds: int = 60
) -> None:
    """Random interleavings of a leased store (via `loader`) and a change (via `writer`) begun after the lease.

    Whatever the order they reach the backend in, the change wins: the key ends
    holding the write's value, or nothing. `loader` and `writer` may be one
    adapter, or two on the same storage standing for two processes.
    """
    rng = random.Random(seed)

    async def store_after(delay: float, key: str, tag: str, token: int) -> None:
        await asyncio.sleep(delay)
        await loader.set_leased(key, b"old", 60, [tag], token)

    async def change_after(delay: float, change: str, key: str, tag: str) -> None:
        await asyncio.sleep(delay)
        if change == "set":
            await writer.set(key, b"new", 60)
        elif change == "delete":
            await writer.delete(key)
        elif change == "invalidate":
            await writer.invalidate_tags([tag])
        else:
            await writer.clear(key)

    for round_ in range(rounds):
        key, tag = f"{prefix}k{round_}", f"{prefix}t{round_ % 3}"
        token = (await loader.get_or_lease(key, LEASE_TTL)).token
        assert token is not None
        change = rng.choice(["set", "delete", "invalidate", "clear"])
        await asyncio.gather(
            store_after(rng.random() / 500, key, tag, token), change_after(rng.random() / 500, change, key, tag)
        )
        assert await loader.get(key) == (b"new" if change == "set" else None), (round_, change)


@pytest.mark.asyncio
class LeaseContractSuite:
    """Leases: granted once per missing key, revoked by every change that could make a load stale."""

    @pytest.fixture
    def prefix(self) -> str:
        return f"contract-{uuid.uuid4().hex[:12]}:"

    async def test_lease_on_present_key_returns_the_value(self, adapter: L2Adapter, prefix: str) -> None:
        await adapter.set(prefix + "k", b"v", 60)
        assert await _leasing(adapter).get_or_lease(prefix + "k", LEASE_TTL) == Lease(b"v", None, False)

    async def test_first_miss_gets_a_token_and_the_next_is_told_it_is_busy(
        self, adapter: L2Adapter, prefix: str
    ) -> None:
        leases = _leasing(adapter)
        first = await leases.get_or_lease(prefix + "k", LEASE_TTL)
        assert first.value is None
        assert isinstance(first.token, int)
        assert first.token > 0
        assert await leases.get_or_lease(prefix + "k", LEASE_TTL) == Lease(None, None, True)

    async def test_only_one_of_many_concurrent_misses_gets_the_lease(self, adapter: L2Adapter, prefix: str) -> None:
        leases = _leasing(adapter)
        results = await asyncio.gather(*(leases.get_or_lease(prefix + "k", LEASE_TTL) for _ in range(20)))
        assert sum(result.token is not None for result in results) == 1
        assert sum(result.busy for result in results) == 19

    async def test_set_leased_stores_while_the_lease_is_held_and_releases_it(
        self, adapter: L2Adapter, prefix: str
    ) -> None:
        leases = _leasing(adapter)
        token = (await leases.get_or_lease(prefix + "k", LEASE_TTL)).token
        assert await leases.set_leased(prefix + "k", b"loaded", 60, (prefix + "t",), token) is True
        assert await adapter.get(prefix + "k") == b"loaded"
        assert await leases.get_or_lease(prefix + "k", LEASE_TTL) == Lease(b"loaded", None, False)
        assert await leases.set_leased(prefix + "k", b"again", 60, (), token) is False
        assert await adapter.get(prefix + "k") == b"loaded"
        assert await adapter.invalidate_tags([prefix + "t"]) == 1  # stored with its tags

    async def test_a_write_revokes_the_lease(self, adapter: L2Adapter, prefix: str) -> None:
        leases = _leasing(adapter)
        token = (await leases.get_or_lease(prefix + "k", LEASE_TTL)).token
        await adapter.set(prefix + "k", b"newer", 60)
        assert await leases.set_leased(prefix + "k", b"older", 60, (), token) is False
        assert await adapter.get(prefix + "k") == b"newer"

    async def test_mset_revokes_the_lease(self, adapter: L2Adapter, prefix: str) -> None:
        leases = _leasing(adapter)
        token = (await leases.get_or_lease(prefix + "k", LEASE_TTL)).token
        await adapter.mset([L2Entry(prefix + "k", b"newer", 60), L2Entry(prefix + "j", b"x", 60, (prefix + "t",))])
        assert await leases.set_leased(prefix + "k", b"older", 60, (), token) is False
        assert await adapter.get(prefix + "k") == b"newer"

    async def test_a_delete_revokes_the_lease(self, adapter: L2Adapter, prefix: str) -> None:
        leases = _leasing(adapter)
        token = (await leases.get_or_lease(prefix + "k", LEASE_TTL)).token
        await adapter.delete(prefix + "k")
        assert await leases.set_leased(prefix + "k", b"older", 60, (), token) is False
        assert await adapter.get(prefix + "k") is None

    async def test_invalidating_a_tag_revokes_leases_for_values_carrying_it(
        self, adapter: L2Adapter, prefix: str
    ) -> None:
        leases = _leasing(adapter)
        tagged = (await leases.get_or_lease(prefix + "a", LEASE_TTL)).token
        other = (await leases.get_or_lease(prefix + "b", LEASE_TTL)).token
        await adapter.invalidate_tags([prefix + "users"])
        assert await leases.set_leased(prefix + "a", b"old", 60, (prefix + "x", prefix + "users"), tagged) is False
        assert await adapter.get(prefix + "a") is None
        assert await leases.set_leased(prefix + "b", b"fine", 60, (prefix + "posts",), other) is True
        assert await adapter.get(prefix + "b") == b"fine"

    async def test_a_lease_granted_after_the_invalidation_may_store(self, adapter: L2Adapter, prefix: str) -> None:
        leases = _leasing(adapter)
        await adapter.invalidate_tags([prefix + "users"])
        token = (await leases.get_or_lease(prefix + "a", LEASE_TTL)).token
        assert await leases.set_leased(prefix + "a", b"fresh", 60, (prefix + "users",), token) is True

    async def test_clear_revokes_leases_under_its_prefix_only(self, adapter: L2Adapter, prefix: str) -> None:
        leases = _leasing(adapter)
        other = f"contract-other-{uuid.uuid4().hex[:12]}:"
        inside = (await leases.get_or_lease(prefix + "k", LEASE_TTL)).token
        outside = (await leases.get_or_lease(other + "k", LEASE_TTL)).token
        try:
            await adapter.clear(prefix)
            assert await leases.set_leased(prefix + "k", b"old", 60, (), inside) is False
            assert await adapter.get(prefix + "k") is None
            assert await leases.set_leased(other + "k", b"kept", 60, (), outside) is True
        finally:
            await adapter.clear(other)

    async def test_an_expired_lease_cannot_store_and_a_new_one_is_granted(
        self, adapter: L2Adapter, prefix: str
    ) -> None:
        leases = _leasing(adapter)
        first = (await leases.get_or_lease(prefix + "k", SHORT_LEASE)).token
        await asyncio.sleep(LEASE_EXPIRY_WAIT)
        second = (await leases.get_or_lease(prefix + "k", LEASE_TTL)).token
        assert second is not None
        assert second > first
        assert await leases.set_leased(prefix + "k", b"late", 60, (), first) is False
        assert await leases.set_leased(prefix + "k", b"current", 60, (), second) is True
        assert await adapter.get(prefix + "k") == b"current"

    async def test_tokens_increase(self, adapter: L2Adapter, prefix: str) -> None:
        leases = _leasing(adapter)
        tokens = [(await leases.get_or_lease(prefix + str(i), LEASE_TTL)).token for i in range(5)]
        assert tokens == sorted(tokens)
        assert len(set(tokens)) == 5

    async def test_no_leased_store_survives_a_change_that_began_after_its_lease(
        self, adapter: L2Adapter, prefix: str
    ) -> None:
        await race_leased_stores_against_changes(_leasing(adapter), adapter, prefix, seed=0, rounds=30)
