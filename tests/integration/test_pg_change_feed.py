"""PostgresAdapter's change feed on the real server: other adapters' changes arrive, our own do not, a lost
connection is reported as None once it is back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import pytest

from cachetier.adapters.pg_feed import parse_notice
from cachetier.adapters.postgres import PostgresAdapter
from cachetier.errors import ConfigError
from cachetier.protocols import InvalidationSource, L2Entry

WAIT = 5.0  # generous on a shared 2-core machine; the figure measured is in the README


class Heard:
    """Collects what the feed reports; `next()` waits for the next report."""

    def __init__(self) -> None:
        self.reports: asyncio.Queue[list[str] | None] = asyncio.Queue()

    def __call__(self, keys: Sequence[str] | None) -> None:
        self.reports.put_nowait(None if keys is None else list(keys))

    async def next(self) -> list[str] | None:
        return await asyncio.wait_for(self.reports.get(), WAIT)

    async def nothing_more(self) -> None:
        await asyncio.sleep(0.3)
        assert self.reports.empty(), self.reports.get_nowait()


@pytest.fixture
def table() -> str:
    return f"ct_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def writer(postgres_dsn: str, table: str) -> AsyncIterator[PostgresAdapter]:
    adapter = PostgresAdapter(postgres_dsn, table_name=table, drop_on_close=True)
    await adapter.ping()
    yield adapter
    await adapter.close()


@pytest.fixture
async def reader(postgres_dsn: str, table: str, writer: PostgresAdapter) -> AsyncIterator[PostgresAdapter]:
    adapter = PostgresAdapter(f"{postgres_dsn}?application_name={table}_r", table_name=table)
    yield adapter
    await adapter.close()


@pytest.fixture
async def heard(reader: PostgresAdapter) -> AsyncIterator[Heard]:
    heard = Heard()
    unsubscribe = await reader.subscribe_invalidations("p:", heard)
    yield heard
    await unsubscribe()


async def test_other_adapters_writes_deletes_and_leased_stores_are_reported(
    writer: PostgresAdapter, heard: Heard
) -> None:
    assert isinstance(writer, InvalidationSource)
    await writer.set("p:a", b"1", 60)
    assert await heard.next() == ["p:a"]
    await writer.mset([L2Entry("p:b", b"1", 60), L2Entry("q:b", b"1", 60)])
    assert await heard.next() == ["p:b"]
    await writer.delete("p:a")
    assert await heard.next() == ["p:a"]
    await writer.expire("p:b", 30)
    assert await heard.next() == ["p:b"]
    await writer.incr("p:n", 1, 60)
    assert await heard.next() == ["p:n"]
    token = (await writer.get_or_lease("p:c", 30)).token
    assert token is not None
    await writer.set_leased("p:c", b"1", 60, ["t"], token)
    assert await heard.next() == ["p:c"]
    await heard.nothing_more()


async def test_keys_outside_the_prefix_and_our_own_changes_are_not_reported(
    writer: PostgresAdapter, reader: PostgresAdapter, heard: Heard
) -> None:
    await writer.set("q:a", b"1", 60)
    await writer.delete("missing")  # deleted nothing: no notice
    await reader.set("p:own", b"1", 60)
    await reader.invalidate_tags(["t"])
    await heard.nothing_more()


async def test_tag_invalidation_reports_its_keys_or_none_when_there_are_too_many(
    writer: PostgresAdapter, heard: Heard
) -> None:
    await writer.mset([L2Entry(f"p:{i}", b"1", 60, ("few",)) for i in range(3)])
    await writer.mset([L2Entry(f"p:{i:0>100}", b"1", 60, ("many",)) for i in range(100)])
    for _ in range(103):
        await heard.next()
    assert await writer.invalidate_tags(["few"]) == 3
    assert sorted(await heard.next() or []) == ["p:0", "p:1", "p:2"]
    assert await writer.invalidate_tags(["many"]) == 100  # about 10 KB of keys: over the notice limit
    assert await heard.next() is None


async def test_clear_of_an_overlapping_prefix_reports_none(writer: PostgresAdapter, heard: Heard) -> None:
    await writer.clear("q:")
    await writer.clear("p:x")
    assert await heard.next() is None
    await heard.nothing_more()


async def test_a_lost_listen_connection_is_reported_once_it_is_back(
    writer: PostgresAdapter, heard: Heard, postgres_dsn: str, table: str
) -> None:
    db = await asyncpg.connect(postgres_dsn)
    try:
        await db.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", f"{table}_r"
        )
    finally:
        await db.close()
    assert await heard.next() is None
    await writer.set("p:after", b"1", 60)
    assert await heard.next() == ["p:after"]


async def test_unsubscribe_stops_reports(writer: PostgresAdapter, reader: PostgresAdapter) -> None:
    heard = Heard()
    unsubscribe = await reader.subscribe_invalidations("", heard)
    await unsubscribe()
    await writer.set("k", b"1", 60)
    await heard.nothing_more()


async def test_without_change_feed_nothing_is_sent_and_subscribing_is_refused(
    postgres_dsn: str, table: str, reader: PostgresAdapter
) -> None:
    quiet = PostgresAdapter(postgres_dsn, table_name=table, change_feed=False)
    try:
        heard = Heard()
        unsubscribe = await reader.subscribe_invalidations("", heard)
        await quiet.set("k", b"1", 60)
        await quiet.invalidate_tags(["t"])
        await heard.nothing_more()
        await unsubscribe()
        with pytest.raises(ConfigError):
            await quiet.subscribe_invalidations("", heard)
    finally:
        await quiet.close()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("0123456789abcdefkp:x", (True, ["p:x"])),
        ("0123456789abcdefkq:x", (False, ["q:x"])),
        ('0123456789abcdefj["p:1", "q:2"]', (True, ["p:1"])),
        ("0123456789abcdefpp", (True, None)),
        ("0123456789abcdefpq:", (False, None)),
        ("0123456789abcdef*", (True, None)),
        ("ffffffffffffffffkp:x", (False, None)),  # our own
    ],
)
def test_notices_are_parsed_by_kind(payload: str, expected: tuple[bool, Any]) -> None:
    assert parse_notice(payload, "ffffffffffffffff", "p:") == expected
