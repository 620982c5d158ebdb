"""Commands sent over the change feed's tracker connection, whose writes Redis does not echo back.

The tracker runs ``CLIENT TRACKING ON REDIRECT <listener> BCAST PREFIX <p> NOLOOP``.
NOLOOP makes the server skip a key in a notification when the last client to
change it in that event-loop turn was the tracker itself. So a write sent here
reaches every other process's feed but never ours, and needs no echo check (an
MGET comparing L2 with what we wrote), which cost a plain `set` about a third
of its client time. The "last client" rule keeps it safe: if another process
writes the key after us in the same turn, the notification names the key.

Scripts do not count as the tracker's writes: Redis runs them as its Lua client,
and NOLOOP compares clients (checked on Redis 7.0: an EVAL from the tracker is
reported, a SET or a MULTI/EXEC is not). So what goes through here is plain
commands, atomic under MULTI/EXEC.

One task reads the connection all the time (the feed's liveness check relies on
it) and hands each reply to the oldest caller still waiting: callers pipeline
freely. After `HEALTH_INTERVAL` seconds of silence it sends a PING; a second
silent interval counts as a dropped connection, and every waiting caller gets
`ConnectionError` (the adapter then writes through the pool). That is the only
time bound on a call: a timeout per call fired when the event loop was busy with
other work, not when the server was, and 32 of 20,000 concurrent deletes failed
that way with replies already in the socket. Replies are parsed with
hiredis, which ``redis[hiredis]`` installs; without it the adapter writes
through its pool as before.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any, Final, cast

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError, ResponseError

try:
    import hiredis
except ImportError:  # pragma: no cover - redis[hiredis] is what the redis extra installs
    HAVE_HIREDIS = False
else:
    HAVE_HIREDIS = True

HEALTH_INTERVAL: Final = 1.0
_READ_SIZE: Final = 65_536
_DRAIN_ABOVE: Final = 262_144  # bytes queued in the transport before a caller waits for the socket
MAX_WAITING: Final = 32
"""Transactions in flight at most; past it, writes go through the pool, where concurrent ones become one script:
20,000 concurrent sets took 1.16 s that way against 1.70 s sent here one transaction each."""
_PING: Final = b"*1\r\n$4\r\nPING\r\n"
_MULTI: Final = b"*1\r\n$5\r\nMULTI\r\n"
_EXEC: Final = b"*1\r\n$4\r\nEXEC\r\n"

Command = Sequence[str | bytes | int]


def take_over(connection: AbstractConnection) -> QuietChannel | None:
    """A channel over `connection`'s streams, or None when it cannot be had (no hiredis, or a
    connection class without asyncio streams): the feed then only reads the tracker, as before."""
    # redis-py made the connection (TLS, AUTH, SELECT, Sentinel discovery, client name);
    # from here its streams are ours, and its own parser is never used again.
    reader = getattr(connection, "_reader", None)
    writer = getattr(connection, "_writer", None)
    if not HAVE_HIREDIS or not isinstance(reader, asyncio.StreamReader) or not isinstance(writer, asyncio.StreamWriter):
        return None
    return QuietChannel(reader, writer)


class _Waiting:
    """A caller's place in the reply queue: how many replies its commands still owe."""

    __slots__ = ("due", "error", "future")

    def __init__(self, future: asyncio.Future[Any] | None, due: int) -> None:
        self.future = future
        self.due = due
        self.error: Any = None


class QuietChannel:
    """Pipelined commands over the streams of one connection that nothing else reads or writes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._replies = hiredis.Reader()
        self._waiting: deque[_Waiting] = deque()
        self._failure: Exception | None = None

    @property
    def usable(self) -> bool:
        """False once the reader stopped, or while `MAX_WAITING` transactions wait: callers should go another way."""
        return self._failure is None and len(self._waiting) < MAX_WAITING

    async def transaction(self, commands: Sequence[Command]) -> list[Any]:
        """Run `commands` in one MULTI/EXEC; EXEC's replies.

        Raises redis-py's `ConnectionError` (the connection is gone or went silent:
        nothing else will succeed here) or `ResponseError`.
        """
        data = [_MULTI, *(hiredis.pack_command(cast(Any, tuple(command))) for command in commands), _EXEC]
        reply = await self._call(b"".join(data), len(commands) + 2)
        for item in reply:
            if isinstance(item, hiredis.ReplyError):
                raise ResponseError(str(item))
        return list(reply)

    async def _call(self, data: bytes, replies: int) -> Any:
        if self._failure is not None:
            raise ConnectionError(f"tracker connection lost: {self._failure}")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._writer.write(data)
        self._waiting.append(_Waiting(future, replies))
        if self._writer.transport.get_write_buffer_size() > _DRAIN_ABOVE:
            await self._writer.drain()
        return await future  # a caller that gives up meanwhile: its reply is read and dropped

    async def pump(self) -> None:
        """Read replies until the connection closes or falls silent, then fail every waiting caller; raises why."""
        try:
            await self._read_forever()
        except Exception as exc:
            self._fail(exc)
            raise
        except BaseException:
            self._fail(ConnectionError("tracker reader stopped"))
            raise

    async def _read_forever(self) -> None:
        pinged = False
        while True:
            try:
                async with asyncio.timeout(HEALTH_INTERVAL):
                    data = await self._reader.read(_READ_SIZE)
            except TimeoutError:
                if pinged:
                    raise TimeoutError(f"no reply to PING within {HEALTH_INTERVAL} s") from None
                self._writer.write(_PING)
                self._waiting.append(_Waiting(None, 1))
                pinged = True
                continue
            if not data:
                raise ConnectionError("connection closed")
            pinged = False
            self._replies.feed(data)
            while (reply := self._replies.gets()) is not False:
                self._deliver(reply)

    def _deliver(self, reply: Any) -> None:
        if not self._waiting:
            raise ConnectionError(f"unexpected reply {reply!r}")
        waiting = self._waiting[0]
        waiting.due -= 1
        if isinstance(reply, hiredis.ReplyError) and waiting.error is None:
            waiting.error = reply  # a command refused while queueing: EXEC then answers EXECABORT
        if waiting.due:
            return
        self._waiting.popleft()
        future = waiting.future
        if future is None or future.done():  # a PING, or a caller that gave up
            return
        if waiting.error is not None:
            future.set_exception(ResponseError(str(waiting.error)))
        else:
            future.set_result(reply)

    def _fail(self, exc: Exception) -> None:
        self._failure = exc
        waiting, self._waiting = self._waiting, deque()
        for item in waiting:
            if item.future is not None and not item.future.done():
                item.future.set_exception(ConnectionError(f"tracker connection lost: {exc}"))
