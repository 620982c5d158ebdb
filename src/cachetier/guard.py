"""Degrading on backend faults, as a proxy around any L2 adapter (dogpile's ProxyBackend idea).

A fault never reaches the caller: reads miss, writes are dropped, and both are
counted and logged. After `failure_threshold` consecutive faults a circuit
breaker opens and stops calling the backend; a background probe
(`cachetier.recovery`) pings it every `probe_interval` seconds, replays the
invalidations and dropped writes owed to it, and closes the circuit. A call
made `recovery_timeout` seconds after the circuit opened is also let through
as a trial, should the probe not run (no event loop between calls).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

from cachetier.errors import InvalidKeyError, InvalidTagError, NotAnIntegerError
from cachetier.protocols import L2Adapter, L2Entry, Lease, LeasingAdapter
from cachetier.recovery import PendingChanges, RecoveryProbe

logger = logging.getLogger("cachetier")

_T = TypeVar("_T")
# Mistakes the adapter detects (a value that is no counter, a key it cannot store) are the caller's, not faults.
_PROGRAMMER_ERRORS: Final = (NotAnIntegerError, InvalidKeyError, InvalidTagError)


class CircuitBreaker:
    """Closed, open for `recovery_timeout` after `threshold` consecutive failures, then half-open."""

    def __init__(self, threshold: int, recovery_timeout: float) -> None:
        self.threshold = threshold
        self.recovery_timeout = recovery_timeout
        self.failures = 0
        self.opened_at: float | None = None
        self.trial_running = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self._recovery_due() else "open"

    def _recovery_due(self) -> bool:
        return self.opened_at is not None and time.monotonic() - self.opened_at >= self.recovery_timeout

    def allows_call(self) -> bool:
        """True when a call may go to the backend; when half-open, it becomes the one trial call.

        The caller admitted as the trial must call `end_trial()` once its outcome is recorded.
        """
        if self.opened_at is None:
            return True
        if self.trial_running or not self._recovery_due():
            return False
        self.trial_running = True
        return True

    def end_trial(self) -> None:
        self.trial_running = False

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def record_failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold or self.opened_at is not None:
            self.opened_at = time.monotonic()


class GuardedAdapter:
    """Wraps an `L2Adapter`; every method answers even when the backend is down."""

    def __init__(
        self,
        adapter: L2Adapter,
        *,
        namespace_prefix: str,
        failure_threshold: int = 5,
        recovery_timeout: float = 5.0,
        max_pending: int = 10_000,
        probe_interval: float = 0.5,
    ) -> None:
        self.adapter = adapter
        self.breaker = CircuitBreaker(failure_threshold, recovery_timeout)
        self.namespace_prefix = namespace_prefix
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.dropped_writes = 0
        self.latency_ms: float | None = None
        self.pending = PendingChanges(namespace_prefix, max_pending)
        self._probe = RecoveryProbe(self._recover, probe_interval)
        self._closed = False
        self._checked: object = None  # the adapter `_leasing` last looked at, and what it found
        self._leasing_adapter: LeasingAdapter | None = None

    def _leasing(self) -> LeasingAdapter | None:
        """The adapter if it grants leases. Asked once per adapter (`adapter` changes when a selector resolves):
        `isinstance` against a runtime-checkable protocol costs about 7 µs, twice per loaded miss."""
        adapter = self.adapter
        if adapter is not self._checked:
            self._leasing_adapter = adapter if isinstance(adapter, LeasingAdapter) else None
            self._checked = adapter
        return self._leasing_adapter

    @property
    def leases(self) -> bool:
        """Whether the backend grants leases (every built-in adapter does)."""
        return self._leasing() is not None

    @property
    def name(self) -> str:
        return self.adapter.name

    @property
    def healthy(self) -> bool:
        return self.breaker.state == "closed" and not self.pending

    def _remember(self, keys: Sequence[str] = (), tags: Sequence[str] = (), prefix: str | None = None) -> None:
        self.pending.remember(keys, tags, prefix)

    async def _replay_pending(self) -> None:
        await self.pending.replay(self.adapter)

    async def _recover(self) -> bool:
        """One background recovery attempt: ping, replay, close the circuit. True when done."""
        if self._closed or self.breaker.opened_at is None:
            return True
        try:
            await self.adapter.ping()
            await self._replay_pending()
        except Exception as exc:
            logger.debug("cachetier: L2 %s still down (%s: %s)", self.adapter.name, type(exc).__name__, exc)
            return False
        self.breaker.record_success()
        logger.warning("cachetier: L2 %s is back; owed invalidations replayed, circuit closed", self.adapter.name)
        return True

    async def _call(
        self,
        operation: str,
        call: Callable[[], Awaitable[_T]],
        fallback: _T,
        *,
        on_failure: Callable[[], None] | None = None,
    ) -> _T:
        trial = self.breaker.opened_at is not None
        if not self.breaker.allows_call():
            if on_failure is not None:
                on_failure()
            return fallback
        try:
            return await self._call_backend(operation, call, fallback, on_failure)
        finally:
            # Also when the trial was cancelled or raised a caller's mistake: let the next call try.
            if trial:
                self.breaker.end_trial()

    async def _call_backend(
        self,
        operation: str,
        call: Callable[[], Awaitable[_T]],
        fallback: _T,
        on_failure: Callable[[], None] | None,
    ) -> _T:
        try:
            if self.pending or self.pending.lock.locked():
                await self._replay_pending()
            result = await call()
        except _PROGRAMMER_ERRORS:
            raise
        except Exception as exc:
            self._failed(operation, exc, on_failure)
            return fallback
        self.breaker.record_success()
        return result

    def _direct(self) -> bool:
        """True when a call may skip `_call`: circuit closed, nothing to replay first."""
        pending = self.pending
        return self.breaker.opened_at is None and not (
            pending.keys or pending.tags or pending.prefixes or pending.lock.locked()
        )

    def _failed(self, operation: str, exc: Exception, on_failure: Callable[[], None] | None) -> None:
        self.errors += 1
        self.breaker.record_failure()
        if self.breaker.opened_at is not None and not self._closed:
            self._probe.start()
        if on_failure is not None:
            on_failure()
        logger.warning(
            "cachetier: L2 %s %s failed (%s: %s); degrading to L1 (circuit %s)",
            self.adapter.name,
            operation,
            type(exc).__name__,
            exc,
            self.breaker.state,
        )

    # get, mget and set are the hot calls: while the circuit is closed they await the
    # adapter directly, without `_call`'s closures and two extra coroutine frames.
    async def get(self, key: str) -> bytes | None:
        if self._direct():
            try:
                value = await self.adapter.get(key)
            except _PROGRAMMER_ERRORS:
                raise
            except Exception as exc:
                self._failed("get", exc, None)
                value = None
            else:
                self.breaker.record_success()
        else:
            value = await self._call("get", lambda: self.adapter.get(key), None)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if self._direct():
            try:
                values = await self.adapter.mget(keys)
            except _PROGRAMMER_ERRORS:
                raise
            except Exception as exc:
                self._failed("mget", exc, None)
                values = [None] * len(keys)
            else:
                self.breaker.record_success()
        else:
            values = await self._call("mget", lambda: self.adapter.mget(keys), [None] * len(keys))
        absent = values.count(None)
        self.hits += len(values) - absent
        self.misses += absent
        return values

    def _drop_writes(self, keys: Sequence[str]) -> Callable[[], None]:
        def dropped() -> None:
            self.dropped_writes += len(keys)
            self._remember(keys=keys)

        return dropped

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> bool:
        """True when the backend stored it; False when the write was dropped."""
        if self._direct():
            try:
                await self.adapter.set(key, value, ttl, tags)
            except _PROGRAMMER_ERRORS:
                raise
            except Exception as exc:
                self._failed("set", exc, self._drop_writes([key]))
                return False
            self.breaker.record_success()
            return True

        async def write() -> bool:
            await self.adapter.set(key, value, ttl, tags)
            return True

        return await self._call("set", write, False, on_failure=self._drop_writes([key]))

    async def get_or_lease(self, key: str, lease_ttl: float) -> Lease:
        """The adapter's lease answer; `Lease(None)` (load, store plainly) when down or not leasing."""
        adapter = self._leasing()
        if adapter is None:
            return Lease(await self.get(key))
        if self._direct():  # as in `get`: the hot path skips `_call`'s closures
            try:
                lease = await adapter.get_or_lease(key, lease_ttl)
            except _PROGRAMMER_ERRORS:
                raise
            except Exception as exc:
                self._failed("get", exc, None)
                lease = Lease(None)
            else:
                self.breaker.record_success()
        else:
            lease = await self._call("get", lambda: adapter.get_or_lease(key, lease_ttl), Lease(None))
        if lease.value is None:
            self.misses += 1
        else:
            self.hits += 1
        return lease

    async def set_leased(self, key: str, value: bytes, ttl: float, tags: Sequence[str], token: int) -> bool:
        """True when stored; False when the lease was revoked or the backend is down."""
        adapter = self._leasing()
        assert adapter is not None  # tokens come only from a leasing adapter
        return await self._call(
            "set", lambda: adapter.set_leased(key, value, ttl, tags, token), False, on_failure=self._drop_writes([key])
        )

    async def mset(self, entries: Sequence[L2Entry]) -> bool:
        async def write() -> bool:
            await self.adapter.mset(entries)
            return True

        keys = [entry.key for entry in entries]
        return await self._call("mset", write, False, on_failure=self._drop_writes(keys))

    async def delete(self, key: str) -> bool:
        return await self._call(
            "delete", lambda: self.adapter.delete(key), False, on_failure=lambda: self._remember(keys=[key])
        )

    async def exists(self, key: str) -> bool:
        return await self._call("exists", lambda: self.adapter.exists(key), False)

    async def expire(self, key: str, ttl: float) -> bool:
        return await self._call(
            "expire", lambda: self.adapter.expire(key, ttl), False, on_failure=self._drop_writes([key])
        )

    async def incr(self, key: str, by: int, ttl: float) -> int | None:
        return await self._call("incr", lambda: self.adapter.incr(key, by, ttl), None)

    async def invalidate_tags(self, tags: Sequence[str]) -> int:
        return await self._call(
            "invalidate_tags",
            lambda: self.adapter.invalidate_tags(tags),
            0,
            on_failure=lambda: self._remember(tags=tags),
        )

    async def clear(self, prefix: str) -> int:
        return await self._call(
            "clear", lambda: self.adapter.clear(prefix), 0, on_failure=lambda: self._remember(prefix=prefix)
        )

    async def ping(self) -> bool:
        """Probe the backend even when the circuit is open, so health checks see recovery."""
        started = time.perf_counter()
        try:
            if self.pending or self.pending.lock.locked():
                await self._replay_pending()
            await self.adapter.ping()
        except Exception as exc:
            self.errors += 1
            self.breaker.record_failure()
            logger.warning("cachetier: L2 %s ping failed (%s: %s)", self.adapter.name, type(exc).__name__, exc)
            return False
        self.latency_ms = (time.perf_counter() - started) * 1000
        self.breaker.record_success()
        return True

    async def stats(self) -> dict[str, Any]:
        return await self._call("stats", self.adapter.stats, {})

    async def close(self, last_replay_timeout: float = 1.0) -> None:
        """Stop probing, make a bounded last attempt at what is owed, release the backend."""
        self._closed = True
        await self._probe.stop()
        if self.pending:
            try:
                async with asyncio.timeout(last_replay_timeout):
                    await self._replay_pending()
            except Exception as exc:  # TimeoutError included: the backend is still down
                logger.error(
                    "cachetier: closing with changes owed to L2 %s (%s); other processes may read older values"
                    " until those entries expire",
                    self.adapter.name,
                    type(exc).__name__,
                )
        try:
            await self.adapter.close()
        except Exception as exc:
            logger.warning("cachetier: closing L2 %s failed (%s: %s)", self.adapter.name, type(exc).__name__, exc)
