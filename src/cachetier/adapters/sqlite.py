"""Embedded default L2: one SQLite file that every process on the machine can share.

A sqlite3 connection must stay on its thread and SQLite admits one writer at a
time anyway, so each adapter owns one connection on one dedicated worker thread.
Every call is a single hop there (`loop.run_in_executor`), which serializes the
adapter's operations and makes incr and tag replacement atomic without Python
locks. Writes run in `BEGIN IMMEDIATE` transactions, so other processes queue on
the busy timeout for the write lock up front instead of failing half-way; WAL
lets them read meanwhile, and `synchronous=NORMAL` is durable enough for a cache.
Expiry is Unix time, since processes do not share a monotonic clock: reads skip
expired rows and a background task deletes them in bounded batches.
Leases live in tables of the same file (`cachetier.adapters.sqlite_leases`), so
they hold across processes: check and store are one `BEGIN IMMEDIATE` transaction.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from cachetier.adapters.sqlite_connection import (
    BUSY_TIMEOUT,
    enable_wal,
    prefix_upper_bound,
    prepare_storage,
    quote,
    shrink,
    transaction,
)
from cachetier.adapters.sqlite_connection import default_sqlite_path as default_sqlite_path
from cachetier.adapters.sqlite_connection import path_from_url as path_from_url
from cachetier.adapters.sqlite_feed import MAX_LISTED_KEYS, ChangeLog, OnChange, subscribe
from cachetier.adapters.sqlite_leases import SQLiteLeases
from cachetier.errors import BackendError, CacheClosedError, ConfigError, NotAnIntegerError
from cachetier.protocols import L2Entry, Lease

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Same rule as `CacheConfig.table_name`; names starting with sqlite_ are reserved by SQLite.
_IDENTIFIER: Final = re.compile(r"(?!sqlite_)[A-Za-z_][A-Za-z0-9_]{0,62}", re.IGNORECASE)
_INTEGER: Final = re.compile(rb"[+-]?[0-9]+")
_PURGE_BATCH: Final = 1000


class SQLiteAdapter:
    """L2 storage in a SQLite file, safe to share between processes.

    Args:
        path: Database file (created when missing), or ":memory:" for a private database.
        table_name: Entries table; tags go to f"{table_name}_tags". Letters, digits and _.
        cleanup_interval: Seconds between background sweeps of expired rows.
        change_feed: Log every change for other processes' `subscribe_invalidations`
            (`cachetier.adapters.sqlite_feed`); ignored for ":memory:", which no one else sees.

    Raises:
        ConfigError: `table_name` or `cleanup_interval` is invalid.

    Methods raise `BackendError` when SQLite fails (unopenable file, disk full,
    locked past the busy timeout) and `CacheClosedError` after `close()`.
    """

    name = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table_name: str = "cache_entries",
        cleanup_interval: float = 60.0,
        change_feed: bool = True,
    ) -> None:
        if not _IDENTIFIER.fullmatch(table_name):
            raise ConfigError(
                f"table_name must be a plain SQL identifier (letters, digits, _; at most 63; "
                f"not starting with sqlite_), got {table_name!r}"
            )
        if isinstance(cleanup_interval, bool) or not cleanup_interval > 0:
            raise ConfigError(f"cleanup_interval must be a positive number, got {cleanup_interval!r}")
        self._path = os.fspath(path)
        self._entries = quote(table_name)
        self._tags = quote(f"{table_name}_tags")
        self._leases = SQLiteLeases(table_name)
        self._changes = ChangeLog(table_name, uuid.uuid4().hex[:16], change_feed and self._path not in ("", ":memory:"))
        self._feeds: set[asyncio.Task[None]] = set()
        self._schema = (
            # A rowid table: values can be large blobs, which WITHOUT ROWID stores poorly.
            f"CREATE TABLE IF NOT EXISTS {self._entries}"
            " (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, expires_at REAL NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {quote(table_name + '_expires_at')} ON {self._entries} (expires_at)",
            # Small rows looked up by their whole primary key: WITHOUT ROWID saves a b-tree.
            f"CREATE TABLE IF NOT EXISTS {self._tags}"
            " (tag TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (tag, key)) WITHOUT ROWID",
            f"CREATE INDEX IF NOT EXISTS {quote(table_name + '_tags_key')} ON {self._tags} (key)",
            *self._leases.schema,
            *self._changes.schema,
        )
        self._cleanup_interval = float(cleanup_interval)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cachetier-sqlite")
        self._conn: sqlite3.Connection | None = None  # only ever touched on the worker thread
        self._cleanup_task: asyncio.Task[None] | None = None
        self._closed = False

    async def get(self, key: str) -> bytes | None:
        return (await self.mget([key]))[0]

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        return await self._run(lambda conn: self._read(conn, keys))

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        await self.mset([L2Entry(key, value, ttl, tags)])

    async def mset(self, entries: Sequence[L2Entry]) -> None:
        if entries:
            await self._run(lambda conn: self._write(conn, entries))

    async def get_or_lease(self, key: str, lease_ttl: float) -> Lease:
        """The value, or a new lease, or busy (see `LeasingAdapter`); one hop, and a hit takes no write lock."""
        return await self._run(lambda conn: self._get_or_lease(conn, key, lease_ttl))

    async def set_leased(self, key: str, value: bytes, ttl: float, tags: Sequence[str], token: int) -> bool:
        """Store only while `token` holds the key and no newer invalidation marks it; one transaction."""
        return await self._run(lambda conn: self._set_leased(conn, key, value, ttl, tags, token))

    async def delete(self, key: str) -> bool:
        return await self._run(lambda conn: self._delete(conn, key))

    async def exists(self, key: str) -> bool:
        sql = f"SELECT 1 FROM {self._entries} WHERE key = ? AND expires_at > ?"
        return await self._run(lambda conn: conn.execute(sql, (key, time.time())).fetchone() is not None)

    async def expire(self, key: str, ttl: float) -> bool:
        sql = f"UPDATE {self._entries} SET expires_at = ? WHERE key = ? AND expires_at > ?"

        def update(conn: sqlite3.Connection) -> bool:
            now = time.time()
            with transaction(conn):
                self._leases.revoke(conn, key)
                updated = conn.execute(sql, (now + ttl, key, now)).rowcount == 1
                if updated:
                    self._changes.record(conn, "k", key)
                return updated

        return await self._run(update)

    async def incr(self, key: str, by: int, ttl: float) -> int:
        return await self._run(lambda conn: self._incr(conn, key, by, ttl))

    async def invalidate_tags(self, tags: Sequence[str]) -> int:
        if not tags:
            return 0
        return await self._run(lambda conn: self._invalidate(conn, tags))

    async def clear(self, prefix: str) -> int:
        """Remove every key starting with `prefix`; return how many live keys went."""
        return await self._run(lambda conn: self._clear(conn, prefix))

    async def subscribe_invalidations(self, prefix: str, on_change: OnChange) -> Callable[[], Awaitable[None]]:
        """Report other processes' changes under `prefix` by polling the file's change log (~every 0.1 s).

        Nothing is reported for ":memory:" or with `change_feed=False` (no other process can write then,
        or none logs). Returns a coroutine function that stops the polling.
        """
        return await subscribe(self._run, self._changes, prefix, on_change, self._feeds)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def stats(self) -> dict[str, Any]:
        return await self._run(self._stats)

    async def purge_expired(self) -> int:
        """Delete expired rows and their tags; return how many entries were deleted.

        Each batch is its own short transaction and executor hop, so a large sweep
        never holds the write lock or the worker thread for long. When rows went,
        the file gives its free pages back and the WAL is emptied (`shrink`).
        """
        total = 0
        while True:
            deleted = await self._run(self._purge_batch)
            total += deleted
            if deleted < _PURGE_BATCH:
                break
        if total:
            await self._run(shrink)
        return total

    async def close(self) -> None:
        """Stop the cleanup task, close the connection and stop the worker thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        tasks = [*self._feeds, self._cleanup_task]
        self._feeds.clear()
        self._cleanup_task = None
        for task in tasks:
            if task is not None and not task.done():
                task.cancel()
                if task.get_loop() is loop:
                    await asyncio.wait([task])
        try:
            await loop.run_in_executor(self._executor, self._disconnect)
        except RuntimeError:
            # At interpreter exit concurrent.futures stops its workers before atexit
            # handlers run; the worker is gone, so close the connection from here.
            self._disconnect()
        finally:
            # Queued work (the disconnect above, if this call was cancelled) still runs.
            self._executor.shutdown(wait=False)

    async def _run(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._closed:
            raise CacheClosedError("SQLiteAdapter used after close()")
        loop = asyncio.get_running_loop()
        if self._cleanup_task is None or self._cleanup_task.done():
            self._cleanup_task = loop.create_task(self._clean_periodically(), name="cachetier-sqlite-cleanup")
        return await loop.run_in_executor(self._executor, self._call, operation)

    async def _clean_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._cleanup_interval)
            try:
                await self.purge_expired()
            except CacheClosedError:
                return
            except Exception:
                # A failed sweep only delays the next one: reads already skip expired rows.
                _log.warning("cachetier: sweeping expired rows from %s failed", self._path, exc_info=True)

    # Everything below runs on the worker thread.

    def _call(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        try:
            if self._conn is None:
                self._conn = self._connect()
            return operation(self._conn)
        except sqlite3.Error as exc:
            raise BackendError(f"SQLite cache at {self._path!r} failed: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are exactly our BEGIN ... COMMIT; `timeout` is the busy timeout.
        # check_same_thread=False only so that close() can run at interpreter exit (below);
        # every other use stays on the worker thread.
        conn = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        try:
            prepare_storage(conn)
            enable_wal(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            with transaction(conn):
                for statement in self._schema:
                    conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        return conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _read(self, conn: sqlite3.Connection, keys: Sequence[str]) -> list[bytes | None]:
        # One prepared statement per key rather than IN (?, ...): no bound-parameter
        # limit (999 before SQLite 3.32) and no statement text per list length.
        sql = f"SELECT value FROM {self._entries} WHERE key = ? AND expires_at > ?"
        now = time.time()
        with transaction(conn, "BEGIN"):  # one snapshot for all keys
            rows = [conn.execute(sql, (key, now)).fetchone() for key in keys]
        return [None if row is None else row[0] for row in rows]

    def _get_or_lease(self, conn: sqlite3.Connection, key: str, lease_ttl: float) -> Lease:
        sql = f"SELECT value FROM {self._entries} WHERE key = ? AND expires_at > ?"
        row = conn.execute(sql, (key, time.time())).fetchone()
        if row is not None:
            return Lease(row[0])
        now = time.time()
        with transaction(conn):  # read again under the write lock: a value may have come meanwhile
            row = conn.execute(sql, (key, now)).fetchone()
            return Lease(row[0]) if row is not None else self._leases.take(conn, key, lease_ttl, now)

    def _set_leased(
        self, conn: sqlite3.Connection, key: str, value: bytes, ttl: float, tags: Sequence[str], token: int
    ) -> bool:
        now = time.time()
        with transaction(conn):
            if not self._leases.redeem(conn, key, tags, token, now):
                return False
            self._store(conn, key, value, now + ttl, tags)
        return True

    def _store(self, conn: sqlite3.Connection, key: str, value: bytes, expires_at: float, tags: Sequence[str]) -> None:
        self._leases.revoke(conn, key)
        conn.execute(
            f"INSERT OR REPLACE INTO {self._entries} (key, value, expires_at) VALUES (?, ?, ?)",
            (key, value, expires_at),
        )
        conn.execute(f"DELETE FROM {self._tags} WHERE key = ?", (key,))
        conn.executemany(f"INSERT OR IGNORE INTO {self._tags} (tag, key) VALUES (?, ?)", [(t, key) for t in tags])
        self._changes.record(conn, "k", key)

    def _write(self, conn: sqlite3.Connection, entries: Sequence[L2Entry]) -> None:
        now = time.time()
        with transaction(conn):
            for entry in entries:
                self._store(conn, entry.key, entry.value, now + entry.ttl, entry.tags)

    def _delete(self, conn: sqlite3.Connection, key: str) -> bool:
        now = time.time()
        with transaction(conn):
            self._leases.revoke(conn, key)
            row = conn.execute(f"SELECT expires_at FROM {self._entries} WHERE key = ?", (key,)).fetchone()
            conn.execute(f"DELETE FROM {self._entries} WHERE key = ?", (key,))
            conn.execute(f"DELETE FROM {self._tags} WHERE key = ?", (key,))
            if row is not None:
                self._changes.record(conn, "k", key)
        return row is not None and bool(row[0] > now)

    def _incr(self, conn: sqlite3.Connection, key: str, by: int, ttl: float) -> int:
        now = time.time()
        with transaction(conn):
            sql = f"SELECT value FROM {self._entries} WHERE key = ? AND expires_at > ?"
            row = conn.execute(sql, (key, now)).fetchone()
            if row is None:
                self._store(conn, key, str(by).encode(), now + ttl, ())
                return by
            if not isinstance(row[0], bytes) or not _INTEGER.fullmatch(row[0]):
                raise NotAnIntegerError(f"value at {key!r} is not an integer")
            number = int(row[0]) + by
            conn.execute(f"UPDATE {self._entries} SET value = ? WHERE key = ?", (str(number).encode(), key))
            self._changes.record(conn, "k", key)
        return number

    def _invalidate(self, conn: sqlite3.Connection, tags: Sequence[str]) -> int:
        now = time.time()
        removed = 0
        with transaction(conn):
            self._leases.revoke_tags(conn, tags, now)
            if self._changes.enabled:
                listed = ", ".join("?" * len(tags))
                keys_sql = f"SELECT DISTINCT key FROM {self._tags} WHERE tag IN ({listed}) LIMIT {MAX_LISTED_KEYS + 1}"
                self._changes.record_keys(conn, [key for (key,) in conn.execute(keys_sql, tuple(tags))])
            # Keys removed for one tag are gone when the next is counted: each counts once.
            for tag in dict.fromkeys(tags):
                tagged = f"SELECT key FROM {self._tags} WHERE tag = ?"
                sql = f"SELECT COUNT(*) FROM {self._entries} WHERE expires_at > ? AND key IN ({tagged})"
                removed += conn.execute(sql, (now, tag)).fetchone()[0]
                conn.execute(f"DELETE FROM {self._entries} WHERE key IN ({tagged})", (tag,))
                # Last, because the subquery reads these rows; drops the keys' other tags too.
                conn.execute(f"DELETE FROM {self._tags} WHERE key IN ({tagged})", (tag,))
        return removed

    def _clear(self, conn: sqlite3.Connection, prefix: str) -> int:
        # A range on the primary key instead of LIKE: indexed, and % or _ in a prefix are literal.
        upper = prefix_upper_bound(prefix)
        where, params = ("key >= ?", (prefix,)) if upper is None else ("key >= ? AND key < ?", (prefix, upper))
        with transaction(conn):
            self._leases.revoke_prefix(conn, prefix, where, params, time.time())
            self._changes.record(conn, "p", prefix)
            sql = f"SELECT COUNT(*) FROM {self._entries} WHERE {where} AND expires_at > ?"
            count: int = conn.execute(sql, (*params, time.time())).fetchone()[0]
            conn.execute(f"DELETE FROM {self._entries} WHERE {where}", params)
            conn.execute(f"DELETE FROM {self._tags} WHERE {where}", params)
        return count

    def _purge_batch(self, conn: sqlite3.Connection) -> int:
        with transaction(conn):
            self._leases.prune(conn, time.time())
            self._changes.prune(conn, time.time())
            sql = f"SELECT key FROM {self._entries} WHERE expires_at <= ? LIMIT ?"
            keys = conn.execute(sql, (time.time(), _PURGE_BATCH)).fetchall()
            conn.executemany(f"DELETE FROM {self._tags} WHERE key = ?", keys)
            conn.executemany(f"DELETE FROM {self._entries} WHERE key = ?", keys)
        return len(keys)

    def _stats(self, conn: sqlite3.Connection) -> dict[str, Any]:
        sql = f"SELECT COUNT(*) FROM {self._entries} WHERE expires_at > ?"
        entries = conn.execute(sql, (time.time(),)).fetchone()[0]
        tags = conn.execute(f"SELECT COUNT(DISTINCT tag) FROM {self._tags}").fetchone()[0]
        return {"entries": entries, "tags": tags, "path": self._path}
