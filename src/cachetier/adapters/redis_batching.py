"""Coalescing concurrent commands for `RedisAdapter`: GETs into MGETs, scripts into pipelines.

A GET issued while no other is in flight goes out at once, alone, so a lone
caller pays nothing. A GET issued while others are in flight joins a queue; the
queue goes out as one MGET on the next event-loop iteration (it does not wait
for the GETs in flight to return). Under load, one MGET then carries the reads
of every task that woke in the same iteration: one command to pack, send, run
and parse instead of dozens, on one pooled connection instead of dozens.

Each waiter gets its own key's reply. A failed MGET fails every waiter of that
batch, each with its own `BackendError`. A waiter that is cancelled only stops
waiting: the batch goes out for the others, and the cancelled one's reply is dropped.

Reads stay as fresh as unbatched ones: a queued GET is sent after it was
issued, never before, so it sees every write that finished before the call.

Scripts (writes, deletes, expiries, leases) are batched the same way by
`ScriptBatcher`, as one pipeline of EVALSHAs in the order they were issued;
runs of untagged writes become one script call (packing and parsing a command
cost redis-py about 50 µs, a third of a write's client time under load).
Without it, 1,000 concurrent `set` calls each waited for one of the pool's 64
connections, and those whose wait passed `pool_timeout` were dropped on a
healthy server. A script queued behind others is still sent after it was
issued, so it sees every change that returned before it; one that fails alone
(NOSCRIPT aside, which is reloaded and run again) fails only its own caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final, NamedTuple, cast

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from cachetier.adapters.redis_scripts import run_script
from cachetier.errors import BackendError

MAX_BATCH: Final = 512  # keys per MGET: a longer one holds the single-threaded server up longer

_Waiter = tuple[str, "asyncio.Future[bytes | None]"]
_Call = tuple[AsyncScript, Sequence[str], Sequence[Any], "asyncio.Future[Any]"]
_Command = tuple[AsyncScript, list[str], list[Any], list["asyncio.Future[Any]"], list[int]]


class GetBatcher:
    """Sends a GET directly when nothing is in flight, else batches it into an MGET (client: bytes replies)."""

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._in_flight = 0
        self._queue: list[_Waiter] = []
        self._flushes: set[asyncio.Task[None]] = set()  # strong references until each batch is done
        self._next_flush: asyncio.Task[None] | None = None  # scheduled to take the queue, not yet started

    async def get(self, key: str) -> bytes | None:
        """The value at `key`, or None; `BackendError` when Redis fails."""
        if not self._in_flight:
            self._in_flight += 1
            try:
                return cast(bytes | None, await self._client.get(key))
            except RedisError as exc:
                raise BackendError(f"redis get failed: {type(exc).__name__}: {exc}") from exc
            finally:
                self._in_flight -= 1
        future: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        # Not "if the queue is empty": a flush cancelled before it ran would strand the queue for good.
        if self._next_flush is None or self._next_flush.done():
            self._schedule_flush()
        self._queue.append((key, future))
        return await future

    def _schedule_flush(self) -> None:
        # A task's first step runs on the next loop iteration, after every GET issued in this one has queued.
        task = asyncio.get_running_loop().create_task(self._flush())
        self._flushes.add(task)
        self._next_flush = task
        task.add_done_callback(self._flushes.discard)

    async def _flush(self) -> None:
        self._next_flush = None
        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        if self._queue:
            self._schedule_flush()
        batch = [(key, future) for key, future in batch if not future.done()]  # drop cancelled waiters
        if not batch:
            return
        self._in_flight += 1
        try:
            values = cast(list[bytes | None], await self._client.mget([key for key, _ in batch]))
        except BaseException as exc:  # a Redis fault, or this task cancelled (the adapter closing)
            for _, future in batch:
                if not future.done():
                    error = BackendError(f"redis get (batched as mget) failed: {type(exc).__name__}: {exc}")
                    error.__cause__ = exc
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self._in_flight -= 1
        for (_, future), value in zip(batch, values, strict=True):
            if not future.done():
                future.set_result(value)

    async def close(self) -> None:
        """Wait for batches in flight, so that no waiter is left hanging."""
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)


class Joinable(NamedTuple):
    """A script whose calls may be joined into one: KEYS and ARGV are runs of parts, `keys_per_part` KEYS each.

    It must do each part on its own and return the (1-based) positions of the
    parts it did not do, as `redis_scripts.SET_UNTAGGED` does.
    """

    script: AsyncScript
    keys_per_part: int
    max_parts: int


class ScriptBatcher:
    """Runs an EVALSHA directly when no script is in flight, else pipelines it with the others queued.

    Consecutive queued calls of the `joinable` script go out as one call of it
    (at most `max_parts` parts), their KEYS and ARGV concatenated; each caller
    gets the reply its own call would have had (the positions of its parts not
    done). With `batch=False` every `run` is sent at once, alone.
    """

    def __init__(self, client: Redis, joinable: Joinable | None = None, *, batch: bool = True) -> None:
        self._client = client
        self._joinable = joinable
        self._batch = batch
        self._in_flight = 0
        self._queue: list[_Call] = []
        self._flushes: set[asyncio.Task[None]] = set()
        self._next_flush: asyncio.Task[None] | None = None

    def join(self, joinable: Joinable) -> None:
        """Join queued calls of `joinable.script` from now on."""
        self._joinable = joinable

    async def run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The script's reply; raises `RedisError` (or `BackendError` when a whole batch failed)."""
        if not self._in_flight or not self._batch:
            self._in_flight += 1
            try:
                return await run_script(self._client, script, keys, args)
            finally:
                self._in_flight -= 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue([(script, keys, args, future)])
        return await future

    async def run_many(self, calls: Sequence[tuple[AsyncScript, Sequence[str], Sequence[Any]]]) -> list[Any]:
        """Each call's reply or exception, in order; the calls go out together in the next pipeline."""
        loop = asyncio.get_running_loop()
        queued = [(script, keys, args, loop.create_future()) for script, keys, args in calls]
        self._enqueue(queued)
        return await asyncio.gather(*(future for *_, future in queued), return_exceptions=True)

    def _enqueue(self, calls: list[_Call]) -> None:
        # Not "if the queue is empty": a flush cancelled before it ran would strand the queue for good.
        if self._next_flush is None or self._next_flush.done():
            self._schedule_flush()
        self._queue.extend(calls)

    def _schedule_flush(self) -> None:
        task = asyncio.get_running_loop().create_task(self._flush())
        self._flushes.add(task)
        self._next_flush = task
        task.add_done_callback(self._flushes.discard)

    def _commands(self, batch: list[_Call]) -> list[_Command]:
        joinable = self._joinable
        commands: list[_Command] = []
        for script, keys, args, future in batch:
            last = commands[-1] if commands else None
            parts = len(keys) // joinable.keys_per_part if joinable is not None and script is joinable.script else 0
            if (
                parts
                and last is not None
                and last[0] is script
                and joinable is not None
                and sum(last[4]) + parts <= joinable.max_parts
            ):
                last[1].extend(keys)
                last[2].extend(args)
                last[3].append(future)
                last[4].append(parts)
            else:
                commands.append((script, list(keys), list(args), [future], [parts]))
        return commands

    async def _flush(self) -> None:
        self._next_flush = None
        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        if self._queue:
            self._schedule_flush()
        commands = self._commands([call for call in batch if not call[3].done()])
        if not commands:
            return
        self._in_flight += 1
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for script, keys, args, *_ in commands:
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
            for (script, keys, args, futures, parts), result in zip(commands, results, strict=True):
                if isinstance(result, NoScriptError):  # the server lost its scripts (restart, SCRIPT FLUSH)
                    try:
                        result = await run_script(self._client, script, keys, args)
                    except RedisError as exc:
                        result = exc
                _answer(futures, parts, result)
        except BaseException as exc:  # a Redis fault, or this task cancelled (the adapter closing)
            for *_, futures, _ in commands:
                _fail(futures, exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._in_flight -= 1

    async def close(self) -> None:
        """Wait for batches in flight, so that no waiter is left hanging."""
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)


def _answer(futures: list[asyncio.Future[Any]], parts: list[int], result: Any) -> None:
    """Give each caller its own call's reply; `parts` is 0 for a call that was not joined."""
    if isinstance(result, Exception):
        if len(futures) == 1:
            if not futures[0].done():
                futures[0].set_exception(result)
        else:
            _fail(futures, result)
        return
    if not parts[0]:
        if not futures[0].done():
            futures[0].set_result(result)
        return
    skipped, offset = sorted(result), 0
    for future, count in zip(futures, parts, strict=True):
        if not future.done():
            future.set_result([position - offset for position in skipped if offset < position <= offset + count])
        offset += count


def _fail(futures: list[asyncio.Future[Any]], exc: BaseException) -> None:
    for future in futures:
        if not future.done():
            error = BackendError(f"redis script (batched) failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            future.set_exception(error)
