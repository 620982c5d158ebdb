"""`RedisAdapter`'s change feed: Redis server-assisted client-side caching, broadcasting mode.

Two dedicated connections per subscription (RESP2 redirect mode, Redis 6+):

- the *listener* learns its ``CLIENT ID`` and SUBSCRIBEs to ``__redis__:invalidate``;
- the *tracker* then runs ``CLIENT TRACKING ON REDIRECT <listener id> BCAST PREFIX <prefix>``.

From then on the server publishes, once per event-loop turn, every key under the
prefix that any client wrote, deleted, expired or evicted (or null after
FLUSHDB/FLUSHALL). The listener is subscribed before tracking starts, so nothing
is lost in between. Tag indexes (``{t:...}``) and tag lists (``{k:...}``) never
match a ``ns:`` prefix, and keys are filtered by prefix again on arrival.

Why RESP2 and two connections: RESP3 would need one connection only (push
messages), but redis-py's asyncio client has no public hook for "invalidate"
pushes, and a RESP3 connection must be read continuously to see them. A
pub/sub listener is plain request/response parsing that every redis-py >= 5
and both parsers handle. Both connections are made by the adapter's pool
(its connection class and options: same host, Sentinel discovery, TLS,
credentials, db) but live outside it, so they take no pool slot and `RedisAdapter.close` closes them.

Liveness: both connections are read all the time, so a closed socket is seen at
once; after `HEALTH_INTERVAL` seconds of silence each gets a PING, and a second
silent interval counts as a dropped connection (a hung server or a lost route).
The tracker's PINGs also keep it clear of the server's idle ``timeout``.

After a drop the feed reconnects at once, then with backoff (`_BACKOFF_START`
doubling to `_BACKOFF_MAX`), and calls ``on_change(None)`` right after tracking
is back: changes made while nobody listened were missed. It does not empty L1
the moment the connection drops: the feed reconnects through the same route as
the pool, so while it cannot, the manager cannot reach L2 either and serves L1
in degraded mode, as it would without a feed (a server that is down takes no
writes; one that restarted is empty and the flush on reconnect covers it).

Our own changes: the server reports them too, and cannot say who made them,
except those the tracker itself makes: tracking runs with NOLOOP, and a plain
untagged `set` and a `delete` go through the tracker (`redis_quiet`), so they are never echoed.
Reporting the others would drop the copy this process just put in L1, and a late
echo would make the manager discard a load that began after our change. So:

- for a write or a delete, the adapter calls `expect` with the bytes it is about
  to write (None for a delete); a notification for such a key is checked with one
  MGET and reported only when L2 no longer holds exactly that. Echoes are counted
  so that a second write's echo is checked too, but counting alone would be
  unsafe: the server merges writes made in one event-loop turn into one
  notification, so another process's write can hide in our echo; comparing
  values cannot be fooled that way. Such a key's L1 copy stays until the MGET
  answers: echoes are checked at most once per `_CHECK_DELAY` (2 ms), one MGET
  for all that arrived meanwhile, so a writer setting keys one after another
  pays one MGET per window instead of one per write (that doubled its commands);
- after a tag invalidation or a clear, whose keys the client never sees, the
  adapter passes a fence: a key of its own under the prefix, written after the
  changes (by the invalidation script itself), whose notification the server
  sends after theirs; the adapter waits for it (at most `_FENCE_WAIT`) and for
  the echo checks still running. Fence keys are never reported.

Limits: broadcast tracking ignores database numbers: a write to the
same key name in another db is reported too (a spurious drop). Redis Cluster is
not supported (each shard tracks only its own keys; a feed would need a
listener and tracker per primary).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError, RedisError, ResponseError

from cachetier.adapters.redis_quiet import HEALTH_INTERVAL, QuietChannel, take_over
from cachetier.errors import BackendError

CHANNEL: Final = "__redis__:invalidate"
_BACKOFF_START: Final = 0.1
_BACKOFF_MAX: Final = 2.0  # also bounds how long L1 may lag behind a server that came back
_LOSS_GRACE: Final = 0.1  # how long a failed echo check waits to see the feed drop
_MAX_EXPECTED: Final = 10_000  # forgetting expected writes only costs spurious drops
FENCE_MARK: Final = "\x00fence\x00"  # after the prefix; cache keys never hold NUL, so no entry looks like a fence
_FENCE_WAIT: Final = 0.5  # a feed slower than this only costs spurious drops
FENCE_TTL_MS: Final = 1_000  # fence keys expire by themselves; nobody reads them
_CHECK_DELAY: Final = 0.002  # echoes of our writes wait this long to share one MGET check
_ABSENT: Final = b""  # what `expect(key, None)` compares with: MGET's None, normalised

OnChange = Callable[[Sequence[str] | None], None]

logger = logging.getLogger("cachetier")


class InvalidationFeed:
    """One prefix's change feed over two dedicated connections made by `client`'s pool.

    `start` connects (raising `BackendError` when the server refuses tracking, e.g.
    Redis < 6 or an ACL without CLIENT) and starts the reader task; `close` stops it.
    """

    def __init__(self, client: Redis, prefix: str, on_change: OnChange) -> None:
        self._client = client
        self._pool = client.connection_pool
        self._expected: dict[str, list[Any]] = {}  # key -> [bytes expected in L2 (b"" if absent), echoes due]
        self._fences: dict[str, asyncio.Future[None]] = {}
        self._fence_prefix = prefix + FENCE_MARK
        self._checks: set[asyncio.Task[None]] = set()  # the echo check in flight, if any
        self._unchecked: dict[str, bytes] = {}  # echoes of our changes waiting for it: key -> bytes expected
        self._prefix = prefix
        self._on_change = on_change
        self._listener: AbstractConnection | None = None
        self._tracker: AbstractConnection | None = None
        self._quiet: QuietChannel | None = None  # the tracker, once connected, if hiredis can read it
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._connected = False
        self._lost = asyncio.Event()
        self.reconnects = 0

    async def start(self) -> None:
        """Track `prefix` from now on; a server that is down is retried in the background."""
        connected = True
        try:
            await self._connect()
        except ResponseError as exc:
            await self._disconnect()
            raise BackendError(f"redis refused client tracking for {self._prefix!r}: {exc}") from exc
        except (RedisError, OSError) as exc:
            await self._disconnect()
            logger.warning("cachetier: redis change feed for %r not connected (%s); retrying", self._prefix, exc)
            connected = False
        self._connected = connected
        self._task = asyncio.create_task(self._run(connected), name=f"cachetier-redis-feed:{self._prefix}")

    def expect(self, key: str, value: bytes | None) -> None:
        """Note that this process is about to write `value` at `key` (None: delete it), so its echo is not reported."""
        if key.startswith(self._prefix):
            expected = self._expected.get(key)
            if expected is None:
                if len(self._expected) >= _MAX_EXPECTED:
                    self._expected.clear()
                self._expected[key] = [value or _ABSENT, 1]
            else:
                expected[0] = value or _ABSENT
                expected[1] += 1

    def quiet_channel(self, key: str) -> QuietChannel | None:
        """The tracker, for a write of `key` this feed will not echo; None when it cannot take one now."""
        quiet = self._quiet
        if quiet is None or not quiet.usable or not key.startswith(self._prefix):
            return None
        return quiet

    def note_quiet_write(self, key: str, value: bytes | None) -> None:
        """A write (None: a delete) of `key` went through `quiet_channel`: an echo check still due compares with it."""
        expected = self._expected.get(key)
        if expected is not None:
            expected[0] = value or _ABSENT

    def open_fence(self) -> str | None:
        """A new fence key to write after changes whose echoes `pass_fence` then waits for (None: no feed now)."""
        if not self._connected:
            return None
        key = f"{self._fence_prefix}{uuid.uuid4().hex}"
        self._fences[key] = asyncio.get_running_loop().create_future()
        return key

    def abandon_fence(self, key: str | None) -> None:
        """Forget a fence that will never be written (the changes it was to follow failed)."""
        if key is not None:
            self._fences.pop(key, None)

    async def pass_fence(self, key: str | None, *, written: bool) -> None:
        """Return once every change this process made before `key` was written has been through the feed.

        Writes `key` first unless the caller already did (in the same script as its
        changes, saving a round trip); its notification comes after theirs. Gives
        up quietly after `_FENCE_WAIT`: a slow feed only costs spurious drops.
        """
        if key is None:
            return
        try:
            async with asyncio.timeout(_FENCE_WAIT):
                if not written:
                    await self._client.set(key, b"", px=FENCE_TTL_MS)
                await self._fences[key]
                if self._checks:  # echoes of our own writes still being checked: let them report first
                    await asyncio.wait(list(self._checks))
        except (TimeoutError, RedisError) as exc:
            logger.debug("cachetier: change feed fence for %r not seen (%s)", self._prefix, exc)
        finally:
            self._fences.pop(key, None)

    async def close(self) -> None:
        """Stop the reader task and close both connections; idempotent."""
        if self._closed:
            return
        self._closed = True
        tasks = [*self._checks, *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)  # unlike `await task`, never swallows our own cancellation
        await self._disconnect()

    def _new_connection(self, role: str) -> AbstractConnection:
        # RESP2 so invalidations arrive as pub/sub messages; no pool-level health
        # checks, whose PING reply a subscribed connection answers differently.
        options = {**self._pool.connection_kwargs, "protocol": 2, "health_check_interval": 0}
        options["client_name"] = f"cachetier-feed-{role}"
        connection: AbstractConnection = self._pool.connection_class(**options)
        return connection

    async def _connect(self) -> None:
        self._listener = listener = self._new_connection("listener")
        await listener.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        await listener.send_command("CLIENT", "ID")
        listener_id = await listener.read_response()
        await listener.send_command("SUBSCRIBE", CHANNEL)
        await listener.read_response()
        self._tracker = tracker = self._new_connection("tracker")
        await tracker.connect()  # type: ignore[no-untyped-call]
        await tracker.send_command(
            "CLIENT", "TRACKING", "ON", "REDIRECT", listener_id, "BCAST", "PREFIX", self._prefix, "NOLOOP"
        )
        await tracker.read_response()
        self._quiet = take_over(tracker)

    async def _disconnect(self) -> None:
        connections = [self._listener, self._tracker]
        self._listener = self._tracker = None
        self._quiet = None
        for connection in connections:
            if connection is not None:
                with contextlib.suppress(RedisError, OSError):
                    await connection.disconnect()

    async def _run(self, connected: bool) -> None:
        delay, lost_at = 0.0, time.monotonic()
        while True:
            if connected:
                try:
                    await self._pump()
                except Exception as exc:  # any failure, even a bug here, must end in a reconnect
                    logger.warning("cachetier: redis change feed for %r lost (%s); reconnecting", self._prefix, exc)
                self._connected = False
                self._lost.set()
                await self._disconnect()
                delay, lost_at = 0.0, time.monotonic()  # a lone dropped connection comes back at once
            if delay:
                await asyncio.sleep(delay)
            try:
                await self._connect()
            except Exception as exc:
                await self._disconnect()
                delay = min(max(delay * 2, _BACKOFF_START), _BACKOFF_MAX)
                logger.debug("cachetier: redis change feed for %r: reconnect failed (%s)", self._prefix, exc)
                connected = False
                continue
            connected = self._connected = True
            self._lost.clear()
            self.reconnects += 1
            logger.warning(
                "cachetier: redis change feed for %r restored after %.1f s", self._prefix, time.monotonic() - lost_at
            )
            self._notify(None)  # changes made while nobody listened were missed

    async def _pump(self) -> None:
        """Read both connections until either fails; raises what ended it."""
        assert self._listener is not None
        assert self._tracker is not None
        tracker = self._quiet.pump() if self._quiet is not None else self._read(self._tracker, lambda reply: None)
        readers = [asyncio.ensure_future(self._read(self._listener, self._on_message)), asyncio.ensure_future(tracker)]
        try:
            done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.wait(readers)
        for reader in done:
            reader.result()
        raise ConnectionError("change feed reader stopped")

    @staticmethod
    async def _read(connection: AbstractConnection, handle: Callable[[Any], None]) -> None:
        pinged = False
        while True:
            # An explicit timeout returns None on silence instead of raising.
            reply = await connection.read_response(timeout=HEALTH_INTERVAL)
            if reply is not None:
                pinged = False
                handle(reply)
            elif pinged:
                raise TimeoutError(f"no reply to PING within {HEALTH_INTERVAL} s")
            elif not connection.is_connected:  # send_command would silently reconnect, without tracking
                raise ConnectionError("connection closed")
            else:
                await connection.send_command("PING")
                pinged = True

    def _on_message(self, reply: Any) -> None:
        # [b"message", channel, keys or None]; subscribe confirmations and PONGs
        # ([b"pong", b""] on a subscribed connection) carry nothing to act on.
        if not (isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message"):
            return
        if reply[2] is None:  # FLUSHDB / FLUSHALL
            self._notify(None)
            return
        changed, ours = [], {}
        for raw in reply[2]:
            key = raw.decode(errors="replace")
            if not key.startswith(self._prefix):
                continue
            if key.startswith(self._fence_prefix):  # ours or another process's fence: no cache entry
                arrived = self._fences.get(key)
                if arrived is not None and not arrived.done():
                    arrived.set_result(None)
                continue
            expected = self._expected.get(key)
            if expected is None:
                changed.append(key)
                continue
            ours[key] = expected[0]
            expected[1] -= 1  # the entry goes once its check is done (`_report_unless_ours`)
        if changed:
            self._notify(changed)
        if ours:
            # One check in flight at a time: echoes arriving meanwhile wait for the next MGET
            # together, so a busy writer pays one round trip per batch, not one per echo.
            self._unchecked.update(ours)
            if not self._checks:
                check = asyncio.create_task(self._check_echoes())
                self._checks.add(check)
                check.add_done_callback(self._checks.discard)

    async def _check_echoes(self) -> None:
        while self._unchecked:
            await asyncio.sleep(_CHECK_DELAY)
            batch, self._unchecked = self._unchecked, {}
            await self._report_unless_ours(batch)

    async def _report_unless_ours(self, ours: dict[str, bytes]) -> None:
        try:
            current = await self._client.mget(list(ours))
        except Exception:
            # Usually the server went away, which the listener notices at once: then
            # the flush on reconnect covers these keys, and until then their L1
            # copies serve the manager's degraded mode. Otherwise, report them.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), _LOSS_GRACE)
            if self._connected:
                self._notify(list(ours))
            return
        changed = []
        for (key, value), now in zip(ours.items(), current, strict=True):
            # Compare with our latest write or delete of the key: one we made while the MGET
            # was on its way is no foreign change (and one the MGET missed only costs a drop).
            expected = self._expected.get(key)
            if (now or _ABSENT) not in (value, expected[0] if expected else value):
                changed.append(key)
            if expected is not None and expected[1] <= 0:
                del self._expected[key]
        if changed:
            self._notify(changed)

    def _notify(self, keys: Sequence[str] | None) -> None:
        if keys is None:
            self._expected.clear()
            self._unchecked.clear()
        try:
            self._on_change(keys)
        except Exception:
            logger.exception("cachetier: change feed callback for %r failed", self._prefix)
