"""Redis (standalone or Sentinel-managed) as the L2 store, over redis-py's asyncio client.

Connections and URLs (``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``)
are `cachetier.adapters.redis_connection`'s. A retry may repeat a command whose
reply (not request) was lost; only `incr` minds.

Keys arrive namespaced (``ns:key``) and are stored as given, as plain strings
with PX expiry. Beside them live reserved key families, never counted as
entries (named in `cachetier.adapters.redis_keys`):

- ``{t:<tag>}``, a tag's index: a sorted set of keys scored by expiry (server
  ms). Each write to a tag drops members whose score has passed (at most
  `redis_scripts.PRUNE_MAX` per write, so no write holds the server up) and
  extends the index's PEXPIRE to its latest member, so an index holds live keys
  plus those that died lately, and vanishes with its last member.
  (A plain set grows without bound as tagged keys expire; checking members'
  existence on each write costs O(members).) Scores come from TIME, read after
  the script's clock snapshot, so they are never below the real expiry and
  pruning never drops a live key.
- ``{k:<key>}``, a key's tag list (a set with the key's TTL). It makes re-tagging
  and deleting exact (a write leaves the indexes of tags the key no longer
  carries; a delete leaves every index of the key) and lets `expire` move the
  key's scores with its TTL, without which an extended key would be pruned early
  and escape invalidation. A script may touch only the keys in KEYS, so the
  write, delete and expire scripts refuse when the stored list names a tag the
  caller did not pass and return it; the adapter retries with those indexes.
  `incr` leaves tag data alone.
- leases, their token counter and revocation marks (`redis_lease_scripts`), and
  the purge sets of tag invalidations in progress (`redis_purge`).

Writing a value with its tags, resetting a TTL, deleting and taking or
redeeming a lease are each one Lua script (`redis_scripts`, run by `redis_writes`);
concurrent ones go out as one pipeline (`redis_batching`). Invalidating tags is
a loop of scripts of bounded length (`redis_purge`): once `invalidate_tags`
returns, every key written with those tags before it began is gone.

Cluster is not supported by this adapter: a write touches the key, its tag list and its
tags' indexes (different slots), and the purge deletes members it reads from an
index (allowed outside a cluster only).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Final, cast

from redis.asyncio import Redis
from redis.exceptions import ConnectionError, RedisError, ResponseError

from cachetier.adapters import redis_keys, redis_lease_scripts, redis_purge, redis_scripts
from cachetier.adapters.redis_batching import GetBatcher, ScriptBatcher
from cachetier.adapters.redis_connection import client_for_host, client_for_url
from cachetier.adapters.redis_keys import LEASE_COUNTER, namespace_of, prefix_mark
from cachetier.adapters.redis_quiet import QuietChannel
from cachetier.adapters.redis_tracking import FENCE_MARK, FENCE_TTL_MS, InvalidationFeed
from cachetier.adapters.redis_writes import KeyedScripts, ms
from cachetier.config import CacheConfig
from cachetier.errors import BackendError, ConfigError, NotAnIntegerError
from cachetier.protocols import L2Entry, Lease

_FENCE_MARK: Final = FENCE_MARK.encode()
_SCAN_COUNT: Final = 1000
MAX_LEASE_TTL: Final = 3600.0  # seconds; longer leases are cut to it, and marks fall back to it


def _reserved(key: bytes) -> bool:
    """Tag data, lease data, or a change feed's fence key: never counted as entries."""
    return redis_keys.reserved(key, _FENCE_MARK)


def _glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def _backend_error(operation: str, exc: RedisError) -> BackendError:
    return BackendError(f"redis {operation} failed: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def _backend_errors(operation: str) -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        raise _backend_error(operation, exc) from exc


class RedisAdapter:
    """`L2Adapter` and `LeasingAdapter` over one Redis client. Every fault is raised as `BackendError`."""

    name = "redis"

    def __init__(
        self, client: Redis, *, close_client: bool = False, batch_gets: bool = True, batch_writes: bool = True
    ) -> None:
        """Wrap `client` (``decode_responses=False``); close it in `close()` only if `close_client`.

        With `batch_gets`, GETs issued while others are in flight go out together
        as one MGET; with `batch_writes`, scripts (writes, deletes, expiries,
        leases) issued while others are in flight go out as one pipeline
        (`cachetier.adapters.redis_batching`). A lone call is sent at once.
        """
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ConfigError("RedisAdapter needs a client with decode_responses=False (values are bytes)")
        self._client = client
        self._closers: list[Callable[[], Awaitable[None]]] = [client.aclose] if close_client else []
        self._batcher = GetBatcher(client) if batch_gets else None
        self._feeds: list[InvalidationFeed] = []
        self._scripts = ScriptBatcher(client, batch=batch_writes)
        self._writes = KeyedScripts(client, self._scripts)
        self._invalidate = client.register_script(redis_purge.INVALIDATE)
        self._mark = client.register_script(redis_lease_scripts.MARK)
        self.purge_chunk = redis_purge.CHUNK  # most keys one invalidation script removes (tests make it small)

    @property
    def client(self) -> Redis:
        """The underlying redis-py client (for diagnostics; bypasses the tag bookkeeping)."""
        return self._client

    @classmethod
    def from_config(cls, config: CacheConfig) -> RedisAdapter:
        """Build from `redis_url` (whose settings win), else `redis_host` (default localhost)."""
        options: dict[str, Any] = {
            "max_connections": config.redis_max_connections,
            "socket_timeout": config.redis_socket_timeout,
            "connect_timeout": config.redis_connect_timeout,
            "pool_timeout": config.redis_socket_timeout,
            "db": config.redis_database,
        }
        if config.redis_password is not None:
            options["password"] = config.redis_password
        if config.redis_url:
            return cls.from_url(config.redis_url, **options)
        return cls(
            client_for_host(host=config.redis_host or "localhost", port=config.redis_port, **options), close_client=True
        )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        max_connections: int = 64,
        pool_timeout: float = 1.0,
        socket_timeout: float = 1.0,
        connect_timeout: float = 1.0,
        retries: int = 2,
        **options: Any,
    ) -> RedisAdapter:
        """Connect lazily to `url` (forms in the module docstring); `options` go to redis-py connections.

        Raises `ConfigError` for a malformed URL. Timeouts are seconds.
        """
        options.update(
            max_connections=max_connections,
            pool_timeout=pool_timeout,
            socket_timeout=socket_timeout,
            connect_timeout=connect_timeout,
            retries=retries,
        )
        client, close_also = client_for_url(url, **options)
        adapter = cls(client, close_client=True)
        adapter._closers.extend(close_also)
        return adapter

    async def get(self, key: str) -> bytes | None:
        if self._batcher is not None:
            return await self._batcher.get(key)
        with _backend_errors("get"):
            return cast(bytes | None, await self._client.get(key))

    # mget and set catch RedisError inline: `_backend_errors`, a generator-based
    # context manager, costs a few µs per call on these hot paths.
    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            return cast(list[bytes | None], await self._client.mget(keys))
        except RedisError as exc:
            raise _backend_error("mget", exc) from exc

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        """Store `value` for `ttl` seconds (rounded up to ms) with exactly `tags`; revokes the key's lease."""
        quiet = self._route(key, value, quiet_ok=not tags)
        try:
            if quiet is not None:
                await self._set_quietly(quiet, key, value, ttl)
            else:
                await self._writes.set(key, value, ttl, tags)
        except RedisError as exc:
            raise _backend_error("set", exc) from exc

    def _route(self, key: str, value: bytes | None, *, quiet_ok: bool) -> QuietChannel | None:
        """A feed's tracker for a change of `key` to `value` (None: deleted) that it will not echo, else None
        (the change goes through the pool); every other feed is told to expect the change's echo."""
        quiet = None
        for feed in self._feeds:
            if quiet is None and quiet_ok and (quiet := feed.quiet_channel(key)) is not None:
                feed.note_quiet_write(key, value)
            else:
                feed.expect(key, value)
        return quiet

    async def _set_quietly(self, quiet: QuietChannel, key: str, value: bytes, ttl: float) -> None:
        """Write through a feed's tracker (no echo); through the pool if it failed (the same SET again is harmless)."""
        stored_tags: list[bytes] | None = None  # None: unknown, the tracker failed
        with contextlib.suppress(ConnectionError):
            stored_tags = await self._writes.set_quietly(quiet, key, value, ttl)
        if stored_tags == []:
            return
        for feed in self._feeds:  # WRITE, a script, leaves the key's old tags' indexes, and is echoed
            feed.expect(key, value)
        await self._writes.write(L2Entry(key, value, ttl, ()), stored_tags or ())

    async def mset(self, entries: Sequence[L2Entry]) -> None:
        """Write every entry in one pipelined round trip (more only for keys whose tags changed)."""
        latest = list({entry.key: entry for entry in entries}.values())  # a later duplicate wins anyway
        if not latest:
            return
        for feed in self._feeds:
            for entry in latest:
                feed.expect(entry.key, entry.value)
        with _backend_errors("mset"):
            await self._writes.mset(latest)

    async def get_or_lease(self, key: str, lease_ttl: float) -> Lease:
        """The value; or a new lease of `lease_ttl` seconds (at most `MAX_LEASE_TTL`); or busy. One script."""
        with _backend_errors("get_or_lease"):
            return await self._writes.get_or_lease(key, min(lease_ttl, MAX_LEASE_TTL))

    async def set_leased(self, key: str, value: bytes, ttl: float, tags: Sequence[str], token: int) -> bool:
        """Store as `set` does while `token` holds the key's lease and no mark revoked it; one script."""
        for feed in self._feeds:
            feed.expect(key, value)
        with _backend_errors("set_leased"):
            return await self._writes.write(L2Entry(key, value, ttl, tags), (), token)

    async def delete(self, key: str) -> bool:
        """Remove the key, its lease, its tag list and its memberships in its tags' indexes."""
        quiet = self._route(key, None, quiet_ok=True)
        with _backend_errors("delete"):
            if quiet is None:
                return await self._writes.delete(key)
            removed, stored_tags = False, None  # None: unknown, the tracker failed
            with contextlib.suppress(ConnectionError):
                removed, stored_tags = await self._writes.delete_quietly(quiet, key)
            if stored_tags == []:
                return removed
            # The key had tags (or the tracker failed): DELETE, a script, leaves their indexes (and
            # removes a value written with them meanwhile, as a delete coming after it would); echoed.
            for feed in self._feeds:
                feed.expect(key, None)
            return await self._writes.delete(key) or removed

    async def exists(self, key: str) -> bool:
        with _backend_errors("exists"):
            return await self._client.exists(key) == 1

    async def expire(self, key: str, ttl: float) -> bool:
        """Reset a live key's TTL (and its scores in its tags' indexes); False when absent. Revokes its lease."""
        with _backend_errors("expire"):
            return await self._writes.expire(key, ttl)

    async def incr(self, key: str, by: int, ttl: float) -> int:
        """INCRBY and SET NX PX in one script, so a new counter gets `ttl` atomically; revokes the lease."""
        with _backend_errors("incr"):
            try:
                return await self._writes.incr(key, by, ttl)
            except ResponseError as exc:
                if "not an integer" not in str(exc) and "overflow" not in str(exc):
                    raise
                raise NotAnIntegerError(f"value at {key!r} is not an integer (or would overflow 64 bits)") from exc

    async def invalidate_tags(self, tags: Sequence[str]) -> int:
        """Delete every key carrying any of `tags`, in scripts of bounded length; count each live key once."""
        if not tags:
            return 0
        fences = [(feed, feed.open_fence()) for feed in self._feeds]
        fence_keys = [key for _, key in fences if key is not None]
        try:
            with _backend_errors("invalidate_tags"):
                removed = await redis_purge.invalidate(
                    self._client,
                    self._invalidate,
                    tags,
                    fence_keys,
                    fence_ttl_ms=FENCE_TTL_MS,
                    mark_ttl_ms=ms(MAX_LEASE_TTL),
                    chunk=self.purge_chunk,
                )
        except BackendError:
            for feed, key in fences:
                feed.abandon_fence(key)
            raise
        for feed, key in fences:
            await feed.pass_fence(key, written=True)
        return removed

    async def clear(self, prefix: str) -> int:
        """Mark `prefix`'s namespace (revoking leases), then UNLINK its keys (SCAN, never FLUSHDB) and their data."""
        pattern = _glob_escape(prefix) + "*"
        with _backend_errors("clear"):
            mark = prefix_mark(namespace_of(prefix))
            await redis_scripts.run_script(self._client, self._mark, [LEASE_COUNTER, mark], [ms(MAX_LEASE_TTL)])
            removed = await self._unlink_matching(pattern, skip_reserved=True)
            await self._unlink_matching("{[klt]:" + pattern, skip_reserved=False)
        await self._fence_feeds()
        return removed

    async def _fence_feeds(self) -> None:
        """Let each change feed deliver the echoes of keys we removed without naming them (see `redis_tracking`)."""
        for feed in self._feeds:
            await feed.pass_fence(feed.open_fence(), written=False)

    async def _unlink_matching(self, pattern: str, *, skip_reserved: bool) -> int:
        removed, cursor = 0, None
        while cursor != 0:
            cursor, keys = await self._client.scan(cursor or 0, match=pattern, count=_SCAN_COUNT)
            doomed = [key for key in cast(list[bytes], keys) if not (skip_reserved and _reserved(key))]
            if doomed:
                removed += await self._client.unlink(*doomed)
        return removed

    async def ping(self) -> None:
        with _backend_errors("ping"):
            await self._client.ping()

    async def stats(self) -> dict[str, Any]:
        """Memory, clients and key count from INFO memory/clients and DBSIZE (one round trip)."""
        with _backend_errors("stats"):
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.info("memory")
                pipe.info("clients")
                pipe.dbsize()
                memory, clients, keys = await pipe.execute()
        return {
            "used_memory": memory.get("used_memory"),
            "used_memory_peak": memory.get("used_memory_peak"),
            "maxmemory": memory.get("maxmemory"),
            "connected_clients": clients.get("connected_clients"),
            "blocked_clients": clients.get("blocked_clients"),
            "keys_in_db": keys,
            "pool_max_connections": self._client.connection_pool.max_connections,
        }

    async def subscribe_invalidations(
        self, prefix: str, on_change: Callable[[Sequence[str] | None], None]
    ) -> Callable[[], Awaitable[None]]:
        """Report keys under `prefix` that any client changes (`cachetier.adapters.redis_tracking`).

        Uses two dedicated connections until the returned coroutine function (or
        `close`) is called. Raises `BackendError` when the server refuses tracking.
        """
        feed = InvalidationFeed(self._client, prefix, on_change)
        await feed.start()
        self._feeds.append(feed)

        async def unsubscribe() -> None:
            if feed in self._feeds:
                self._feeds.remove(feed)
            if unsubscribe in self._closers:
                self._closers.remove(unsubscribe)
            await feed.close()

        self._closers.insert(0, unsubscribe)
        return unsubscribe

    async def close(self) -> None:
        """Close the client, pool and Sentinel connections this adapter created; idempotent."""
        closers, self._closers = self._closers, []
        if self._batcher is not None:
            await self._batcher.close()
        await self._scripts.close()
        # Every step runs even if one fails (a failed client close must not leak the Sentinel connections).
        first_error: Exception | None = None
        for closer in closers:
            try:
                await closer()
            except Exception as exc:
                first_error = first_error or exc
        if isinstance(first_error, BackendError):
            raise first_error
        if first_error is not None:
            raise BackendError(f"redis close failed: {type(first_error).__name__}: {first_error}") from first_error
