"""Connection helpers shared by the SQLite adapter's modules: paths, transactions, WAL, quoting."""

from __future__ import annotations

import pathlib
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

import platformdirs

from cachetier.errors import ConfigError

BUSY_TIMEOUT: Final = 5.0
WAL_SIZE_LIMIT: Final = 4 << 20  # bytes the WAL file is cut back to after a checkpoint
_SHRINK_WAIT_MS: Final = 200  # how long a shrink waits for other processes' locks before giving up
_VACUUM_PAGES: Final = 1024  # pages freed per incremental_vacuum transaction (4 MiB with 4 KiB pages)
_URL_PREFIX: Final = "sqlite:///"


def default_sqlite_path() -> pathlib.Path:
    """The per-user cache file used when no path is configured; creates its directory."""
    directory = pathlib.Path(platformdirs.user_cache_dir("cachetier"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory / "cachetier.sqlite3"


def path_from_url(url: str) -> str:
    """The file path in `sqlite:///relative/path`, `sqlite:////abs/path` or `sqlite:///:memory:`.

    Raises:
        ConfigError: `url` has another scheme, a host, a query string or no path.
    """
    path = url[len(_URL_PREFIX) :]
    if url[: len(_URL_PREFIX)].lower() != _URL_PREFIX or not path or "?" in path or "#" in path:
        raise ConfigError(
            f"database_url must look like sqlite:///relative/path or sqlite:////absolute/path, got {url!r}"
        )
    return path


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


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string above every string starting with `prefix`; None when there is none."""
    # SQLite compares TEXT as UTF-8 bytes, which sort in code point order, as Python strings do.
    stem = prefix.rstrip("\U0010ffff")
    if not stem:
        return None
    following = ord(stem[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates cannot be encoded; skip past them
        following = 0xE000
    return stem[:-1] + chr(following)


def prepare_storage(conn: sqlite3.Connection) -> None:
    """Pragmas that keep the files bounded, set before WAL and the tables.

    `auto_vacuum = INCREMENTAL` only takes effect on a new, empty file (an existing
    one keeps its mode; `VACUUM` would convert it, but rewrites the whole file under
    an exclusive lock, so that is left to the operator).
    """
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")


def shrink(conn: sqlite3.Connection) -> None:
    """Give free pages back to the file system and empty the WAL, best effort.

    Waits at most `_SHRINK_WAIT_MS` for other processes (readers keep a WAL from
    being reset; the next purge tries again). Runs outside any transaction.
    """
    conn.execute(f"PRAGMA busy_timeout = {_SHRINK_WAIT_MS}")
    try:
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:  # INCREMENTAL
            free = conn.execute("PRAGMA freelist_count").fetchone()[0]
            while free > 0:
                conn.execute(f"PRAGMA incremental_vacuum({_VACUUM_PAGES})").fetchall()
                left = conn.execute("PRAGMA freelist_count").fetchone()[0]
                if left >= free:
                    break
                free = left
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {round(BUSY_TIMEOUT * 1000)}")
