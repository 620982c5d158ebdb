"""SQLite files shrink after mass expiry: free pages go back to the file system and the WAL is emptied."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from pathlib import Path

from cachetier.adapters.sqlite import SQLiteAdapter
from cachetier.protocols import L2Entry

ROWS = 3000
VALUE = 4096


def _bytes_on_disk(path: Path) -> int:
    return sum(os.path.getsize(f"{path}{suffix}") for suffix in ("", "-wal") if os.path.exists(f"{path}{suffix}"))


async def test_purge_gives_the_space_of_expired_rows_back(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    adapter = SQLiteAdapter(path)
    try:
        for start in range(0, ROWS, 500):
            await adapter.mset([L2Entry(f"k{i}", os.urandom(VALUE), 0.2, ("t",)) for i in range(start, start + 500)])
        await adapter.set("live", b"v", 60)
        full = _bytes_on_disk(path)
        await asyncio.sleep(0.3)
        assert await adapter.purge_expired() == ROWS
        emptied = _bytes_on_disk(path)
        assert await adapter.get("live") == b"v"
    finally:
        await adapter.close()
    assert full > ROWS * VALUE
    assert emptied < full / 20, (full, emptied)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
