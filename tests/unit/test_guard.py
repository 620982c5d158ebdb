"""Degrading on backend faults: the guard's logic, over a memory adapter that can be switched off."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import pytest

from cachetier import BackendError, CacheConfig, CacheManager, create_with_config
from cachetier.adapters.memory import MemoryAdapter
from cachetier.guard import GuardedAdapter
from cachetier.protocols import L2Entry, Lease


class SwitchableAdapter(MemoryAdapter):
    """A memory adapter whose every call fails while `down` is set, as a dead server would."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise BackendError("connection refused")

    async def get(self, key: str) -> bytes | None:
        self._check()
        return await super().get(key)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        self._check()
        return await super().mget(keys)

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        self._check()
        await super().set(key, value, ttl, tags)

    async def mset(self, entries: Sequence[L2Entry]) -> None:
        self._check()
        await super().mset(entries)

    async def delete(self, key: str) -> bool:
        self._check()
        return await super().delete(key)

    async def incr(self, key: str, by: int, ttl: float) -> int:
        self._check()
        return await super().incr(key, by, ttl)

    async def invalidate_tags(self, tags: Sequence[str]) -> int:
        self._check()
        return await super().invalidate_tags(tags)

    async def clear(self, prefix: str) -> int:
        self._check()
        return await super().clear(prefix)

    async def get_or_lease(self, key: str, lease_ttl: float) -> Lease:
        self._check()
        return await super().get_or_lease(key, lease_ttl)

    async def set_leased(self, key: str, value: bytes, ttl: float, tags: Sequence[str], token: int) -> bool:
        self._check()
        return await super().set_leased(key, value, ttl, tags, token)

    async def ping(self) -> None:
        self._check()


class PickyAdapter(SwitchableAdapter):
    """Refuses one key with a non-backend error, as a server refuses bytes it cannot take."""

    async def delete(self, key: str) -> bool:
        if key.endswith("poison"):
            self.calls += 1
            raise UnicodeEncodeError("utf-8", key, 0, 1, "surrogates not allowed")
        return await super().delete(key)


@pytest.fixture
def adapter() -> SwitchableAdapter:
    return SwitchableAdapter()


@pytest.fixture
async def cache(adapter: SwitchableAdapter) -> AsyncIterator[CacheManager]:
    config = CacheConfig(namespace="g", failure_threshold=2, recovery_timeout=0.2)
    async with create_with_config(config, adapter=adapter) as manager:
        yield manager


async def test_calls_answer_while_backend_is_down(cache: CacheManager, adapter: SwitchableAdapter) -> None:
    adapter.down = True
    await cache.set("k", 1)
    assert await cache.get("k") == 1  # served by L1
    assert await cache.get("absent") is None
    assert await cache.mget(["absent"]) == {}
    assert await cache.increment("n") is None
    assert await cache.invalidate_by_tag("t") == 0
    assert await cache.is_healthy() is False
    stats = await cache.get_stats()
    assert stats.l2.errors >= 2
    assert stats.l2.dropped_writes == 1


async def test_loader_runs_when_backend_is_down_and_its_errors_still_propagate(
    cache: CacheManager, adapter: SwitchableAdapter
) -> None:
    adapter.down = True
    assert await cache.get("k", lambda: "loaded") == "loaded"

    def broken() -> str:
        raise ValueError("loader bug")

    with pytest.raises(ValueError, match="loader bug"):
        await cache.get("other", broken)


async def test_failures_are_logged(
    cache: CacheManager, adapter: SwitchableAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    adapter.down = True
    with caplog.at_level(logging.WARNING, logger="cachetier"):
        await cache.get("k")
    assert "L2 memory get failed" in caplog.text


async def test_open_circuit_stops_calling_the_backend(cache: CacheManager, adapter: SwitchableAdapter) -> None:
    adapter.down = True
    for _ in range(2):
        await cache.get("k")
    calls = adapter.calls
    for _ in range(20):
        await cache.get("k")
    assert adapter.calls == calls
    assert (await cache.get_stats()).l2.circuit == "open"


async def test_backend_is_used_again_after_recovery(cache: CacheManager, adapter: SwitchableAdapter) -> None:
    adapter.down = True
    for _ in range(3):
        await cache.get("k")
    adapter.down = False
    await asyncio.sleep(0.25)
    await cache.set("k", "v")
    await cache.clear()  # empties L1 and L2 of this namespace
    await cache.set("k", "v")
    assert await adapter.get("g:k") is not None
    assert (await cache.get_stats()).l2.circuit == "closed"


async def test_invalidations_missed_during_outage_are_replayed_on_recovery(
    cache: CacheManager, adapter: SwitchableAdapter
) -> None:
    await cache.set("tagged", "old", tags=["users"])
    await cache.set("deleted", "old")
    await cache.set("rewritten", "old")
    adapter.down = True
    assert await cache.invalidate_by_tag("users") >= 1
    assert await cache.delete("deleted") is True
    await cache.set("rewritten", "new")  # dropped by L2, which still holds "old"
    adapter.down = False
    await asyncio.sleep(0.25)
    other_process = create_with_config(CacheConfig(namespace="g"), adapter=adapter)
    try:
        assert await cache.is_healthy() is True
        assert await other_process.get("tagged") is None
        assert await other_process.get("deleted") is None
        assert await other_process.get("rewritten") is None
    finally:
        await cache.close()
        await other_process.close()


class SlowAdapter(SwitchableAdapter):
    """Deletes and tag invalidations take a while, so calls overlap a replay in progress."""

    async def delete(self, key: str) -> bool:
        self._check()
        await asyncio.sleep(0.01)
        return await MemoryAdapter.delete(self, key)

    async def invalidate_tags(self, tags: Sequence[str]) -> int:
        self._check()
        await asyncio.sleep(0.05)
        return await MemoryAdapter.invalidate_tags(self, tags)


async def test_concurrent_calls_after_recovery_replay_once_and_drop_no_writes() -> None:
    adapter = SlowAdapter()
    # The circuit stays closed, so all the calls reach the backend (half-open would admit one trial).
    config = CacheConfig(namespace="g", failure_threshold=100, recovery_timeout=0.2)
    async with create_with_config(config, adapter=adapter) as cache:
        adapter.down = True
        for key in ("a", "b", "c"):
            await cache.delete(key)
        errors = (await cache.get_stats()).l2.errors
        adapter.down = False
        await asyncio.gather(*(cache.set(f"n{i}", i) for i in range(10)))
        stats = await cache.get_stats()
        assert stats.l2.errors == errors
        assert stats.l2.circuit == "closed"
        assert stats.l2.healthy is True
        for i in range(10):
            assert await adapter.get(f"g:n{i}") is not None


async def test_a_tag_invalidation_missed_during_a_replay_is_replayed_later() -> None:
    adapter = SlowAdapter()
    config = CacheConfig(namespace="g", failure_threshold=100, recovery_timeout=0.2)
    async with create_with_config(config, adapter=adapter) as cache:
        await cache.set("one", "old", tags=["t1"])
        await cache.set("two", "old", tags=["t2"])
        adapter.down = True
        await cache.invalidate_by_tag("t1")
        adapter.down = False
        replaying = asyncio.create_task(cache.get("other"))  # replays t1, slowly
        await asyncio.sleep(0.01)
        adapter.down = True
        await cache.invalidate_by_tag("t2")  # fails: must stay pending
        adapter.down = False
        await replaying
        assert await cache.is_healthy() is True
        other_process = create_with_config(CacheConfig(namespace="g"), adapter=adapter)
        try:
            assert await other_process.get("one") is None
            assert await other_process.get("two") is None
        finally:
            await other_process.close()


async def test_pending_overflow_still_invalidates_keys_of_other_namespaces(adapter: SwitchableAdapter) -> None:
    guard = GuardedAdapter(adapter, namespace_prefix="g:", failure_threshold=100, max_pending=2)
    await adapter.set("other:k", b"old", 60)
    adapter.down = True
    for key in ("g:a", "g:b", "other:k"):  # `namespace="other"` on a cache of namespace "g"
        await guard.delete(key)
    adapter.down = False
    assert await guard.ping() is True
    assert await adapter.get("other:k") is None


class SlowGetAdapter(SwitchableAdapter):
    """Reads take a while, so concurrent callers overlap the half-open trial."""

    async def get(self, key: str) -> bytes | None:
        self._check()
        await asyncio.sleep(0.05)
        return await MemoryAdapter.get(self, key)


async def test_half_open_circuit_lets_one_trial_call_through_at_a_time() -> None:
    adapter = SlowGetAdapter()
    guard = GuardedAdapter(adapter, namespace_prefix="g:", failure_threshold=2, recovery_timeout=0.2, probe_interval=60)
    adapter.down = True
    for _ in range(2):
        assert await guard.get("g:k") is None
    assert guard.breaker.state == "open"
    adapter.down = False
    await asyncio.sleep(0.25)
    calls = adapter.calls
    assert await asyncio.gather(*(guard.get("g:k") for _ in range(10))) == [None] * 10
    assert adapter.calls == calls + 1
    assert guard.breaker.state == "closed"
    await asyncio.gather(*(guard.get("g:k") for _ in range(10)))
    assert adapter.calls == calls + 11


async def test_a_cancelled_half_open_trial_lets_the_next_call_try() -> None:
    adapter = SlowGetAdapter()
    guard = GuardedAdapter(
        adapter, namespace_prefix="g:", failure_threshold=1, recovery_timeout=0.05, probe_interval=60
    )
    adapter.down = True
    await guard.get("g:k")
    adapter.down = False
    await asyncio.sleep(0.1)
    trial = asyncio.create_task(guard.get("g:k"))
    await asyncio.sleep(0.01)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    calls = adapter.calls
    await guard.get("g:k")
    assert adapter.calls == calls + 1
    assert guard.breaker.state == "closed"


async def test_the_circuit_closes_in_the_background_without_a_call(adapter: SwitchableAdapter) -> None:
    guard = GuardedAdapter(
        adapter, namespace_prefix="g:", failure_threshold=1, recovery_timeout=60, probe_interval=0.05
    )
    adapter.down = True
    assert await guard.delete("g:k") is False
    assert guard.breaker.state == "open"
    adapter.down = False
    for _ in range(100):
        if guard.healthy:
            break
        await asyncio.sleep(0.02)
    assert guard.healthy  # recovery_timeout is a minute: only the probe can have closed it
    assert not guard.pending
    await guard.close()


async def test_an_unreplayable_item_is_dropped_and_the_rest_replayed(caplog: pytest.LogCaptureFixture) -> None:
    adapter = PickyAdapter()
    await adapter.set("g:fine", b"old", 60)
    guard = GuardedAdapter(
        adapter, namespace_prefix="g:", failure_threshold=1, recovery_timeout=60, probe_interval=0.05
    )
    adapter.down = True
    await guard.delete("g:poison")
    await guard.delete("g:fine")
    adapter.down = False
    with caplog.at_level(logging.ERROR, logger="cachetier"):
        for _ in range(100):
            if guard.healthy:
                break
            await asyncio.sleep(0.02)
    assert guard.healthy
    assert guard.pending.dropped == 1
    assert await adapter.get("g:fine") is None
    assert "unreplayable" in caplog.text
    assert await guard.set("g:after", b"v", 60) is True  # the poisoned key no longer blocks the backend
    await guard.close()


async def test_close_makes_a_last_attempt_at_what_is_owed(adapter: SwitchableAdapter) -> None:
    await adapter.set("g:k", b"old", 60)
    guard = GuardedAdapter(adapter, namespace_prefix="g:", failure_threshold=1, recovery_timeout=60, probe_interval=60)
    adapter.down = True
    assert await guard.set("g:k", b"new", 60) is False
    adapter.down = False
    await guard.close()
    assert await MemoryAdapter.get(adapter, "g:k") is None


class FlickeringAdapter(SwitchableAdapter):
    """Its first replayed delete fails as the server is coming back; the ping right after succeeds."""

    flickers = 1

    async def delete(self, key: str) -> bool:
        if self.flickers:
            self.flickers -= 1
            raise BackendError("connection refused")
        return await super().delete(key)


async def test_a_replay_failing_as_the_server_comes_back_is_retried_not_dropped() -> None:
    adapter = FlickeringAdapter()
    await adapter.set("g:k", b"old", 60)
    guard = GuardedAdapter(adapter, namespace_prefix="g:", failure_threshold=1, recovery_timeout=60, probe_interval=60)
    adapter.down = True
    assert await guard.set("g:k", b"new", 60) is False
    adapter.down = False
    await guard.ping()
    assert guard.pending.dropped == 0
    assert await MemoryAdapter.get(adapter, "g:k") is None
    await guard.close()


class _NoLeases:
    """An adapter without `get_or_lease` (only what the guard calls here)."""

    name = "plain"

    async def get(self, key: str) -> bytes | None:
        return b"stored"


async def test_get_or_lease_follows_an_adapter_swapped_for_one_without_leases() -> None:
    guard = GuardedAdapter(MemoryAdapter(), namespace_prefix="t:")
    assert guard.leases
    assert (await guard.get_or_lease("t:k", 30)).token is not None
    guard.adapter = _NoLeases()  # type: ignore[assignment]  # as a resolved selector replaces it
    assert not guard.leases
    assert await guard.get_or_lease("t:k", 30) == Lease(b"stored")
