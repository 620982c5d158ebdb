"""GetBatcher: concurrent GETs go out as one MGET; each caller gets its own reply or its own error."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from cachetier.adapters.redis_batching import MAX_BATCH, GetBatcher
from cachetier.errors import BackendError


class FakeClient:
    """Replies from `data` after `release` is set; records every command sent."""

    def __init__(self, data: dict[str, bytes], fail_mget: bool = False) -> None:
        self.data = data
        self.fail_mget = fail_mget
        self.sent: list[tuple[str, Any]] = []
        self.release = asyncio.Event()

    async def get(self, key: str) -> bytes | None:
        self.sent.append(("GET", key))
        await self.release.wait()
        return self.data.get(key)

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        self.sent.append(("MGET", list(keys)))
        await self.release.wait()
        if self.fail_mget:
            raise RedisConnectionError("connection reset")
        return [self.data.get(key) for key in keys]


def batcher_over(client: FakeClient) -> GetBatcher:
    return GetBatcher(cast(Redis, client))


async def test_a_lone_get_is_sent_at_once_as_a_get() -> None:
    client = FakeClient({"a": b"1"})
    client.release.set()
    assert await batcher_over(client).get("a") == b"1"
    assert client.sent == [("GET", "a")]


async def test_gets_issued_while_one_is_in_flight_go_out_as_one_mget_and_each_gets_its_own_value() -> None:
    client = FakeClient({f"k{i}": f"v{i}".encode() for i in range(10)})
    batcher = batcher_over(client)
    keys = ["k0", "k1", "missing", "k2", "k1"]
    calls = [asyncio.create_task(batcher.get(key)) for key in keys]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    client.release.set()
    assert await asyncio.gather(*calls) == [b"v0", b"v1", None, b"v2", b"v1"]
    assert client.sent == [("GET", "k0"), ("MGET", ["k1", "missing", "k2", "k1"])]


async def test_a_failed_mget_raises_backend_error_in_every_caller_of_the_batch() -> None:
    client = FakeClient({"a": b"1", "b": b"2"}, fail_mget=True)
    batcher = batcher_over(client)
    first = asyncio.create_task(batcher.get("a"))
    batched = [asyncio.create_task(batcher.get(key)) for key in ("b", "c")]
    await asyncio.sleep(0)
    client.release.set()
    assert await first == b"1"
    for call in batched:
        with pytest.raises(BackendError, match="connection reset"):
            await call


async def test_a_cancelled_caller_does_not_disturb_the_others_in_its_batch() -> None:
    client = FakeClient({"a": b"1", "b": b"2", "c": b"3"})
    batcher = batcher_over(client)
    first = asyncio.create_task(batcher.get("a"))
    doomed, kept = asyncio.create_task(batcher.get("b")), asyncio.create_task(batcher.get("c"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the MGET is in flight
    doomed.cancel()
    client.release.set()
    assert await first == b"1"
    assert await kept == b"3"
    with pytest.raises(asyncio.CancelledError):
        await doomed


async def test_a_caller_cancelled_before_the_batch_leaves_is_not_sent() -> None:
    client = FakeClient({"a": b"1", "b": b"2", "c": b"3"})
    batcher = batcher_over(client)
    first = asyncio.create_task(batcher.get("a"))
    doomed, kept = asyncio.create_task(batcher.get("b")), asyncio.create_task(batcher.get("c"))
    await asyncio.sleep(0)  # both queued, the MGET not sent yet
    doomed.cancel()
    client.release.set()
    assert await kept == b"3"
    assert await first == b"1"
    assert client.sent == [("GET", "a"), ("MGET", ["c"])]


async def test_a_long_queue_is_split_into_mgets_of_at_most_max_batch_keys() -> None:
    client = FakeClient({f"k{i}": b"v" for i in range(MAX_BATCH + 10)})
    batcher = batcher_over(client)
    calls = [asyncio.create_task(batcher.get(f"k{i}")) for i in range(MAX_BATCH + 10)]
    await asyncio.sleep(0)
    client.release.set()
    assert await asyncio.gather(*calls) == [b"v"] * (MAX_BATCH + 10)
    assert [len(keys) for command, keys in client.sent if command == "MGET"] == [MAX_BATCH, 9]


async def test_close_waits_for_batches_in_flight() -> None:
    client = FakeClient({"a": b"1", "b": b"2"})
    batcher = batcher_over(client)
    calls = [asyncio.create_task(batcher.get(key)) for key in ("a", "b")]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    closing = asyncio.create_task(batcher.close())
    await asyncio.sleep(0)
    assert not closing.done()
    client.release.set()
    await closing
    assert [call.result() for call in calls] == [b"1", b"2"]


async def test_gets_queued_after_a_flush_was_cancelled_before_it_ran_are_still_answered() -> None:
    client = FakeClient({"a": b"1", "b": b"2", "c": b"3"})
    batcher = batcher_over(client)
    first = asyncio.create_task(batcher.get("a"))
    stranded = asyncio.create_task(batcher.get("b"))
    await asyncio.sleep(0)  # "a" in flight, "b" queued, its flush scheduled but not run
    for flush in list(batcher._flushes):
        flush.cancel()  # as a loop shutting down or a cancelled task group would
    await asyncio.sleep(0)
    later = asyncio.create_task(batcher.get("c"))
    client.release.set()
    assert await asyncio.wait_for(asyncio.gather(stranded, later), timeout=1) == [b"2", b"3"]
    assert await first == b"1"
