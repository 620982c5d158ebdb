"""An L2 adapter wrapper that runs every backend call inside an observer: timing, tracing.

The manager's hot path is untouched: instrumentation is opt-in, by handing the
manager a wrapped adapter (dogpile's `ProxyBackend` pattern)::

    adapter = instrument(RedisAdapter.from_config(config), observer)
    cache = create_with_config(config, adapter=adapter)

`observer(operation, system)` returns a context manager entered around one
call (`operation` is the adapter method: `get`, `mget`, `set`, ...; `system`
the backend, `redis`, `postgresql`, `sqlite`, ...). An exception raised by the
backend passes through it unchanged, so the manager's guard still counts it and
degrades. The wrapper has the capabilities of what it wraps: it is a
`LeasingAdapter` exactly when the wrapped adapter is one, and anything else it
has (the Redis change feed, a selector's `resolve`) is reached through it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from cachetier import L2Adapter, L2Entry, Lease, LeasingAdapter

Observer = Callable[[str, str], contextlib.AbstractContextManager[object]]

# Backend names as OpenTelemetry's database semantic conventions spell them.
SYSTEMS = {"redis": "redis", "redis-cluster": "redis", "postgres": "postgresql", "sqlite": "sqlite"}


def db_system(adapter: L2Adapter) -> str:
    """`db.system` for an adapter: redis, postgresql, sqlite, else the adapter's own name."""
    return SYSTEMS.get(adapter.name, adapter.name)


class InstrumentedAdapter:
    """Delegates each `L2Adapter` method to `inner` inside `observer(method, system)`."""

    def __init__(self, inner: L2Adapter, observer: Observer) -> None:
        self.inner = inner
        self._observe = observer

    def __getattr__(self, name: str) -> Any:
        # Only for what this class does not define: the change feed, a selector's resolve, reason.
        if name == "inner":  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def name(self) -> str:
        return self.inner.name

    def _call(self, operation: str) -> contextlib.AbstractContextManager[object]:
        return self._observe(operation, db_system(self.inner))

    async def get(self, key: str) -> bytes | None:
        with self._call("get"):
            return await self.inner.get(key)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        with self._call("mget"):
            return await self.inner.mget(keys)

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        with self._call("set"):
            await self.inner.set(key, value, ttl, tags)

    async def mset(self, entries: Sequence[L2Entry]) -> None:
        with self._call("mset"):
            await self.inner.mset(entries)

    async def delete(self, key: str) -> bool:
        with self._call("delete"):
            return await self.inner.delete(key)

    async def exists(self, key: str) -> bool:
        with self._call("exists"):
            return await self.inner.exists(key)

    async def expire(self, key: str, ttl: float) -> bool:
        with self._call("expire"):
            return await self.inner.expire(key, ttl)

    async def incr(self, key: str, by: int, ttl: float) -> int:
        with self._call("incr"):
            return await self.inner.incr(key, by, ttl)

    async def invalidate_tags(self, tags: Sequence[str]) -> int:
        with self._call("invalidate_tags"):
            return await self.inner.invalidate_tags(tags)

    async def clear(self, prefix: str) -> int:
        with self._call("clear"):
            return await self.inner.clear(prefix)

    async def ping(self) -> None:
        with self._call("ping"):
            await self.inner.ping()

    async def stats(self) -> dict[str, Any]:
        with self._call("stats"):
            return await self.inner.stats()

    async def close(self) -> None:
        await self.inner.close()


class InstrumentedLeasingAdapter(InstrumentedAdapter):
    """The wrapper of a `LeasingAdapter`: its two lease calls are observed too."""

    inner: Any

    async def get_or_lease(self, key: str, lease_ttl: float) -> Lease:
        with self._call("get_or_lease"):
            lease: Lease = await self.inner.get_or_lease(key, lease_ttl)
            return lease

    async def set_leased(self, key: str, value: bytes, ttl: float, tags: Sequence[str], token: int) -> bool:
        with self._call("set_leased"):
            stored: bool = await self.inner.set_leased(key, value, ttl, tags, token)
            return stored


def instrument(adapter: L2Adapter, observer: Observer) -> InstrumentedAdapter:
    """`adapter` with each backend call run inside `observer(operation, system)`."""
    if isinstance(adapter, LeasingAdapter):
        return InstrumentedLeasingAdapter(adapter, observer)
    return InstrumentedAdapter(adapter, observer)
