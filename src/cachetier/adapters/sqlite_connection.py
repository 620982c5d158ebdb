"""Connection helpers shared by the SQLite adapter's modules: transactions, WAL, quoting."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

BUSY_TIMEOUT: Final = 5.0


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


@contextmanager
def transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """`begin` ... COMMIT, or ROLLBACK on any exception (the connection is in autocommit mode)."""
    conn.execute(begin)
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def enable_wal(conn: sqlite3.Connection) -> None:
    # Turning a rollback-journal file into WAL needs an exclusive lock, and SQLite fails
    # at once, without calling the busy handler, while another connection (another
    # process opening the new file) holds a lock. Once the file is WAL, this is a no-op.
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
