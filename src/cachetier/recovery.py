"""What an L2 outage leaves to do, and noticing the end of the outage without waiting for a caller.

Invalidations must survive an outage: a delete, tag invalidation or clear that
could not reach the backend, and a write that was dropped (the backend may
still hold the older value), are remembered and replayed before the backend
serves anything again. A dropped write is replayed as a delete: the value it
carried may be outdated by the time the backend is back, and a miss is always
safe. If more than `max_pending` pile up, the namespaces they belong to are
cleared instead, which is safe because it only over-invalidates.

A replayed item that fails while the backend answers a ping is bad input the
adapter cannot store (not an outage): it is dropped and logged, never retried
forever, so one malformed key cannot keep the cache degraded.

Recovery does not wait for the next call: `RecoveryProbe` pings the backend in
the background every `interval` seconds while the circuit is open, replays,
and only then closes the circuit, so other processes stop reading values
older than this process's writes within about one interval of the backend
answering again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from cachetier.protocols import L2Adapter

logger = logging.getLogger("cachetier")


class PendingChanges:
    """Deletes, tag invalidations and clears owed to the backend, replayed one replay at a time."""

    def __init__(self, namespace_prefix: str, max_pending: int) -> None:
        self.namespace_prefix = namespace_prefix
        self.max_pending = max_pending
        self.keys: dict[str, None] = {}
        self.tags: dict[str, None] = {}
        self.prefixes: dict[str, None] = {}
        self.lock = asyncio.Lock()
        self.dropped = 0  # items dropped as unreplayable (bad input)

    def __bool__(self) -> bool:
        return bool(self.keys or self.tags or self.prefixes)

    def remember(self, keys: Sequence[str] = (), tags: Sequence[str] = (), prefix: str | None = None) -> None:
        self.keys.update(dict.fromkeys(keys))
        self.tags.update(dict.fromkeys(tags))
        if prefix is not None:
            self.prefixes[prefix] = None
        if len(self.keys) + len(self.tags) > self.max_pending:
            # Keys and tags are namespaced ("ns:..."); calls may name other namespaces than ours.
            for name in (*self.keys, *self.tags):
                namespace, colon, _ = name.partition(":")
                self.prefixes[namespace + colon if colon else self.namespace_prefix] = None
            self.keys.clear()
            self.tags.clear()

    async def replay(self, adapter: L2Adapter) -> None:
        """Send what is owed; raise (keeping the rest) when the backend is down.

        One replay at a time, and callers wait for it: a call must not reach the
        backend before the invalidations it may depend on. What is replayed is
        taken out first, so changes remembered meanwhile wait for the next one.
        """
        async with self.lock:
            if not self:
                return
            prefixes, tags, keys = self.prefixes, self.tags, self.keys
            self.prefixes, self.tags, self.keys = {}, {}, {}
            try:
                for prefix in list(prefixes):
                    await self._one(adapter, partial(adapter.clear, prefix), f"clear {prefix!r}")
                    del prefixes[prefix]
                for tag in list(tags):
                    await self._one(adapter, partial(adapter.invalidate_tags, [tag]), f"tag {tag!r}")
                    del tags[tag]
                for key in list(keys):
                    await self._one(adapter, partial(adapter.delete, key), f"key {key!r}")
                    del keys[key]
            except BaseException:
                self.remember(keys=list(keys), tags=list(tags))
                self.prefixes.update(prefixes)
                raise

    async def _one(self, adapter: L2Adapter, call: Callable[[], Awaitable[object]], what: str) -> None:
        """Replay one item; drop it only when it fails twice while the backend answers pings.

        Twice: the server may come back between a failed call and the ping,
        and a real invalidation must not be mistaken for bad input.
        """
        for attempt in range(2):
            try:
                await call()
                return
            except Exception as exc:
                await adapter.ping()  # raises while the backend is down: keep the item for the next replay
                failure = exc
                if attempt == 0:
                    continue
        self.dropped += 1
        logger.error(
            "cachetier: dropped unreplayable %s after an outage (%s: %s); the backend answers, so it is bad input",
            what,
            type(failure).__name__,
            failure,
        )


class RecoveryProbe:
    """Runs `attempt` every `interval` seconds until it returns True (or `stop()`)."""

    def __init__(self, attempt: Callable[[], Awaitable[bool]], interval: float) -> None:
        self._attempt = attempt
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if await self._attempt():
                return

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])
