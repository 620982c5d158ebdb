"""The L2 contract suite every adapter runs (dogpile's generic backend suite, in pytest form).

Usage, in a test module::

    class TestMyAdapter(L2ContractSuite):
        @pytest.fixture
        async def adapter(self) -> AsyncIterator[L2Adapter]:
            adapter = MyAdapter(...)
            yield adapter
            await adapter.close()

Each test works under its own random key prefix (`self.key(name)` inside a
test; the `prefix` fixture), so runs can share one server. Requires pytest and
pytest-asyncio.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from cachetier.errors import NotAnIntegerError
from cachetier.lease_contract import LeaseContractSuite
from cachetier.protocols import L2Adapter, L2Entry

SHORT_TTL = 0.3
EXPIRY_WAIT = 0.6


@pytest.mark.asyncio
class L2ContractSuite(LeaseContractSuite):
    """Behaviour every `L2Adapter` promises, leases included. Subclasses provide an `adapter` fixture."""

    async def test_get_of_missing_key_returns_none(self, adapter: L2Adapter, prefix: str) -> None:
        assert await adapter.get(prefix + "absent") is None

    async def test_set_then_get_returns_same_bytes(self, adapter: L2Adapter, prefix: str) -> None:
        value = bytes(range(256)) * 4
        await adapter.set(prefix + "k", value, 60)
        assert await adapter.get(prefix + "k") == value

    async def test_set_replaces_earlier_value(self, adapter: L2Adapter, prefix: str) -> None:
        await adapter.set(prefix + "k", b"one", 60)
        await adapter.set(prefix + "k", b"two", 60)
        assert await adapter.get(prefix + "k") == b"two"

    async def test_large_value_round_trips(self, adapter: L2Adapter, prefix: str) -> None:
        value = uuid.uuid4().bytes * 65536  # 1 MiB
        await adapter.set(prefix + "big", value, 60)
        assert await adapter.get(prefix + "big") == value

    async def test_unicode_key_round_trips(self, adapter: L2Adapter, prefix: str) -> None:
        key = prefix + "ключ-キー-🔑 'quoted'; DROP TABLE x; --"
        await adapter.set(key, b"v", 60)
        assert await adapter.get(key) == b"v"
        assert await adapter.get(prefix + "ключ") is None

    async def test_value_expires_after_ttl(self, adapter: L2Adapter, prefix: str) -> None:
        await adapter.set(prefix + "short", b"v", SHORT_TTL)
        await adapter.set(prefix + "long", b"v", 60)
        await asyncio.sleep(EXPIRY_WAIT)
        assert await adapter.get(prefix + "short") is None
        assert not await adapter.exists(prefix + "short")
        assert await adapter.mget([prefix + "short"]) == [None]
        assert await adapter.get(prefix + "long") == b"v"

    async def test_mget_returns_values_in_order_with_none_for_misses(self, adapter: L2Adapter, prefix: str) -> None:
        await adapter.set(prefix + "a", b"1", 60)
        await adapter.set(prefix + "c", b"3", 60)
        keys = [prefix + "a", prefix + "b", prefix + "c", prefix + "a"]
        assert await adapter.mget(keys) == [b"1", None, b"3", b"1"]
        assert await adapter.mget([]) == []

    async def test_mset_writes_every_entry_with_its_own_ttl_and_tags(self, adapter: L2Adapter, prefix: str) -> None:
        await adapter.mset(
            [
                L2Entry(prefix + "a", b"1", SHORT_TTL, (prefix + "t1",)),
                L2Entry(prefix + "b", b"2", 60, (prefix + "t1",)),
                L2Entry(prefix + "c", b"3", 60),
            ]
        )
        assert await adapter.mget([prefix + "a", prefix + "b", prefix + "c"]) == [b"1", b"2", b"3"]
        await asyncio.sleep(EXPIRY_WAIT)
        assert await adapter.get(prefix + "a") is None
        assert await adapter.invalidate_tags([prefix + "t1"]) == 1
        assert await adapter.get(prefix + "b") is None
        assert await adapter.get(prefix + "c") == b"3"

    async def test_delete_reports_whether_a_key_was_removed(self, adapter: L2Adapter, prefix: str) -> None:
        await adapter.set(prefix + "k", b"v", 60)
        assert await adapter.delete(prefix + "k") is True
        assert await adapter.get(prefix + "k") is None
        assert await adapter.delete(prefix + "k") is False

    async def test_exists_reflects_presence(self, adapter: L2Adapter, prefix: str) -> None:
        assert await adapter.exists(prefix + "k") is False
        await adapter.set(prefix + "k", b"v", 60)
        assert await adapter.exists(prefix + "k") is True

    async def test_expire_shortens_ttl_of_live_key(self, adapter: L2Adapter, prefix: str) -> None:
        await adapter.set(prefix + "k", b"v", 60)
        assert await adapter.expire(prefix + "k", SHORT_TTL) is True
        assert await adapter.get(prefix + "k") == b"v"
        await asyncio.sleep(EXPIRY_WAIT)
        assert await adapter.get(prefix + "k") is None

    async def test_expire_extends_ttl_of_live_key(self, adapter: L2Adapter, prefix: str) -> None:
        await adapter.set(prefix + "k", b"v", SHORT_TTL)
        assert await adapter.expire(prefix + "k", 60) is True
        await asyncio.sleep(EXPIRY_WAIT)
        assert await adapter.get(prefix + "k") == b"v"

    async def test_expire_of_missing_key_returns_false(self, adapter: L2Adapter, prefix: str) -> None:
        assert await adapter.expire(prefix + "absent", 60) is False

    async def test_incr_creates_missing_key_at_zero_plus_step(self, adapter: L2Adapter, prefix: str) -> None:
        assert await adapter.incr(prefix + "n", 5, 60) == 5
        assert await adapter.incr(prefix + "n", -7, 60) == -2
        assert await adapter.get(prefix + "n") == b"-2"

    async def test_incr_of_missing_key_applies_ttl(self, adapter: L2Adapter, prefix: str) -> None:
        await adapter.incr(prefix + "n", 1, SHORT_TTL)
        await asyncio.sleep(EXPIRY_WAIT)
        assert await adapter.get(prefix + "n") is None

    async def test_incr_of_non_integer_raises_not_an_integer(self, adapter: L2Adapter, prefix: str) -> None:
        await adapter.set(prefix + "s", b"\x01not a number", 60)
        with pytest.raises(NotAnIntegerError):
            await adapter.incr(prefix + "s", 1, 60)
        assert await adapter.get(prefix + "s") == b"\x01not a number"

    async def test_concurrent_incr_loses_no_update(self, adapter: L2Adapter, prefix: str) -> None:
        await asyncio.gather(*(adapter.incr(prefix + "n", 1, 60) for _ in range(50)))
        assert await adapter.get(prefix + "n") == b"50"

    async def test_invalidate_tags_removes_only_tagged_keys_and_counts_them(
        self, adapter: L2Adapter, prefix: str
    ) -> None:
        users, posts = prefix + "users", prefix + "posts"
        await adapter.set(prefix + "u1", b"1", 60, (users,))
        await adapter.set(prefix + "u2", b"2", 60, (users, posts))
        await adapter.set(prefix + "p1", b"3", 60, (posts,))
        await adapter.set(prefix + "plain", b"4", 60)
        assert await adapter.invalidate_tags([users]) == 2
        assert await adapter.mget([prefix + "u1", prefix + "u2"]) == [None, None]
        assert await adapter.get(prefix + "p1") == b"3"
        assert await adapter.get(prefix + "plain") == b"4"
        assert await adapter.invalidate_tags([users]) == 0

    async def test_invalidate_several_tags_counts_each_key_once(self, adapter: L2Adapter, prefix: str) -> None:
        a, b = prefix + "a", prefix + "b"
        await adapter.set(prefix + "k1", b"1", 60, (a, b))
        await adapter.set(prefix + "k2", b"2", 60, (b,))
        assert await adapter.invalidate_tags([a, b]) == 2
        assert await adapter.mget([prefix + "k1", prefix + "k2"]) == [None, None]

    async def test_rewritten_key_carries_its_new_tags(self, adapter: L2Adapter, prefix: str) -> None:
        await adapter.set(prefix + "k", b"old", 60, (prefix + "old",))
        await adapter.set(prefix + "k", b"new", 60, (prefix + "new",))
        assert await adapter.invalidate_tags([prefix + "new"]) == 1
        assert await adapter.get(prefix + "k") is None

    async def test_rewritten_key_is_no_longer_removed_by_its_old_tag(self, adapter: L2Adapter, prefix: str) -> None:
        await adapter.set(prefix + "k", b"old", 60, (prefix + "old",))
        await adapter.set(prefix + "k", b"new", 60, (prefix + "new",))
        await adapter.invalidate_tags([prefix + "old"])
        assert await adapter.get(prefix + "k") == b"new"

    async def test_tagged_key_with_extended_ttl_is_still_removed_by_its_tag(
        self, adapter: L2Adapter, prefix: str
    ) -> None:
        await adapter.set(prefix + "k", b"v", SHORT_TTL, (prefix + "t",))
        assert await adapter.expire(prefix + "k", 60) is True
        await asyncio.sleep(EXPIRY_WAIT)
        assert await adapter.get(prefix + "k") == b"v"
        assert await adapter.invalidate_tags([prefix + "t"]) == 1
        assert await adapter.get(prefix + "k") is None

    async def test_invalidate_unknown_tag_returns_zero(self, adapter: L2Adapter, prefix: str) -> None:
        assert await adapter.invalidate_tags([prefix + "nobody"]) == 0
        assert await adapter.invalidate_tags([]) == 0

    async def test_clear_removes_only_keys_under_prefix(self, adapter: L2Adapter, prefix: str) -> None:
        other = f"contract-other-{uuid.uuid4().hex[:12]}:"
        await adapter.set(prefix + "a", b"1", 60, (prefix + "t",))
        await adapter.set(prefix + "b", b"2", 60)
        await adapter.set(other + "a", b"3", 60)
        try:
            assert await adapter.clear(prefix) == 2
            assert await adapter.mget([prefix + "a", prefix + "b"]) == [None, None]
            assert await adapter.get(other + "a") == b"3"
        finally:
            await adapter.clear(other)

    async def test_ping_answers_and_stats_is_a_dict(self, adapter: L2Adapter) -> None:
        await adapter.ping()
        assert isinstance(await adapter.stats(), dict)
        assert isinstance(adapter.name, str)
        assert adapter.name
