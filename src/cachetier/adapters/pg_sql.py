"""The SQL of `PostgresAdapter`, built once per adapter (the design is in `cachetier.adapters.postgres`)."""

from __future__ import annotations

from cachetier.adapters.pg_leases import drop_sql as lease_drop
from cachetier.adapters.pg_leases import lease_ddl, lease_statements, lease_tables
from cachetier.adapters.pg_names import index_name, lock_id, names

# Rows expire, get overwritten and invalidated all the time: vacuum after 2% dead rows (not 20%),
# the values' TOAST table too, so that freed space is reused before the table grows.
_AUTOVACUUM = ", ".join(
    f"{part}autovacuum_vacuum_{setting}"
    for part in ("", "toast.")
    for setting in ("scale_factor = 0.02", "threshold = 1000", "insert_scale_factor = 0.02")
)


def ddl(table_name: str, unlogged: bool) -> str:
    """One simple-query string, so it runs as one transaction that holds the advisory lock throughout.

    CREATE ... IF NOT EXISTS is not safe against a concurrent CREATE (it can fail
    on pg_type's unique index), so creators of the same table take turns. Tables
    (and their indexes) are created only when missing: CREATE INDEX IF NOT EXISTS
    locks an existing table until commit, which deadlocks with statements that
    use two of the tables while another process starts up.
    """
    table = f'"{table_name}"'
    return f"""
        SELECT pg_advisory_xact_lock({lock_id(table_name)});
        DO $ddl$ BEGIN
        IF to_regclass('{table}') IS NULL THEN
            CREATE {"UNLOGGED " if unlogged else ""}TABLE {table} (
                key TEXT COLLATE "C" PRIMARY KEY,
                value BYTEA NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                tags TEXT[] NOT NULL DEFAULT '{{}}'
            ) WITH ({_AUTOVACUUM});
            CREATE INDEX "{index_name(table_name, "tags_idx")}" ON {table} USING gin (tags);
            CREATE INDEX "{index_name(table_name, "expires_idx")}" ON {table} (expires_at);
        END IF;
        {lease_tables(table_name)}
        END $ddl$;
        {lease_ddl(table_name)}
    """


def statements(table_name: str, unlogged: bool, origin: str | None) -> dict[str, str]:
    """Every statement for one adapter, built once: the pool prepares each per connection by its text.

    `origin` is the adapter's id in change notices; None sends none.
    """
    t = f'"{table_name}"'
    n = names(table_name)
    live = "expires_at > now()"
    expiry = "now() + make_interval(secs => $3::float8)"
    # Every write deletes the key's lease first (the InitPlan runs before the entry row is touched).
    revoke = f"WITH revoke AS (DELETE FROM {n['leases']} WHERE key = $1 RETURNING 1) "
    revoked = "(SELECT count(*) FROM revoke) >= 0"
    notice = "" if origin is None else f", pg_notify('{n['channel']}', '{origin}k' || t.key)"
    upsert = (
        f"{revoke}INSERT INTO {t} AS t (key, value, expires_at, tags)"
        f" SELECT $1::text, $2::bytea, {expiry}, $4::text[] WHERE {revoked}"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at,"
        f" tags = EXCLUDED.tags, created_at = now() RETURNING 1{notice}"
    )
    return {
        "create": ddl(table_name, unlogged),
        "drop": lease_drop(table_name),
        "get": f"SELECT value FROM {t} WHERE key = $1 AND {live}",
        # One row of two arrays (aggregates of one query level see rows in the same order, so they pair up),
        # not a Record and protocol message per hit. A key-ordered array via unnest WITH ORDINALITY costs
        # the client less but the (shared) server a subquery or join per key.
        "mget": f"SELECT array_agg(key), array_agg(value) FROM {t} WHERE key = ANY($1::text[]) AND {live}",
        "set": upsert,
        "mset": upsert,
        "exists": f"SELECT 1 FROM {t} WHERE key = $1 AND {live}",
        "expire": (
            f"{revoke}UPDATE {t} AS t SET expires_at = now() + make_interval(secs => $2::float8)"
            f" WHERE key = $1 AND {live} AND {revoked} RETURNING 1{notice}"
        ),
        # An expired row is restarted at `by` with the new TTL and no tags, like a missing one.
        "incr": (
            f"{revoke}INSERT INTO {t} AS t (key, value, expires_at)"
            f" SELECT $1::text, convert_to($2::bigint::text, 'UTF8'), {expiry} WHERE {revoked}"
            " ON CONFLICT (key) DO UPDATE SET"
            " value = CASE WHEN t.expires_at > now()"
            " THEN convert_to((convert_from(t.value, 'UTF8')::bigint + $2::bigint)::text, 'UTF8')"
            " ELSE EXCLUDED.value END,"
            " expires_at = CASE WHEN t.expires_at > now() THEN t.expires_at ELSE EXCLUDED.expires_at END,"
            " tags = CASE WHEN t.expires_at > now() THEN t.tags ELSE '{}' END"
            f" RETURNING value{notice}"
        ),
        # SKIP LOCKED lets several processes purge at once without queueing on each other's rows.
        "purge": (
            f"WITH gone AS (DELETE FROM {t} WHERE ctid = ANY(ARRAY("
            f"SELECT ctid FROM {t} WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED))"
            " AND expires_at <= now() RETURNING 1) SELECT count(*) FROM gone"
        ),
        "count_live": f"SELECT count(*) FROM {t} WHERE {live}",
        "ping": "SELECT 1",
        "vacuum": f"VACUUM (SKIP_LOCKED) {t}, {n['leases']}, {n['marks']}",
        **lease_statements(table_name, origin),
    }
