"""PostgreSQL L2 on asyncpg: one table, one statement per operation.

Design decisions:

- One row per key (`key TEXT COLLATE "C" PRIMARY KEY, value BYTEA, expires_at,
  created_at, tags TEXT[]`). The "C" collation makes the primary-key btree
  order plain code-point order, so `clear(prefix)` is an index range scan
  (`key >= prefix AND key < next(prefix)`) that treats `%` and `_` literally.
- Tags live in the row, so a write and its tags are one atomic upsert, and
  `invalidate_tags` is one `DELETE ... WHERE tags && $1` served by a GIN index.
- The table and indexes are created on first use (`IF NOT EXISTS`) under a
  transaction-scoped advisory lock: concurrent CREATEs otherwise collide on pg_type.
  A statement that finds the table gone (dropped by someone else) recreates it and runs again.
- Expiry is lazy: every read filters `expires_at > now()`; a background task
  (started on first use) deletes expired rows in bounded batches.
- Storage stays bounded: a purge that removed `_VACUUM_AFTER` rows or more runs
  a plain `VACUUM` of the tables (on a connection of its own, without statement
  timeout; it takes no lock that blocks reads or writes), so later writes reuse
  the space and empty trailing pages go back to the file system. Tables are
  created with autovacuum settings for a cache's churn (see `pg_sql.ddl`).
- Connections come from `ConnectionStack`, a minimal pool created on first
  use, not `asyncpg.Pool`, whose release costs a reset round trip and extra tasks.
- SQL text is built once per table (`cachetier.adapters.pg_sql`); each pooled connection prepares each
  statement once and later calls are a single bind/execute.
- Keys and tags over `MAX_KEY_BYTES` UTF-8 bytes (or containing NUL, which
  PostgreSQL text cannot hold) raise `InvalidKeyError`/`InvalidTagError`
  before any I/O: btree and GIN entries are capped near 2.7 KB per row.
- Leases (`get_or_lease`/`set_leased`) and change notices: see `cachetier.adapters.pg_leases`
  for the extra tables and functions and why they are race-free under READ COMMITTED.
- Server faults, timeouts and connection errors become `BackendError`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import asyncpg

from cachetier.adapters.pg_feed import ChangeFeed
from cachetier.adapters.pg_keys import MAX_KEY_BYTES as MAX_KEY_BYTES
from cachetier.adapters.pg_keys import check_identifier, check_key, check_keys, check_tags, prefix_upper_bound
from cachetier.adapters.pg_leases import ORIGIN_CHARS
from cachetier.adapters.pg_names import names
from cachetier.adapters.pg_pool import ConnectionStack
from cachetier.adapters.pg_sql import statements
from cachetier.config import CacheConfig
from cachetier.errors import (
    BackendError,
    CacheClosedError,
    ConfigError,
    NotAnIntegerError,
)
from cachetier.protocols import L2Entry, Lease

logger = logging.getLogger(__name__)


_PURGE_BATCH: Final = 1000
_VACUUM_AFTER: Final = 1000  # rows purged at once that make the purge vacuum the tables
# A stored value that is not a 64-bit decimal integer fails the cast in `incr` with one of these.
_NOT_AN_INTEGER: Final = (
    asyncpg.InvalidTextRepresentationError,
    asyncpg.CharacterNotInRepertoireError,
    asyncpg.NumericValueOutOfRangeError,
    asyncpg.UntranslatableCharacterError,
)
_FAULTS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError, TimeoutError)


class PostgresAdapter:
    """L2 storage in one PostgreSQL table, shared by every process that names it.

    With `unlogged=True` the table is created `UNLOGGED`: writes skip the WAL
    (noticeably faster), but the table is emptied after a server crash and is
    not replicated to standbys. That is usually the right trade for a cache;
    it only takes effect when the table does not exist yet.

    Args:
        dsn: asyncpg DSN (`postgresql://user@host:port/db`).
        table_name: plain identifier (letters, digits, `_`; at most 63), always quoted.
        pool_size: most connections held open.
        statement_timeout: seconds per statement (server-side), also the connect timeout.
        unlogged: create the table `UNLOGGED` (see above).
        cleanup_interval: seconds between background purges of expired rows.
        drop_on_close: drop the table in `close()` (tests, throwaway caches).
        change_feed: send a change notice (NOTIFY) with every write, delete and invalidation, so other
            processes' `subscribe_invalidations` hear of it; off saves a little on every write.
    """

    name = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        table_name: str = "cache_entries",
        pool_size: int = 10,
        statement_timeout: float = 5.0,
        unlogged: bool = False,
        cleanup_interval: float = 60.0,
        drop_on_close: bool = False,
        change_feed: bool = True,
    ) -> None:
        check_identifier(table_name)
        positive = {
            "pool_size": pool_size,
            "statement_timeout": statement_timeout,
            "cleanup_interval": cleanup_interval,
        }
        for setting, number in positive.items():
            if not number > 0:
                raise ConfigError(f"{setting} must be positive, got {number!r}")
        self._dsn = dsn
        self._table = table_name
        self._pool_size = pool_size
        self._timeout = statement_timeout
        self._unlogged = unlogged
        self._cleanup_interval = cleanup_interval
        self._drop_on_close = drop_on_close
        self._origin = uuid.uuid4().hex[:ORIGIN_CHARS]
        self._change_feed = change_feed
        self._sql = statements(table_name, unlogged, self._origin if change_feed else None)
        self._pool: ConnectionStack | None = None
        self._start_lock = asyncio.Lock()
        self._cleanup_task: asyncio.Task[None] | None = None
        self._feeds: list[ChangeFeed] = []
        self._closed = False

    @classmethod
    def from_config(
        cls, config: CacheConfig, *, table_name: str | None = None, drop_on_close: bool = False
    ) -> PostgresAdapter:
        """Build from `config.database_url` and the `database_*` settings; ConfigError without a postgres URL."""
        url = config.database_url
        if not url or not url.startswith(("postgres://", "postgresql://")):
            raise ConfigError(f"database_url must be a postgres:// or postgresql:// URL, got {url!r}")
        return cls(
            url,
            table_name=config.table_name if table_name is None else table_name,
            pool_size=config.database_pool_size,
            statement_timeout=config.database_statement_timeout,
            unlogged=config.database_unlogged,
            cleanup_interval=config.cleanup_interval,
            drop_on_close=drop_on_close,
        )

    async def _start(self) -> ConnectionStack:
        """Open the first connection and create the table once, however many first calls race here."""
        async with self._start_lock:
            if self._closed:
                raise CacheClosedError(f"PostgresAdapter for table {self._table!r} is closed")
            if self._pool is not None:
                return self._pool
            pool = ConnectionStack(self._dsn, self._pool_size, self._timeout)
            try:
                await pool.run("execute", self._sql["create"])
            except BaseException:
                await pool.close()
                raise
            self._pool = pool
            self._cleanup_task = asyncio.create_task(self._cleanup_loop(), name=f"cachetier-purge-{self._table}")
            return pool

    async def _run(self, op: str, *args: Any, method: str = "fetchval") -> Any:
        """Run one statement, turning faults (never caller mistakes) into BackendError."""
        try:
            pool = self._pool if self._pool is not None else await self._start()
            try:
                return await pool.run(method, self._sql[op], *args)
            except (asyncpg.UndefinedTableError, asyncpg.UndefinedFunctionError):
                # Dropped behind our back (another adapter's drop_on_close, a manual reset):
                # recreate it, or every later call would fail until the process restarts.
                await pool.run("execute", self._sql["create"])
                return await pool.run(method, self._sql[op], *args)
            except asyncpg.InvalidCachedStatementError:
                # Altered behind our back: the pool dropped the connection's prepared statements, so
                # this prepares afresh (asyncpg's own statement cache retries the same way, once).
                return await pool.run(method, self._sql[op], *args)
        except (ValueError, TypeError):  # asyncpg's client-side DataError: a bad argument, not a fault
            raise
        except _FAULTS as exc:
            raise BackendError(f"postgres {op} on table {self._table!r} failed: {type(exc).__name__}: {exc}") from exc

    async def get(self, key: str) -> bytes | None:
        check_key(key)
        return await self._run("get", key)  # type: ignore[no-any-return]

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        check_keys(keys)
        found_keys, values = await self._run("mget", keys, method="fetchrow")  # two arrays, or NULLs if none
        if found_keys is None:
            return [None] * len(keys)
        found: dict[str, bytes] = dict(zip(found_keys, values, strict=True))
        return list(map(found.get, keys))

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        check_key(key)
        check_tags(tags)
        await self._run("set", key, value, ttl, list(tags))

    async def mset(self, entries: Sequence[L2Entry]) -> None:
        """All entries or none: asyncpg runs `executemany` as one pipelined, atomic batch."""
        if not entries:
            return
        for entry in entries:
            check_key(entry.key)
            check_tags(entry.tags)
        rows = [(entry.key, entry.value, entry.ttl, list(entry.tags)) for entry in entries]
        await self._run("mset", rows, method="executemany")

    async def delete(self, key: str) -> bool:
        check_key(key)
        return await self._run("delete", key) is True

    async def get_or_lease(self, key: str, lease_ttl: float) -> Lease:
        """One statement: the live value, or a new lease token, or busy (see `LeasingAdapter`)."""
        check_key(key)
        value, token = await self._run("get_or_lease", key, lease_ttl, method="fetchrow")
        if value is not None:
            return Lease(value)
        return Lease(None, token, False) if token is not None else Lease(None, None, True)

    async def set_leased(self, key: str, value: bytes, ttl: float, tags: Sequence[str], token: int) -> bool:
        """One round trip: store only while `token` holds the key and no newer invalidation marks it."""
        check_key(key)
        check_tags(tags)
        return await self._run("set_leased", key, value, ttl, list(tags), token) is True

    async def exists(self, key: str) -> bool:
        check_key(key)
        return await self._run("exists", key) is not None

    async def expire(self, key: str, ttl: float) -> bool:
        check_key(key)
        return await self._run("expire", key, ttl) is not None

    async def incr(self, key: str, by: int, ttl: float) -> int:
        """Atomic add in one upsert; an expired row counts as missing. Values are signed 64-bit."""
        check_key(key)
        if not -(2**63) <= by < 2**63:
            raise NotAnIntegerError(f"increment {by} is outside the signed 64-bit range")
        try:
            return int(await self._run("incr", key, by, ttl))
        except BackendError as exc:
            if isinstance(exc.__cause__, _NOT_AN_INTEGER):
                raise NotAnIntegerError(
                    f"value at {key!r} is not a 64-bit integer (or would overflow)"
                ) from exc.__cause__
            raise

    async def invalidate_tags(self, tags: Sequence[str]) -> int:
        if not tags:
            return 0
        check_tags(tags)
        return int(await self._run("invalidate_tags", list(tags)))

    async def clear(self, prefix: str) -> int:
        """Remove keys starting with `prefix` (compared literally); return how many were live."""
        check_key(prefix)
        return int(await self._run("clear", prefix, prefix_upper_bound(prefix)))

    async def purge_expired(self) -> int:
        """Delete expired rows in batches of 1000 (short locks, bounded WAL); return how many."""
        total = 0
        while True:
            removed = int(await self._run("purge", _PURGE_BATCH))
            total += removed
            if removed < _PURGE_BATCH:
                break
        await self._run("purge_leases")
        await self._run("purge_marks")
        if total >= _VACUUM_AFTER:
            await self._vacuum()
        return total

    async def _vacuum(self) -> None:
        """Make the purged rows' space reusable now; autovacuum may be minutes away. Best effort, never raises."""
        try:
            conn = await asyncpg.connect(self._dsn, timeout=self._timeout, server_settings={"statement_timeout": "0"})
        except _FAULTS as exc:
            logger.warning("cachetier: vacuum of %r could not connect: %s", self._table, exc)
            return
        try:
            await conn.execute(self._sql["vacuum"])
        except _FAULTS as exc:
            logger.warning("cachetier: vacuum of %r failed: %s", self._table, exc)
        finally:
            conn.terminate()

    async def _cleanup_loop(self) -> None:
        while True:
            await asyncio.sleep(self._cleanup_interval)
            try:
                removed = await self.purge_expired()
            except BackendError as exc:
                logger.warning("cachetier: purging expired rows of %r failed: %s", self._table, exc)
            else:
                logger.debug("cachetier: purged %d expired rows of %r", removed, self._table)

    async def subscribe_invalidations(
        self, prefix: str, on_change: Callable[[Sequence[str] | None], None]
    ) -> Callable[[], Awaitable[None]]:
        """Report other adapters' changes under `prefix` (LISTEN/NOTIFY, `cachetier.adapters.pg_feed`).

        Uses one dedicated connection until the returned coroutine function (or `close`) is called.
        Raises `ConfigError` when the adapter was built with `change_feed=False`.
        """
        if not self._change_feed:
            raise ConfigError("this PostgresAdapter sends no change notices (change_feed=False)")
        if self._closed:
            raise CacheClosedError(f"PostgresAdapter for table {self._table!r} is closed")
        feed = ChangeFeed(self._dsn, names(self._table)["channel"], self._origin, prefix, on_change, self._timeout)
        await feed.start()
        self._feeds.append(feed)

        async def unsubscribe() -> None:
            if feed in self._feeds:
                self._feeds.remove(feed)
            await feed.close()

        return unsubscribe

    async def ping(self) -> None:
        await self._run("ping")

    async def stats(self) -> dict[str, Any]:
        """Live entries (an exact count: it scans the expiry index), pool size and table."""
        entries = int(await self._run("count_live"))
        connections = self._pool.size if self._pool is not None else 0
        return {"entries": entries, "pool_size": self._pool_size, "connections": connections, "table": self._table}

    async def close(self) -> None:
        """Stop the purge task, drop the table if asked, close the connections. Safe to call twice."""
        self._closed = True
        feeds, self._feeds = self._feeds, []
        for feed in feeds:
            await feed.close()
        async with self._start_lock:  # waits out a `_start` in flight
            task, self._cleanup_task = self._cleanup_task, None
            if task is not None:
                task.cancel()
                await asyncio.wait([task])
            pool, self._pool = self._pool, None
            if pool is None:
                return
            try:
                if self._drop_on_close:
                    await pool.run("execute", self._sql["drop"])
            except _FAULTS as exc:
                raise BackendError(f"postgres drop of table {self._table!r} failed: {exc}") from exc
            finally:
                await pool.close()
