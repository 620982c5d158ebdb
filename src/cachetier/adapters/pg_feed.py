"""`PostgresAdapter`'s change feed: LISTEN on the table's channel, report other processes' changes.

Every write, delete, expire, incr, leased store, tag invalidation and clear sends
a notice (`pg_notify`, see `cachetier.adapters.pg_leases`) in its own
transaction, so PostgreSQL delivers it at commit, to every listener, in commit
order. The notice starts with the sending adapter's id: our own are skipped (this
process's L1 is already coherent with them).

One dedicated connection per subscription, outside the pool. Liveness: the
connection is pinged every `_HEALTH_INTERVAL` seconds and must answer within
`_HEALTH_TIMEOUT`; a closed, failed or silent connection is dropped and opened
again (at once, then with backoff up to `_BACKOFF_MAX`), and once LISTEN is back
`on_change(None)` reports that changes may have been missed. While it cannot
reconnect the adapter's pool cannot reach the server either, and the manager
serves L1 in degraded mode as it would without a feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final

import asyncpg

from cachetier.adapters.pg_leases import ORIGIN_CHARS

OnChange = Callable[[Sequence[str] | None], None]

_HEALTH_INTERVAL: Final = 1.0
_HEALTH_TIMEOUT: Final = 2.0
_BACKOFF_START: Final = 0.1
_BACKOFF_MAX: Final = 2.0

logger = logging.getLogger("cachetier")


def parse_notice(payload: str, origin: str, prefix: str) -> tuple[bool, list[str] | None]:
    """(report?, keys): keys under `prefix` a notice names, or None when every copy is suspect."""
    if payload.startswith(origin) or len(payload) <= ORIGIN_CHARS:
        return False, None
    kind, body = payload[ORIGIN_CHARS], payload[ORIGIN_CHARS + 1 :]
    if kind == "k":
        return body.startswith(prefix), [body]
    if kind == "j":
        keys = [key for key in json.loads(body) if isinstance(key, str) and key.startswith(prefix)]
        return bool(keys), keys
    if kind == "p":  # a clear: overlapping prefixes drop everything under ours
        return body.startswith(prefix) or prefix.startswith(body), None
    return True, None  # "*" (too many keys to list) or a kind this version does not know


class ChangeFeed:
    """One LISTEN connection that calls `on_change` for other adapters' changes under `prefix`."""

    def __init__(self, dsn: str, channel: str, origin: str, prefix: str, on_change: OnChange, timeout: float) -> None:
        self._dsn = dsn
        self._channel = channel
        self._origin = origin
        self._prefix = prefix
        self._on_change = on_change
        self._timeout = timeout
        self._conn: asyncpg.Connection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        """Listen before returning, so every change committed afterwards is reported.

        When the server cannot be reached now, keep trying in the background and
        report `None` once listening (L1 may have filled meanwhile).
        """
        connected = True
        try:
            await self._connect()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            logger.warning("cachetier: change feed on %r cannot listen yet: %s", self._channel, exc)
            connected = False
        self._task = asyncio.create_task(self._watch(connected), name=f"cachetier-feed-{self._channel}")

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=self._timeout)
        try:
            await conn.add_listener(self._channel, self._on_notice)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn

    def _on_notice(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        try:
            report, keys = parse_notice(str(payload), self._origin, self._prefix)
        except ValueError:  # a notice we cannot read: safest to drop every copy
            report, keys = True, None
        if report:
            self._notify(keys)

    def _notify(self, keys: Sequence[str] | None) -> None:
        try:
            self._on_change(keys)
        except Exception:
            logger.exception("cachetier: change feed callback failed")

    async def _watch(self, connected: bool) -> None:
        backoff = _BACKOFF_START
        while not self._closed:
            if connected:
                await self._until_lost()
                self._drop()
            if self._stopped():
                return
            try:
                await self._connect()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                logger.debug("cachetier: change feed on %r: reconnect failed: %s", self._channel, exc)
                connected = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                continue
            backoff = _BACKOFF_START
            connected = True
            self._notify(None)  # changes made while nobody listened were missed

    async def _until_lost(self) -> None:
        conn = self._conn
        while conn is not None and not self._closed:
            await asyncio.sleep(_HEALTH_INTERVAL)
            if conn.is_closed():
                return
            try:
                await conn.fetchval("SELECT 1", timeout=_HEALTH_TIMEOUT)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                logger.warning("cachetier: change feed on %r lost its connection: %s", self._channel, exc)
                return

    def _stopped(self) -> bool:
        return self._closed  # a call, so that type checkers do not assume it unchanged across awaits

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=self._timeout)
