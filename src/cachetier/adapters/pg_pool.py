"""A minimal asyncpg connection pool for the PostgreSQL adapter's hot path, with a dead-link watchdog."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from time import monotonic
from typing import Any, TypeAlias

import asyncpg
from asyncpg.prepared_stmt import PreparedStatement

from cachetier.errors import CacheClosedError

_Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"


class _Link:
    """One open connection, the statements prepared on it (by SQL text), and what the watchdog needs."""

    __slots__ = ("conn", "cut", "since", "statements")

    def __init__(self, conn: _Connection) -> None:
        self.conn = conn
        self.statements: dict[str, PreparedStatement[asyncpg.Record]] = {}
        self.since = 0.0  # `monotonic()` when its current call started; 0 while idle
        self.cut = False  # cut by the watchdog; its caller is told TimeoutError


class ConnectionStack:
    """A minimal pool: idle connections on a LIFO stack, at most `size` open, opened on demand.

    asyncpg's `Pool` adds ~40% to a 100 µs statement: each release runs a reset
    query (`RESET ALL; UNLISTEN *; ...`: one more round trip) unless disabled,
    and even then schedules extra tasks via `asyncio.shield`. Taking an idle
    connection here never yields to the event loop; we never change session
    state or leave a transaction open, so there is nothing to reset.

    Each connection keeps a prepared statement per SQL text and calls it
    directly, which skips `Connection.fetchval`'s statement-cache lookup and
    wrappers (about 2 µs a call on a small VM).

    A statement gets `timeout` seconds from the server (`statement_timeout`,
    which cancels it and keeps the connection). A server that stops answering
    altogether (hung, or the link silently dropped) is caught by a watchdog:
    a connection busy for `timeout + 1` seconds is cut, and its call raises
    `TimeoutError`. One timer serves the whole pool, instead of asyncpg's
    `command_timeout`, which arms and cancels a timer on every call (5-10 µs
    of a 100 µs round trip on a small VM).
    """

    def __init__(self, dsn: str, size: int, timeout: float) -> None:
        self._dsn = dsn
        self._timeout = timeout
        self._deadline = timeout + 1.0
        self._free = size  # connection slots not held by a caller
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._idle: list[_Link] = []
        self._open: set[_Link] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def size(self) -> int:
        return len(self._open)

    async def run(self, method: str, sql: str, *args: Any) -> Any:
        """`await <prepared sql>.<method>(*args)` on an idle (or new) connection.

        `method` is a `PreparedStatement` method (`fetchval`, `fetchrow`, `executemany`);
        `execute` runs `sql` unprepared (several statements in one string: DDL).
        """
        if self._free > 0 and not self._waiters:
            self._free -= 1  # the common case: no await, no future
        else:
            await self._wait_for_slot()
        try:
            if self._closed:
                raise CacheClosedError("PostgresAdapter is closed")
            idle = self._idle
            link = idle.pop() if idle and not idle[-1].conn.is_closed() else await self._take()
            link.since = monotonic()
            if self._watchdog is None:
                self._watchdog = asyncio.get_running_loop().call_later(self._deadline, self._patrol)
            result: Any = None
            try:
                if method == "execute":
                    result = await link.conn.execute(sql, *args)
                else:
                    statement = link.statements.get(sql)
                    if statement is None:
                        statement = link.statements[sql] = await link.conn.prepare(sql)
                    if method == "executemany":
                        # A large batch can block in flow control, which cutting the connection does not wake.
                        await statement.executemany(*args, timeout=self._deadline)
                    else:
                        result = await getattr(statement, method)(*args)
            except asyncpg.PostgresError as exc:
                if isinstance(exc, asyncpg.InvalidCachedStatementError):
                    link.statements.clear()  # the table changed under them: prepare again on next use
                self._put_back(link)  # the server answered, so the connection is in sync
                raise
            except BaseException as exc:
                self._discard(link)  # lost, timed out or cancelled mid-protocol: not worth salvaging
                if link.cut and not isinstance(exc, asyncio.CancelledError):
                    raise TimeoutError(f"no answer from PostgreSQL within {self._deadline:g} s") from exc
                raise
            self._put_back(link)
            return result
        finally:
            if self._waiters:
                self._release_slot()
            else:
                self._free += 1  # `_release_slot` without the call

    async def _wait_for_slot(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release_slot()  # handed a slot, then cancelled before using it: pass it on
            else:
                with contextlib.suppress(ValueError):  # already popped (and skipped) by `_release_slot`
                    self._waiters.remove(waiter)
            raise

    def _release_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the longest waiter
                return
        self._free += 1

    async def _take(self) -> _Link:
        while self._idle:
            link = self._idle.pop()
            if not link.conn.is_closed():
                return link
            self._discard(link)  # the server closed it while idle (restart, idle_session_timeout)
        conn = await asyncpg.connect(
            self._dsn,
            timeout=self._timeout,
            command_timeout=None,  # the watchdog's job, see the class docstring
            server_settings={"statement_timeout": str(max(1, round(self._timeout * 1000)))},
        )
        link = _Link(conn)
        self._open.add(link)
        return link

    def _patrol(self) -> None:
        """Cut connections busy past the deadline; come back when the oldest remaining call reaches it."""
        self._watchdog = None
        now = monotonic()
        oldest = now
        for link in list(self._open):
            if not link.since:
                continue
            if now - link.since >= self._deadline:
                link.since = 0.0
                link.cut = True
                link.conn.terminate()  # its call fails with ConnectionDoesNotExistError, which `run` reports
            else:
                oldest = min(oldest, link.since)
        if oldest < now:  # some call is still running; else the next call re-arms
            self._watchdog = asyncio.get_running_loop().call_later(oldest + self._deadline - now, self._patrol)

    def _put_back(self, link: _Link) -> None:
        # A connection closed meanwhile (or cut just as its answer came) is discarded at the next take.
        link.since = 0.0
        if self._closed:
            self._discard(link)
        else:
            self._idle.append(link)

    def _discard(self, link: _Link) -> None:
        link.since = 0.0
        self._open.discard(link)
        link.conn.terminate()

    async def close(self) -> None:
        """Close idle connections gracefully and cut busy ones (their callers get a BackendError)."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        idle, self._idle = self._idle, []
        for link in idle:
            self._open.discard(link)
            with contextlib.suppress(Exception):  # a failed graceful close has already aborted the socket
                await link.conn.close(timeout=self._timeout)
        for link in list(self._open):
            self._discard(link)
