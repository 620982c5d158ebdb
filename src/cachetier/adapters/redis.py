"""Redis (standalone or Sentinel-managed) as the L2 store, over redis-py's asyncio client.

Connections and URLs (``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``)
are `cachetier.adapters.redis_connection`'s. A retry may repeat a command whose
reply (not request) was lost; only `incr` minds.

Keys arrive namespaced (``ns:key``) and are stored as given, as plain strings
with PX expiry. Two reserved key families are never counted as entries:

- ``{t:<tag>}``, a tag's index: a sorted set of keys scored by expiry (server
  ms). Each write to a tag drops members whose score has passed
  (ZREMRANGEBYSCORE) and extends the index's PEXPIRE to its latest member, so
  an index holds live keys plus those that died since the tag's last write,
  and vanishes with its last member. (A plain set grows without bound as tagged
  keys expire; checking members' existence on each write costs O(members).)
  Scores come from TIME, read after the script's clock snapshot, so they are
  never below the real expiry and pruning never drops a live key.
- ``{k:<key>}``, a key's tag list (a set with the key's TTL). It makes re-tagging
  exact (a write leaves the indexes of tags the key no longer carries) and lets
  `expire` move the key's scores with its TTL, without which an extended key
  would be pruned early and escape invalidation. A script may touch only the
  keys in KEYS, so the write and expire scripts refuse when the stored list
  names a tag the caller did not pass and return it; the adapter retries with
  those indexes. `delete` and `incr` leave tag data alone: a deleted key stays in
  its indexes until its old expiry, so an old tag may remove a later value of
  that key (a spurious miss, never a stale read).

Writing a value with its tags, resetting a TTL and invalidating tags are each
one Lua script (`cachetier.adapters.redis_scripts`): once `invalidate_tags`
returns, every key written with those tags before it began is gone.

Cluster is not supported yet: a write touches the key, its tag list and its
tags' indexes (different slots), and the invalidation script deletes members it
reads from an index (allowed outside a cluster only). Cluster support must split
the work per slot, keeping the order that makes invalidation safe: add the key
to each tag index (one script per index slot; ``{t:<tag>}`` is hash-tagged so
per-tag companions can join it) *before* writing the value, and invalidate by
atomically popping each index, then UNLINKing the popped keys grouped by slot.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Final, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError, ResponseError

from cachetier.adapters import redis_scripts
from cachetier.adapters.redis_batching import GetBatcher
from cachetier.adapters.redis_connection import client_for_host, client_for_url
from cachetier.adapters.redis_tracking import FENCE_MARK, FENCE_TTL_MS, InvalidationFeed
from cachetier.config import CacheConfig
from cachetier.errors import BackendError, ConfigError, NotAnIntegerError
from cachetier.protocols import L2Entry

_TAG_LIST_OPEN, _TAG_LIST_CLOSE = "{k:", "}"
_RESERVED: Final = (b"{k:", b"{t:")
_FENCE_MARK: Final = FENCE_MARK.encode()
_SCAN_COUNT: Final = 1000
_MSET_CHUNK: Final = 500  # entries per untagged-write script: a longer one holds the server up longer
_ATTEMPTS: Final = 4  # tag-list retries; each one learns every tag the key had


def _tag_index(tag: str) -> str:
    return "{t:" + tag + "}"


def _tag_list(key: str) -> str:
    return _TAG_LIST_OPEN + key + _TAG_LIST_CLOSE


def _reserved(key: bytes) -> bool:
    """Tag data, or a change feed's fence key (which removes itself): never counted as entries."""
    return key.startswith(_RESERVED) or _FENCE_MARK in key


def _ms(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


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
    """`L2Adapter` over one Redis client. Every fault is raised as `BackendError`."""

    name = "redis"

    def __init__(self, client: Redis, *, close_client: bool = False, batch_gets: bool = True) -> None:
        """Wrap `client` (``decode_responses=False``); close it in `close()` only if `close_client`.

        With `batch_gets`, GETs issued while others are in flight go out together
        as one MGET (`cachetier.adapters.redis_batching`); a lone GET is sent at once.
        """
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ConfigError("RedisAdapter needs a client with decode_responses=False (values are bytes)")
        self._client = client
        self._closers: list[Callable[[], Awaitable[None]]] = [client.aclose] if close_client else []
        self._batcher = GetBatcher(client) if batch_gets else None
        self._feeds: list[InvalidationFeed] = []
        self._write = client.register_script(redis_scripts.WRITE)
        self._set_untagged = client.register_script(redis_scripts.SET_UNTAGGED)
        self._expire = client.register_script(redis_scripts.EXPIRE)
        self._invalidate = client.register_script(redis_scripts.INVALIDATE)

    async def _run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA `script`, loading it first when the server lost it (restart, SCRIPT FLUSH).

        Not `script(keys, args)`: redis-py's `AsyncScript.__call__` runs an import
        statement on every call, measured at about 15 µs of a 125 µs round trip here.
        """
        try:
            return await self._client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            await self._client.script_load(script.script)
            return await self._client.evalsha(script.sha, len(keys), *keys, *args)

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
        """Store `value` for `ttl` seconds (rounded up to ms) with exactly `tags`."""
        for feed in self._feeds:
            feed.expect(key, value)
        try:
            if not tags and not await self._run(self._set_untagged, [key, _tag_list(key)], [value, _ms(ttl)]):
                return  # written: the key had no tags to leave (else its position came back)
            await self._write_entry(L2Entry(key, value, ttl, tags), ())
        except RedisError as exc:
            raise _backend_error("set", exc) from exc

    async def mset(self, entries: Sequence[L2Entry]) -> None:
        """Write every entry in one pipelined round trip (more only for keys whose tags changed).

        Untagged entries go in one script per `_MSET_CHUNK`, tagged ones in a WRITE each.
        """
        latest = list({entry.key: entry for entry in entries}.values())  # a later duplicate wins anyway
        if not latest:
            return
        for feed in self._feeds:
            for entry in latest:
                feed.expect(entry.key, entry.value)
        try:
            try:
                rewrites = await self._pipelined_writes(latest)
            except NoScriptError:  # the server lost its scripts (restart, SCRIPT FLUSH)
                await self._client.script_load(redis_scripts.SET_UNTAGGED)
                await self._client.script_load(redis_scripts.WRITE)
                rewrites = await self._pipelined_writes(latest)
            for entry, stored_tags in rewrites:
                await self._write_entry(entry, stored_tags)
        except RedisError as exc:
            raise _backend_error("mset", exc) from exc

    async def _pipelined_writes(self, entries: Sequence[L2Entry]) -> list[tuple[L2Entry, Sequence[bytes]]]:
        """Send every write at once; return the entries to write again with WRITE, and their stored tags."""
        untagged = [entry for entry in entries if not entry.tags]
        tagged = [entry for entry in entries if entry.tags]
        chunks = [untagged[start : start + _MSET_CHUNK] for start in range(0, len(untagged), _MSET_CHUNK)]
        async with self._client.pipeline(transaction=False) as pipe:
            for chunk in chunks:
                keys = [name for entry in chunk for name in (entry.key, _tag_list(entry.key))]
                args = [arg for entry in chunk for arg in (entry.value, _ms(entry.ttl))]
                pipe.evalsha(self._set_untagged.sha, len(keys), *keys, *args)
            for entry in tagged:
                keys, args = self._write_arguments(entry, ())
                pipe.evalsha(self._write.sha, len(keys), *keys, *args)
            results = await pipe.execute()
        rewrites: list[tuple[L2Entry, Sequence[bytes]]] = []
        for chunk, skipped in zip(chunks, results, strict=False):
            rewrites += [(chunk[position - 1], ()) for position in skipped]
        for entry, result in zip(tagged, results[len(chunks) :], strict=True):
            if isinstance(result, list):
                rewrites.append((entry, result))
        return rewrites

    @staticmethod
    def _write_arguments(entry: L2Entry, known: Sequence[str]) -> tuple[list[str], list[Any]]:
        tags = list(dict.fromkeys(entry.tags))
        extra = [tag for tag in known if tag not in tags]
        keys = [entry.key, _tag_list(entry.key), *map(_tag_index, tags + extra)]
        return keys, [entry.value, _ms(entry.ttl), len(tags), *tags, *extra]

    async def _write_entry(self, entry: L2Entry, stored_tags: Sequence[bytes]) -> None:
        known: dict[str, None] = {}
        for _ in range(_ATTEMPTS):
            known.update(dict.fromkeys(tag.decode() for tag in stored_tags))
            keys, args = self._write_arguments(entry, list(known))
            result = await self._run(self._write, keys, args)
            if not isinstance(result, list):
                return
            stored_tags = result
        raise BackendError(f"tags of {entry.key!r} kept changing during set")

    async def delete(self, key: str) -> bool:
        for feed in self._feeds:
            feed.expect(key, None)
        with _backend_errors("delete"):
            return await self._client.unlink(key) == 1

    async def exists(self, key: str) -> bool:
        with _backend_errors("exists"):
            return await self._client.exists(key) == 1

    async def expire(self, key: str, ttl: float) -> bool:
        """Reset a live key's TTL (and its scores in its tags' indexes); False when absent."""
        known: dict[str, None] = {}
        with _backend_errors("expire"):
            for _ in range(_ATTEMPTS):
                keys = [key, _tag_list(key), *map(_tag_index, known)]
                result = await self._run(self._expire, keys, [_ms(ttl), *known])
                if not isinstance(result, list):
                    return bool(result)
                known.update(dict.fromkeys(tag.decode() for tag in result))
        raise BackendError(f"tags of {key!r} kept changing during expire")

    async def incr(self, key: str, by: int, ttl: float) -> int:
        """INCRBY in a transaction with SET NX PX, so a new counter gets `ttl` atomically."""
        with _backend_errors("incr"):
            try:
                async with self._client.pipeline(transaction=True) as pipe:
                    pipe.set(key, 0, px=_ms(ttl), nx=True)
                    pipe.incrby(key, by)
                    results = await pipe.execute()
            except ResponseError as exc:
                if "not an integer" not in str(exc):
                    raise
                raise NotAnIntegerError(f"value at {key!r} is not an integer (or would overflow 64 bits)") from exc
            return int(results[1])

    async def invalidate_tags(self, tags: Sequence[str]) -> int:
        """Delete every key carrying any of `tags` in one script; count each live key once."""
        if not tags:
            return 0
        indexes = [_tag_index(tag) for tag in dict.fromkeys(tags)]
        fences = [(feed, feed.open_fence()) for feed in self._feeds]
        fence_keys = [key for _, key in fences if key is not None]
        arguments = [_TAG_LIST_OPEN, _TAG_LIST_CLOSE, len(fence_keys), FENCE_TTL_MS]
        try:
            with _backend_errors("invalidate_tags"):
                removed = int(await self._run(self._invalidate, [*indexes, *fence_keys], arguments))
        except BackendError:
            for feed, key in fences:
                feed.abandon_fence(key)
            raise
        for feed, key in fences:
            await feed.pass_fence(key, written=True)
        return removed

    async def clear(self, prefix: str) -> int:
        """UNLINK the keys under `prefix` (SCAN, never FLUSHDB) plus their tag data; count entries."""
        pattern = _glob_escape(prefix) + "*"
        with _backend_errors("clear"):
            removed = await self._unlink_matching(pattern, skip_reserved=True)
            await self._unlink_matching("{[kt]:" + pattern, skip_reserved=False)
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
