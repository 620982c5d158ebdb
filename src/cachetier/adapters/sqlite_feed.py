"""`SQLiteAdapter`'s change feed: a change log in the shared file that subscribers poll.

Processes sharing the file cannot signal each other, so every write, delete,
expire, incr, leased store, tag invalidation and clear appends a row to
`<table>_changes` in its own transaction: (seq, origin, kind, name), kind `k`
for a key, `p` for a cleared prefix, `*` when an invalidation removed too many
keys to list. A subscriber polls every `POLL_INTERVAL` seconds on the adapter's
worker thread; `PRAGMA data_version` tells it whether another connection
committed since the last poll, so an idle file costs one pragma per poll.
Rows are kept `RETENTION` seconds; a subscriber that finds a gap in the
sequence (it slept past the retention) reports None, so every copy is dropped.

The bound: another process drops its L1 copy within `POLL_INTERVAL` plus the
time the poll waits behind other calls on the worker thread, documented as at
most 1 s (measured: see the README).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVar

from cachetier.adapters.sqlite_connection import quote
from cachetier.errors import CacheClosedError

POLL_INTERVAL: Final = 0.1
RETENTION: Final = 30.0
MAX_LISTED_KEYS: Final = 1000  # an invalidation of more keys logs one "*" row instead

OnChange = Callable[[Sequence[str] | None], None]
_T = TypeVar("_T")
Run = Callable[[Callable[[sqlite3.Connection], _T]], Awaitable[_T]]

logger = logging.getLogger("cachetier")


class ChangeLog:
    """The change log's SQL; `record*` run inside the caller's write transaction, on the worker thread."""

    def __init__(self, table_name: str, origin: str, enabled: bool) -> None:
        self.table = quote(f"{table_name}_changes")
        self._table_name = f"{table_name}_changes"
        self.origin = origin
        self.enabled = enabled
        self.own_last = 0  # seq of our latest row (worker thread only)
        self.schema = (
            f"CREATE TABLE IF NOT EXISTS {self.table} (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " origin TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, at REAL NOT NULL)",
        )

    def record(self, conn: sqlite3.Connection, kind: str, name: str) -> None:
        if self.enabled:
            sql = f"INSERT INTO {self.table} (origin, kind, name, at) VALUES (?, ?, ?, ?) RETURNING seq"
            now = time.time()
            self.own_last = int(conn.execute(sql, (self.origin, kind, name, now)).fetchone()[0])
            if self.own_last % 1024 == 0:  # amortised: the log stays about RETENTION seconds long
                self.prune(conn, now)

    def record_keys(self, conn: sqlite3.Connection, keys: Sequence[str]) -> None:
        if not self.enabled or not keys:
            return
        if len(keys) > MAX_LISTED_KEYS:
            self.record(conn, "*", "")
            return
        for key in keys:
            self.record(conn, "k", key)

    def last_seq(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (self._table_name,)).fetchone()
        return 0 if row is None else int(row[0])

    def prune(self, conn: sqlite3.Connection, now: float) -> None:
        conn.execute(f"DELETE FROM {self.table} WHERE at < ?", (now - RETENTION,))


class Subscription:
    """One subscriber's position in the log and its poll (run on the worker thread)."""

    def __init__(self, log: ChangeLog, prefix: str) -> None:
        self._log = log
        self._prefix = prefix
        self._last = -1
        self._data_version = -1

    def poll(self, conn: sqlite3.Connection) -> tuple[bool, list[str] | None]:
        """(report?, keys) for the changes other adapters committed since the last poll."""
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        if self._last < 0:
            self._last, self._data_version = self._log.last_seq(conn), version
            return False, None
        if version == self._data_version:  # no other connection committed: every new row is ours
            if self._log.own_last > self._last:  # (capped by what committed: a rolled-back row's seq is reused)
                self._last = max(self._last, min(self._log.own_last, self._log.last_seq(conn)))
            return False, None
        self._data_version = version
        sql = f"SELECT seq, origin, kind, name FROM {self._log.table} WHERE seq > ? ORDER BY seq"
        rows = conn.execute(sql, (self._last,)).fetchall()
        expected = self._last + 1
        if rows:
            self._last = rows[-1][0]
        elif self._log.last_seq(conn) > self._last:
            self._last = self._log.last_seq(conn)
            return True, None  # pruned before we saw them
        if rows and rows[0][0] != expected:
            return True, None
        keys: list[str] = []
        for _, origin, kind, name in rows:
            if origin == self._log.origin:
                continue
            if kind == "k":
                if name.startswith(self._prefix):
                    keys.append(name)
            elif kind != "p" or name.startswith(self._prefix) or self._prefix.startswith(name):
                return True, None
        return bool(keys), keys


async def poll_forever(
    run: Run[tuple[bool, list[str] | None]], subscription: Subscription, on_change: OnChange
) -> None:
    """Poll every `POLL_INTERVAL` until cancelled; a failed poll is logged and retried, then reported as None."""
    missed = False
    while True:
        try:
            report, keys = await run(subscription.poll)
        except CacheClosedError:
            return
        except Exception as exc:
            if not missed:
                logger.warning("cachetier: SQLite change feed poll failed: %s", exc)
            missed = True
        else:
            if missed:
                report, keys, missed = True, None, False
            if report:
                try:
                    on_change(keys)
                except Exception:
                    logger.exception("cachetier: change feed callback failed")
        await asyncio.sleep(POLL_INTERVAL)


async def subscribe(
    run: Run[tuple[bool, list[str] | None]],
    log: ChangeLog,
    prefix: str,
    on_change: OnChange,
    tasks: set[asyncio.Task[None]],
) -> Callable[[], Awaitable[None]]:
    """Start polling for `SQLiteAdapter.subscribe_invalidations` (the task joins `tasks`); return the unsubscribe."""
    subscription = Subscription(log, prefix)
    task: asyncio.Task[None] | None = None
    if log.enabled:
        await run(subscription.poll)  # the position that changes are reported from
        task = asyncio.create_task(poll_forever(run, subscription, on_change), name="cachetier-sqlite-feed")
        tasks.add(task)

    async def unsubscribe() -> None:
        if task is not None:
            tasks.discard(task)
            task.cancel()
            await asyncio.wait([task])

    return unsubscribe
