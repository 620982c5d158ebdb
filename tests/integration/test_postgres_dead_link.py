"""PostgresAdapter against a server that stops answering: every call ends in BackendError, then it recovers.

The real PostgreSQL sits behind a TCP relay on a free loopback port that this test
starts. Freezing the relay keeps every socket open but forwards nothing, which is
what a hung server (the kernel still acknowledges) or a silently dropped link looks
like from the client: no error, no close, just no answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from cachetier.adapters.postgres import PostgresAdapter
from cachetier.errors import BackendError
from cachetier.protocols import L2Entry


class FreezableRelay:
    """Relays loopback TCP connections to `host:port`; while frozen it reads and writes nothing."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers += [client_writer, upstream_writer]
        for reader, writer in ((client_reader, upstream_writer), (upstream_reader, client_writer)):
            task = asyncio.create_task(self._pump(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                await self._flowing.wait()  # frozen: hold this chunk and stop reading, so buffers fill up
                writer.write(data)
                await writer.drain()
        writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        if self._server is not None:
            await self._server.wait_closed()


@pytest.fixture
async def relay(postgres_dsn: str) -> AsyncIterator[tuple[FreezableRelay, str]]:
    """A relay to the test server, and a DSN that goes through it."""
    parts = urlsplit(postgres_dsn)
    relay = FreezableRelay(parts.hostname or "127.0.0.1", parts.port or 5432)
    port = await relay.start()
    netloc = f"{parts.username}@127.0.0.1:{port}" if parts.username else f"127.0.0.1:{port}"
    yield relay, urlunsplit(parts._replace(netloc=netloc))
    await relay.close()


@pytest.fixture
async def adapter(postgres_dsn: str, relay: tuple[FreezableRelay, str]) -> AsyncIterator[PostgresAdapter]:
    """An adapter that talks through the relay, with a short statement timeout; drops its table afterwards."""
    table = f"ct_{uuid.uuid4().hex[:12]}"
    adapter = PostgresAdapter(relay[1], table_name=table, statement_timeout=0.2, pool_size=2)
    yield adapter
    await adapter.close()
    conn = await asyncpg.connect(postgres_dsn)
    await conn.execute(f'DROP TABLE IF EXISTS "{table}"')
    await conn.close()


# An mset far larger than the loopback socket buffers: it blocks in asyncpg's flow control, not on a reply.
_BIG_BATCH = [L2Entry(f"big{i}", b"x" * 16384, 60.0) for i in range(2000)]

_CALLS: dict[str, Callable[[PostgresAdapter], Awaitable[Any]]] = {
    "get": lambda pg: pg.get("k"),
    "mget": lambda pg: pg.mget(["k", "other"]),
    "set": lambda pg: pg.set("k", b"w", 60, ["t"]),
    "mset": lambda pg: pg.mset([L2Entry("k", b"w", 60.0)]),
    "mset of 32 MB": lambda pg: pg.mset(_BIG_BATCH),
    "delete": lambda pg: pg.delete("k"),
}


@pytest.mark.parametrize("call", list(_CALLS))
async def test_a_server_that_stops_answering_raises_backend_error_then_recovers(
    adapter: PostgresAdapter, relay: tuple[FreezableRelay, str], call: str
) -> None:
    await adapter.set("k", b"v", 60)
    relay[0].freeze()
    with pytest.raises(BackendError):
        await _CALLS[call](adapter)
    relay[0].thaw()
    assert await adapter.get("k") in {b"v", b"w"}  # the dead connection was dropped; a new one answers


async def test_every_waiting_call_gets_backend_error_when_the_server_stops_answering(
    adapter: PostgresAdapter, relay: tuple[FreezableRelay, str]
) -> None:
    await adapter.set("k", b"v", 60)
    relay[0].freeze()
    # Two on the pool's connections, the rest queued for one: none may wait forever.
    results = await asyncio.gather(*(adapter.get("k") for _ in range(5)), return_exceptions=True)
    assert all(isinstance(result, BackendError) for result in results), results
    relay[0].thaw()
    assert await adapter.get("k") == b"v"
