"""Leases and change notices for `PostgresAdapter`: the extra tables, the sequence and the plpgsql functions.

How a leased store stays race-free under READ COMMITTED:

- A lease is a row in `<table>_leases` (key, token, expires_at); tokens come from
  `<table>_lease_seq`. `get_or_lease` is one statement: read the live value and,
  when there is none, insert the lease (or replace an expired one); a live lease
  held by someone else answers "busy".
- `set`, `mset`, `expire` and `incr` delete the key's lease row in the same
  statement, before they touch the entry (an InitPlan forces that order, so every
  writer locks the lease row before the entry row, as `set_leased` does: no deadlock).
- Tag invalidations and clears cannot know which missing keys a loader will store
  under a tag, so they leave a *mark* in `<table>_marks` (tag or prefix -> the
  token counter at that time); a leased store is refused when a mark on one of its
  tags, or on a prefix of its key, is newer than its token.
- The race that needs care: a statement's snapshot does not see a change that
  commits after it started, and an invalidation's DELETE does not see a row that
  a concurrent leased store inserts. So `set_leased`, `invalidate_tags`, `clear`
  and `delete` are plpgsql functions, where each statement takes a new snapshot:
  `set_leased` first takes shared advisory locks (one per tag, one for "any
  clear"), then spends its lease row (an UPDATE to token 0 that lives 100 ms more,
  so that a `get_or_lease` whose snapshot predates our commit finds it busy and
  polls rather than leasing and loading again; a concurrent write that deletes
  the lease serialises with us on that row), then reads the marks, then upserts.
  `invalidate_tags` and `clear` take the same locks exclusively before they write
  marks and delete. Either the store committed first (the
  invalidation then sees and deletes its row) or the invalidation did (the store
  then sees its mark). `delete` deletes the lease row, then the entry in a second
  statement, so it also sees a row that a store holding the lease committed while it waited.
  Locks are taken in hash order, so two invalidations never deadlock.
- Marks are kept as long as the longest lease alive when they were written. When
  the purge drops expired marks it raises a *floor* (a mark on the empty prefix):
  a lease older than any dropped mark is refused. That only refuses leases that
  expired anyway, or that were being granted in the instant of the invalidation.
- Lease and mark tables are UNLOGGED (a crash empties them, which only refuses
  leases in flight); the entries table keeps its own choice.
- Change notices (`pg_notify`) go out in the same transaction as the change:
  `<origin><kind><body>`, origin being the sending adapter's 16-hex id, kind `k`
  (one key), `j` (a JSON array of keys), `p` (a cleared prefix) or `*` (too many
  keys to list: every copy is suspect). PostgreSQL delivers them at commit.
"""

from __future__ import annotations

from typing import Final

from cachetier.adapters.pg_names import lock_id, names

ORIGIN_CHARS: Final = 16
NOTICE_MAX: Final = 7900  # pg_notify's payload limit is 8000 bytes


def lease_tables(table_name: str) -> str:
    """Statements for the DDL's DO block: each table and its index, created only when missing."""
    n = names(table_name)
    return f"""
        IF to_regclass('{n["leases"]}') IS NULL THEN
            CREATE UNLOGGED TABLE {n["leases"]} (
                key TEXT COLLATE "C" PRIMARY KEY,
                token BIGINT NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL
            ) WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);
            CREATE INDEX {n["leases_exp"]} ON {n["leases"]} (expires_at);
        END IF;
        IF to_regclass('{n["marks"]}') IS NULL THEN
            CREATE UNLOGGED TABLE {n["marks"]} (
                kind "char" NOT NULL,
                name TEXT COLLATE "C" NOT NULL,
                token BIGINT NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (kind, name)
            );
        END IF;
    """


def lease_ddl(table_name: str) -> str:
    """The sequence and functions, appended to the table's DDL (run under its creation lock)."""
    n = names(table_name)
    t = f'"{table_name}"'
    seed = lock_id(table_name)
    clear_lock = lock_id(table_name + ":clear")
    live = "expires_at > now()"
    until = f"SELECT greatest(now(), max(expires_at)) INTO until FROM {n['leases']};"
    notify = f"PERFORM pg_notify('{n['channel']}', origin || "
    keys_notice = (
        f"IF n_keys > 0 THEN {notify}CASE WHEN octet_length(keys::text) < {NOTICE_MAX}"
        " THEN 'j' || keys::text ELSE '*' END); END IF;"
    )
    return f"""
        CREATE SEQUENCE IF NOT EXISTS {n["lease_seq"]};

        CREATE OR REPLACE FUNCTION {n["set_leased"]}(k text, v bytea, ttl float8, tg text[], tok bigint, origin text)
        RETURNS boolean LANGUAGE plpgsql AS $fn$
        DECLARE h bigint;
        BEGIN
            PERFORM pg_advisory_xact_lock_shared({clear_lock});
            FOR h IN SELECT DISTINCT hashtextextended(x, {seed}) FROM unnest(tg) AS x ORDER BY 1 LOOP
                PERFORM pg_advisory_xact_lock_shared(h);
            END LOOP;
            -- The lease is spent, but its row stays for a moment (token 0 is never granted): a
            -- get_or_lease whose snapshot predates this commit cannot see the value, and must
            -- find a live lease and poll (seeing the value) rather than take a new one and load again.
            UPDATE {n["leases"]} SET token = 0, expires_at = now() + interval '100 milliseconds'
                WHERE key = k AND token = tok AND {live};
            IF NOT FOUND THEN RETURN false; END IF;
            IF EXISTS (SELECT 1 FROM {n["marks"]} WHERE kind = 't' AND name = ANY(tg) AND token > tok)
                OR EXISTS (SELECT 1 FROM {n["marks"]} WHERE kind = 'p' AND token > tok AND starts_with(k, name))
            THEN
                -- Refused: nothing was stored for a late reader to miss, so the next caller may lease at once.
                DELETE FROM {n["leases"]} WHERE key = k AND token = 0;
                RETURN false;
            END IF;
            INSERT INTO {t} AS t (key, value, expires_at, tags) VALUES (k, v, now() + make_interval(secs => ttl), tg)
                ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at,
                tags = EXCLUDED.tags, created_at = now();
            IF origin IS NOT NULL THEN {notify}'k' || k); END IF;
            RETURN true;
        END $fn$;

        CREATE OR REPLACE FUNCTION {n["invalidate"]}(tg text[], origin text)
        RETURNS bigint LANGUAGE plpgsql AS $fn$
        DECLARE h bigint; until timestamptz; tok bigint; n_live bigint; n_keys bigint; keys json;
        BEGIN
            FOR h IN SELECT DISTINCT hashtextextended(x, {seed}) FROM unnest(tg) AS x ORDER BY 1 LOOP
                PERFORM pg_advisory_xact_lock(h);
            END LOOP;
            tok := nextval('{n["lease_seq"]}');
            {until}
            INSERT INTO {n["marks"]} AS m (kind, name, token, expires_at)
                SELECT DISTINCT 't', x, tok, until FROM unnest(tg) AS x
                ON CONFLICT (kind, name) DO UPDATE SET token = greatest(m.token, EXCLUDED.token),
                expires_at = greatest(m.expires_at, EXCLUDED.expires_at);
            WITH gone AS (DELETE FROM {t} WHERE tags && tg RETURNING key, expires_at)
                SELECT count(*) FILTER (WHERE {live}), count(*), CASE WHEN origin IS NOT NULL THEN json_agg(key) END
                INTO n_live, n_keys, keys FROM gone;
            IF origin IS NOT NULL THEN {keys_notice} END IF;
            RETURN n_live;
        END $fn$;

        CREATE OR REPLACE FUNCTION {n["clear"]}(p text, upper text, origin text)
        RETURNS bigint LANGUAGE plpgsql AS $fn$
        DECLARE until timestamptz; n_live bigint;
        BEGIN
            PERFORM pg_advisory_xact_lock({clear_lock});
            {until}
            INSERT INTO {n["marks"]} AS m (kind, name, token, expires_at)
                VALUES ('p', p, nextval('{n["lease_seq"]}'), until)
                ON CONFLICT (kind, name) DO UPDATE SET token = greatest(m.token, EXCLUDED.token),
                expires_at = greatest(m.expires_at, EXCLUDED.expires_at);
            IF upper IS NULL THEN
                DELETE FROM {n["leases"]} WHERE key >= p AND starts_with(key, p);
                WITH gone AS (DELETE FROM {t} WHERE key >= p AND starts_with(key, p) RETURNING expires_at)
                    SELECT count(*) FILTER (WHERE {live}) INTO n_live FROM gone;
            ELSE
                DELETE FROM {n["leases"]} WHERE key >= p AND key < upper AND starts_with(key, p);
                WITH gone AS (DELETE FROM {t} WHERE key >= p AND key < upper AND starts_with(key, p)
                    RETURNING expires_at)
                    SELECT count(*) FILTER (WHERE {live}) INTO n_live FROM gone;
            END IF;
            IF origin IS NOT NULL THEN {notify}'p' || p); END IF;
            RETURN n_live;
        END $fn$;

        CREATE OR REPLACE FUNCTION {n["delete"]}(k text, origin text)
        RETURNS boolean LANGUAGE plpgsql AS $fn$
        DECLARE was_live boolean;
        BEGIN
            DELETE FROM {n["leases"]} WHERE key = k;
            -- A new snapshot: sees an entry that a store holding the lease committed while we waited for its row.
            DELETE FROM {t} WHERE key = k RETURNING {live} INTO was_live;
            IF FOUND AND origin IS NOT NULL THEN {notify}'k' || k); END IF;
            RETURN coalesce(was_live, false);
        END $fn$;
    """


def drop_sql(table_name: str) -> str:
    n = names(table_name)
    functions = ", ".join(n[name] for name in ("set_leased", "invalidate", "clear", "delete"))
    return (
        f'DROP TABLE IF EXISTS "{table_name}", {n["leases"]}, {n["marks"]};'
        f" DROP SEQUENCE IF EXISTS {n['lease_seq']}; DROP FUNCTION IF EXISTS {functions};"
    )


def lease_statements(table_name: str, origin: str | None) -> dict[str, str]:
    """`get_or_lease`, `set_leased`, the invalidations and the purge of leases and marks."""
    n = names(table_name)
    t = f'"{table_name}"'
    origin_arg = "NULL" if origin is None else f"'{origin}'"
    return {
        # The lease is inserted only when no live value was read; an expired lease is taken over, a live one is not.
        "get_or_lease": (
            f"WITH v AS (SELECT value FROM {t} WHERE key = $1 AND expires_at > now()),"
            f" l AS (INSERT INTO {n['leases']} AS l (key, token, expires_at)"
            f" SELECT $1, nextval('{n['lease_seq']}'), now() + make_interval(secs => $2::float8)"
            " WHERE NOT EXISTS (SELECT 1 FROM v)"
            " ON CONFLICT (key) DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at"
            " WHERE l.expires_at <= now() RETURNING token)"
            " SELECT (SELECT value FROM v), (SELECT token FROM l)"
        ),
        "set_leased": f"SELECT {n['set_leased']}($1, $2, $3, $4::text[], $5, {origin_arg})",
        "invalidate_tags": f"SELECT {n['invalidate']}($1::text[], {origin_arg})",
        "clear": f"SELECT {n['clear']}($1, $2, {origin_arg})",
        "delete": f"SELECT {n['delete']}($1, {origin_arg})",
        "purge_leases": f"DELETE FROM {n['leases']} WHERE expires_at <= now()",
        # Dropped marks raise the floor (a mark on the empty prefix) so that no older lease can pass them.
        "purge_marks": (
            f"WITH gone AS (DELETE FROM {n['marks']} WHERE expires_at <= now() AND NOT (kind = 'p' AND name = '')"
            " RETURNING token)"
            f" INSERT INTO {n['marks']} AS m (kind, name, token, expires_at)"
            " SELECT 'p', '', max(token), 'infinity' FROM gone HAVING count(*) > 0"
            " ON CONFLICT (kind, name) DO UPDATE SET token = greatest(m.token, EXCLUDED.token)"
        ),
    }
