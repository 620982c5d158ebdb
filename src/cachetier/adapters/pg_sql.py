"""The SQL of `PostgresAdapter`, built once per table (the design is in `cachetier.adapters.postgres`)."""

from __future__ import annotations

import hashlib


def lock_id(table_name: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"cachetier:{table_name}".encode(), digest_size=8).digest(), signed=True)


def index_name(table_name: str, suffix: str) -> str:
    """`<table>_<suffix>`, shortened with a hash when PostgreSQL would truncate it (and collide)."""
    name = f"{table_name}_{suffix}"
    if len(name) <= 63:
        return name
    digest = hashlib.blake2b(table_name.encode(), digest_size=4).hexdigest()
    return f"{table_name[: 63 - len(suffix) - 10]}_{digest}_{suffix}"


def ddl(table_name: str, unlogged: bool) -> str:
    """One simple-query string, so it runs as one transaction that holds the advisory lock throughout.

    CREATE ... IF NOT EXISTS is not safe against a concurrent CREATE (it can fail
    on pg_type's unique index), so creators of the same table take turns.
    """
    table = f'"{table_name}"'
    return f"""
        SELECT pg_advisory_xact_lock({lock_id(table_name)});
        CREATE {"UNLOGGED " if unlogged else ""}TABLE IF NOT EXISTS {table} (
            key TEXT COLLATE "C" PRIMARY KEY,
            value BYTEA NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            tags TEXT[] NOT NULL DEFAULT '{{}}'
        );
        CREATE INDEX IF NOT EXISTS "{index_name(table_name, "tags_idx")}" ON {table} USING gin (tags);
        CREATE INDEX IF NOT EXISTS "{index_name(table_name, "expires_idx")}" ON {table} (expires_at);
    """


def statements(table_name: str, unlogged: bool) -> dict[str, str]:
    """Every statement for one table, built once: the pool prepares each per connection by its text."""
    t = f'"{table_name}"'
    live = "expires_at > now()"
    expiry = "now() + make_interval(secs => $3)"
    count_live_gone = f"SELECT count(*) FILTER (WHERE {live}) FROM gone"
    upsert = (
        f"INSERT INTO {t} AS t (key, value, expires_at, tags) VALUES ($1, $2, {expiry}, $4::text[])"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at,"
        " tags = EXCLUDED.tags, created_at = now()"
    )
    return {
        "create": ddl(table_name, unlogged),
        "get": f"SELECT value FROM {t} WHERE key = $1 AND {live}",
        # One row of two arrays (aggregates of one query level see rows in the same order, so they pair up),
        # not a Record and protocol message per hit. A key-ordered array via unnest WITH ORDINALITY costs
        # the client less but the (shared) server a subquery or join per key.
        "mget": f"SELECT array_agg(key), array_agg(value) FROM {t} WHERE key = ANY($1::text[]) AND {live}",
        "set": upsert,
        "mset": upsert,
        "delete": f"DELETE FROM {t} WHERE key = $1 RETURNING {live}",
        "exists": f"SELECT 1 FROM {t} WHERE key = $1 AND {live}",
        "expire": (
            f"UPDATE {t} SET expires_at = now() + make_interval(secs => $2) WHERE key = $1 AND {live} RETURNING 1"
        ),
        # An expired row is restarted at `by` with the new TTL and no tags, like a missing one.
        "incr": (
            f"INSERT INTO {t} AS t (key, value, expires_at)"
            f" VALUES ($1, convert_to($2::bigint::text, 'UTF8'), {expiry})"
            " ON CONFLICT (key) DO UPDATE SET"
            " value = CASE WHEN t.expires_at > now()"
            " THEN convert_to((convert_from(t.value, 'UTF8')::bigint + $2::bigint)::text, 'UTF8')"
            " ELSE EXCLUDED.value END,"
            " expires_at = CASE WHEN t.expires_at > now() THEN t.expires_at ELSE EXCLUDED.expires_at END,"
            " tags = CASE WHEN t.expires_at > now() THEN t.tags ELSE '{}' END"
            " RETURNING value"
        ),
        "invalidate_tags": (
            f"WITH gone AS (DELETE FROM {t} WHERE tags && $1::text[] RETURNING expires_at) {count_live_gone}"
        ),
        # starts_with re-checks the range, so a table created with another collation never over-deletes.
        "clear_range": (
            f"WITH gone AS (DELETE FROM {t} WHERE key >= $1 AND key < $2 AND starts_with(key, $1)"
            f" RETURNING expires_at) {count_live_gone}"
        ),
        "clear_from": (
            f"WITH gone AS (DELETE FROM {t} WHERE key >= $1 AND starts_with(key, $1)"
            f" RETURNING expires_at) {count_live_gone}"
        ),
        # SKIP LOCKED lets several processes purge at once without queueing on each other's rows.
        "purge": (
            f"WITH gone AS (DELETE FROM {t} WHERE ctid = ANY(ARRAY("
            f"SELECT ctid FROM {t} WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED))"
            " AND expires_at <= now() RETURNING 1) SELECT count(*) FROM gone"
        ),
        "count_live": f"SELECT count(*) FROM {t} WHERE {live}",
        "ping": "SELECT 1",
    }
