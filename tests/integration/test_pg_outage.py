"""PostgreSQL stopped and started under the adapter (a cluster of the test's own): the change feed reports
the gap, leases in flight at a crash are refused, and calls fail with BackendError only while it is down."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence

import pytest

from cachetier.adapters.postgres import PostgresAdapter
from cachetier.errors import BackendError
from servers import PostgresServer

WAIT = 10.0


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


async def _until_it_answers(adapter: PostgresAdapter) -> None:
    for _ in range(100):
        try:
            await adapter.ping()
            return
        except BackendError:
            await asyncio.sleep(0.1)
    raise AssertionError("the adapter never reached the restarted server")


async def test_the_feed_reports_none_after_a_restart_then_changes_again(server: PostgresServer) -> None:
    table = f"ct_{uuid.uuid4().hex[:12]}"
    writer = PostgresAdapter(server.url, table_name=table, statement_timeout=1.0)
    reader = PostgresAdapter(server.url, table_name=table, statement_timeout=1.0)
    reports: asyncio.Queue[list[str] | None] = asyncio.Queue()

    def heard(keys: Sequence[str] | None) -> None:
        reports.put_nowait(None if keys is None else list(keys))

    try:
        await writer.ping()
        unsubscribe = await reader.subscribe_invalidations("", heard)
        await writer.set("k", b"1", 60)
        assert await asyncio.wait_for(reports.get(), WAIT) == ["k"]
        server.stop("fast")
        with pytest.raises(BackendError):
            await writer.set("k", b"2", 60)
        server.start()
        assert await asyncio.wait_for(reports.get(), WAIT) is None  # whatever happened meanwhile was missed
        await _until_it_answers(writer)
        await writer.set("k", b"3", 60)
        assert await asyncio.wait_for(reports.get(), WAIT) == ["k"]
        await unsubscribe()
    finally:
        await writer.close()
        await reader.close()


async def test_a_lease_in_flight_at_a_crash_is_refused_and_a_new_one_granted(server: PostgresServer) -> None:
    adapter = PostgresAdapter(server.url, table_name=f"ct_{uuid.uuid4().hex[:12]}", statement_timeout=1.0)
    try:
        token = (await adapter.get_or_lease("k", 30)).token
        assert token is not None
        server.stop("immediate")  # a crash: the UNLOGGED lease tables come back empty
        server.start()
        await _until_it_answers(adapter)
        assert await adapter.set_leased("k", b"old", 60, (), token) is False
        fresh = (await adapter.get_or_lease("k", 30)).token
        assert fresh is not None
        assert await adapter.set_leased("k", b"new", 60, (), fresh) is True
        assert await adapter.get("k") == b"new"
    finally:
        await adapter.close()


async def test_a_feed_subscribed_while_the_server_is_down_reports_none_once_it_listens(server: PostgresServer) -> None:
    table = f"ct_{uuid.uuid4().hex[:12]}"
    writer = PostgresAdapter(server.url, table_name=table, statement_timeout=1.0)
    reader = PostgresAdapter(server.url, table_name=table, statement_timeout=1.0)
    reports: asyncio.Queue[list[str] | None] = asyncio.Queue()
    try:
        await writer.ping()
        server.stop("fast")
        unsubscribe = await reader.subscribe_invalidations("", lambda keys: reports.put_nowait(keys and list(keys)))
        server.start()
        assert await asyncio.wait_for(reports.get(), WAIT) is None
        await _until_it_answers(writer)
        await writer.set("k", b"1", 60)
        assert await asyncio.wait_for(reports.get(), WAIT) == ["k"]
        await unsubscribe()
    finally:
        if not server.running:
            server.start()
        await writer.close()
        await reader.close()
