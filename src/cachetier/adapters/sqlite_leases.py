"""The lease book of `SQLiteAdapter`, in tables of the shared file (memory_leases.py's rules, across processes).

A lease is a row (key -> token, expires_at); tokens come from a counter row. Writes
and deletes delete the key's lease row. Tag invalidations and clears cannot know
which keys a load in flight will store, so they leave a *mark* (tag or prefix ->
the counter at that time); a leased store is refused when a mark on one of its tags,
or on a prefix of its key, is newer than its token. Marks live as long as the
longest lease alive when they were written; dropping one raises a floor (a mark
on the empty prefix) that refuses any older lease.

Every method runs inside the caller's `BEGIN IMMEDIATE` transaction, which holds
the file's write lock: check and store are one atomic step for every process.
Times are Unix seconds, since processes share no monotonic clock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from cachetier.adapters.sqlite_connection import quote
from cachetier.protocols import Lease


class SQLiteLeases:
    """SQL for the lease, mark and counter tables that go with one entries table."""

    def __init__(self, table_name: str) -> None:
        self._leases = quote(f"{table_name}_leases")
        self._marks = quote(f"{table_name}_marks")
        self._counter = quote(f"{table_name}_counter")
        self.schema = (
            f"CREATE TABLE IF NOT EXISTS {self._leases}"
            " (key TEXT PRIMARY KEY NOT NULL, token INTEGER NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {self._marks} (kind TEXT NOT NULL, name TEXT NOT NULL,"
            " token INTEGER NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (kind, name)) WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {self._counter}"
            " (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL)",
            f"INSERT OR IGNORE INTO {self._counter} (id, last) VALUES (1, 0)",
        )

    def _next_token(self, conn: sqlite3.Connection) -> int:
        row = conn.execute(f"UPDATE {self._counter} SET last = last + 1 WHERE id = 1 RETURNING last").fetchone()
        return int(row[0])

    def take(self, conn: sqlite3.Connection, key: str, lease_ttl: float, now: float) -> Lease:
        """A new lease on the (missing) key, or busy while another live lease holds it."""
        sql = f"SELECT 1 FROM {self._leases} WHERE key = ? AND expires_at > ?"
        if conn.execute(sql, (key, now)).fetchone() is not None:
            return Lease(None, None, True)
        token = self._next_token(conn)
        conn.execute(
            f"INSERT OR REPLACE INTO {self._leases} (key, token, expires_at) VALUES (?, ?, ?)",
            (key, token, now + lease_ttl),
        )
        return Lease(None, token, False)

    def redeem(self, conn: sqlite3.Connection, key: str, tags: Sequence[str], token: int, now: float) -> bool:
        """True (and the lease released) when `token` still holds `key` and no newer mark covers it."""
        sql = f"DELETE FROM {self._leases} WHERE key = ? AND token = ? AND expires_at > ? RETURNING 1"
        if conn.execute(sql, (key, token, now)).fetchone() is None:
            return False
        tagged = f"SELECT 1 FROM {self._marks} WHERE kind = 't' AND name = ? AND token > ?"
        if any(conn.execute(tagged, (tag, token)).fetchone() is not None for tag in tags):
            return False
        prefixes = conn.execute(f"SELECT name FROM {self._marks} WHERE kind = 'p' AND token > ?", (token,))
        return not any(key.startswith(prefix) for (prefix,) in prefixes)

    def revoke(self, conn: sqlite3.Connection, key: str) -> None:
        conn.execute(f"DELETE FROM {self._leases} WHERE key = ?", (key,))

    def _mark(self, conn: sqlite3.Connection, kind: str, names: Sequence[str], now: float) -> None:
        token = self._next_token(conn)
        row = conn.execute(f"SELECT max(expires_at) FROM {self._leases}").fetchone()
        until = max(now, row[0] or now)
        conn.executemany(
            f"INSERT INTO {self._marks} (kind, name, token, expires_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (kind, name) DO UPDATE SET token = max(token, excluded.token),"
            " expires_at = max(expires_at, excluded.expires_at)",
            [(kind, name, token, until) for name in dict.fromkeys(names)],
        )

    def revoke_tags(self, conn: sqlite3.Connection, tags: Sequence[str], now: float) -> None:
        self._mark(conn, "t", tags, now)

    def revoke_prefix(
        self, conn: sqlite3.Connection, prefix: str, where: str, params: Sequence[str], now: float
    ) -> None:
        """Mark `prefix` and delete the leases under it (`where` selects keys under it, in SQL)."""
        self._mark(conn, "p", (prefix,), now)
        conn.execute(f"DELETE FROM {self._leases} WHERE {where}", params)

    def prune(self, conn: sqlite3.Connection, now: float) -> None:
        """Drop expired leases and marks; dropped marks raise the floor so that no older lease passes."""
        conn.execute(f"DELETE FROM {self._leases} WHERE expires_at <= ?", (now,))
        sql = f"DELETE FROM {self._marks} WHERE expires_at <= ? AND NOT (kind = 'p' AND name = '') RETURNING token"
        dropped = [token for (token,) in conn.execute(sql, (now,)).fetchall()]
        if dropped:
            conn.execute(
                f"INSERT INTO {self._marks} (kind, name, token, expires_at) VALUES ('p', '', ?, 9e999)"
                " ON CONFLICT (kind, name) DO UPDATE SET token = max(token, excluded.token)",
                (max(dropped),),
            )
