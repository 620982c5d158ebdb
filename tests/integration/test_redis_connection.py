"""Sends bounded by a deadline instead of a task (`cachetier.adapters.redis_connection`), on real servers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine, Generator
from typing import Any

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cachetier.adapters.redis import RedisAdapter
from cachetier.adapters.redis_connection import with_deadline_send
from cachetier.protocols import L2Entry
from servers import RedisServer


async def test_commands_through_the_adapter_create_no_task(redis_url: str) -> None:
    adapter = RedisAdapter.from_url(redis_url)
    prefix = f"conn-test-{uuid.uuid4().hex[:12]}:"
    loop = asyncio.get_running_loop()
    created: list[Coroutine[Any, Any, Any] | Generator[Any, None, Any]] = []

    def counting_factory(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any]
    ) -> asyncio.Task[Any]:
        created.append(coro)
        return asyncio.Task(coro, loop=loop)

    try:
        await adapter.set(prefix + "k", b"v", 60)  # connects outside the counted part
        loop.set_task_factory(counting_factory)  # type: ignore[arg-type]
        try:
            for _ in range(20):
                await adapter.set(prefix + "k", b"v", 60)
                assert await adapter.get(prefix + "k") == b"v"
                assert await adapter.mget([prefix + "k", prefix + "absent"]) == [b"v", None]
        finally:
            loop.set_task_factory(None)
        assert created == []  # redis-py's default `wait_for` send would make one task per command
    finally:
        await adapter.clear(prefix)
        await adapter.close()


@pytest.mark.slow
async def test_a_send_the_server_does_not_take_times_out_and_drops_the_connection() -> None:
    with RedisServer() as server:
        connection = with_deadline_send(Connection)(host="127.0.0.1", port=server.port, socket_timeout=0.3)
        await connection.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        server.pause()  # stops reading: a large enough command fills the socket buffers
        try:
            with pytest.raises(RedisTimeoutError, match="Timeout writing to socket"):
                await connection.send_command("SET", "k", b"x" * (64 * 1024 * 1024))
            assert not connection.is_connected
        finally:
            server.resume()
            await connection.disconnect()


def test_wrapping_is_idempotent_and_keeps_the_base_class() -> None:
    wrapped = with_deadline_send(Connection)
    assert issubclass(wrapped, Connection)
    assert with_deadline_send(wrapped) is wrapped
    assert with_deadline_send(Connection) is wrapped


@pytest.mark.parametrize(
    "command",
    [
        ("MGET", *(f"ns:k{i}" for i in range(100))),
        ("SET", "ns:é", b"\x00\xff" * 100, "PX", 60_000),
        ("EVALSHA", "0" * 40, 2, "a", "b", 1.5, -7),
        ("SET", "k", memoryview(b"view")),
        ("CONFIG GET", "maxmemory"),  # a two-word name: redis-py splits it
    ],
)
def test_commands_are_packed_in_one_piece_with_the_bytes_redis_py_would_send(command: tuple[Any, ...]) -> None:
    connection = with_deadline_send(Connection)()
    packed = connection.pack_command(*command)
    assert b"".join(packed) == b"".join(Connection.pack_command(connection, *command))
    if command[0] != "CONFIG GET":
        assert len(packed) == 1  # hiredis packed it (redis-py's own packing of a long MGET is many pieces)


@pytest.mark.parametrize("argument", [True, None, object()])
def test_arguments_redis_py_refuses_are_still_refused_with_its_error(argument: object) -> None:
    with pytest.raises(DataError):
        with_deadline_send(Connection)().pack_command("SET", "k", argument)


async def test_a_long_mget_reads_back_through_the_packed_command(redis_url: str) -> None:
    adapter = RedisAdapter.from_url(redis_url)
    prefix = f"conn-test-{uuid.uuid4().hex[:12]}:"
    try:
        await adapter.mset([L2Entry(f"{prefix}k{i}", f"v{i}".encode(), 60, ()) for i in range(300)])
        assert await adapter.mget([f"{prefix}k{i}" for i in range(300)]) == [f"v{i}".encode() for i in range(300)]
    finally:
        await adapter.clear(prefix)
        await adapter.close()
