"""PostgreSQL: cachetier in its default configuration against raw asyncpg with prepared statements on one connection.

cachetier runs with its defaults: L1 on, the change feed on (each write sends
a NOTIFY; the manager LISTENs), leases on. The L1-miss rows cycle over
50,000 keys written by another manager, so each read misses L1 and fills it;
"L1 off" rows turn the in-process tier off. Both use the same table (created by cachetier's adapter; raw keys live under
their own prefix) and the same codec. For 64 concurrent tasks one connection
would serialise everything, so the raw side there is an `asyncpg.Pool` of the
adapter's size (10), used the documented way (`pool.fetchval`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from bench._measure import Row, compare, concurrent, timed_with_setup
from bench.redis_tier import CODEC, KEYS, TTL, UNIVERSE, l1_counts, l1_note, loader_for, mixed, tags_of, value
from cachetier import CacheConfig, create_cache
from cachetier.adapters.pg_leases import drop_sql

DSN = "postgresql://postgres@127.0.0.1:5432/test"


async def rows(run: str, scale: float) -> tuple[list[Row], list[int]]:
    """The rows, and the server pids of the connections used (for pinning checks)."""
    table = f"bench_{run}"
    config = CacheConfig(adapter="postgres", database_url=DSN, table_name=table, namespace="b")  # the defaults
    cache = create_cache(config)
    off = create_cache(config.replace(namespace="off", l1_enabled=False))
    writer = create_cache(config.replace(l1_enabled=False))  # another process's writes: this one's L1 stays empty
    for manager in (cache, off, writer):
        await manager.start()
    conn = await asyncpg.connect(DSN)
    pool = await asyncpg.create_pool(DSN, min_size=10, max_size=10)
    try:
        return await _rows(cache, off, writer, conn, pool, table, scale), [conn.get_server_pid()]
    finally:
        for manager in (cache, off, writer):
            await manager.close()
        await pool.close()
        await conn.execute(drop_sql(table))  # the table, its lease and mark tables, sequence and functions
        await conn.close()


async def _rows(cache: Any, off: Any, writer: Any, conn: Any, pool: Any, table: str, scale: float) -> list[Row]:
    t = f'"{table}"'
    get_sql = f"SELECT value FROM {t} WHERE key = $1 AND expires_at > now()"
    mget_sql = f"SELECT key, value FROM {t} WHERE key = ANY($1::text[]) AND expires_at > now()"
    set_sql = (
        f"INSERT INTO {t} (key, value, expires_at, tags) VALUES ($1, $2, now() + make_interval(secs => $3), $4)"
        " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at,"
        " tags = EXCLUDED.tags, created_at = now()"  # the adapter's upsert sets it too: the same work
    )
    get_stmt = await conn.prepare(get_sql)
    mget_stmt = await conn.prepare(mget_sql)
    set_stmt = await conn.prepare(set_sql)
    invalidate_stmt = await conn.prepare(f"DELETE FROM {t} WHERE tags && $1::text[]")

    def n(ops: int) -> int:
        return max(20, int(ops * scale))

    items = {f"k{i}": value(i) for i in range(KEYS)}
    await writer.mset(items, ttl=TTL)
    await off.mset(items, ttl=TTL)
    await set_stmt.executemany([(f"raw:k{i}", CODEC.encode(v), float(TTL), []) for i, v in enumerate(items.values())])
    for start in range(0, UNIVERSE, 5000):
        chunk = {f"u{i}": value(i) for i in range(start, start + 5000)}
        await writer.mset(chunk, ttl=TTL)
        await off.mset(chunk, ttl=TTL)
        await set_stmt.executemany([(f"raw:{k}", CODEC.encode(v), float(TTL), []) for k, v in chunk.items()])
    # Fresh statistics: on a new, un-analysed table the planner may scan the expiry index for
    # ANY($1) until autovacuum analyses it in the middle of the run.
    await conn.execute(f"ANALYZE {t}")
    out: list[Row] = []

    async def raw_get(i: int) -> Any:
        return CODEC.decode(await get_stmt.fetchval(f"raw:u{i % UNIVERSE}"))

    before = l1_counts(cache)
    rows = await compare(
        "get, L1 miss (PostgreSQL hit)",
        {
            "raw asyncpg prepared SELECT + decode": raw_get,
            "cachetier get (defaults)": lambda i: cache.get(f"u{i % UNIVERSE}"),
            "cachetier get, L1 off": lambda i: off.get(f"u{i % UNIVERSE}"),
        },
        ops=n(4000),
    )
    rows[1].note = l1_note(before, l1_counts(cache))
    out += rows

    async def raw_miss(i: int) -> Any:
        data = await get_stmt.fetchval(f"raw:m{i}")
        if data is not None:
            return CODEC.decode(data)
        loaded = loader_for(i)()
        await set_stmt.fetch(f"raw:m{i}", CODEC.encode(loaded), float(TTL), [])
        return loaded

    out += await compare(
        "miss + loader",
        {
            "raw SELECT, load, upsert": raw_miss,
            "cachetier get(key, loader) (defaults: lease)": lambda i: cache.get(f"m{i}", loader_for(i), ttl=TTL),
            "cachetier get(key, loader), L1 off": lambda i: off.get(f"m{i}", loader_for(i), ttl=TTL),
        },
        ops=n(3000),
    )
    out += await compare(
        "set",
        {
            "raw prepared upsert + encode": lambda i: set_stmt.fetch(
                f"raw:s{i % KEYS}", CODEC.encode(value(i)), float(TTL), []
            ),
            "cachetier set (defaults)": lambda i: cache.set(f"s{i % KEYS}", value(i), ttl=TTL),
            "cachetier set, L1 off": lambda i: off.set(f"s{i % KEYS}", value(i), ttl=TTL),
        },
        ops=n(4000),
        notes={"cachetier set (defaults)": "each write also sends a NOTIFY for other processes' L1"},
    )
    out += await compare(
        "set + 3 tags",
        {
            "raw prepared upsert + encode": lambda i: set_stmt.fetch(
                f"raw:t{i % KEYS}", CODEC.encode(value(i)), float(TTL), tags_of(i % KEYS)
            ),
            "cachetier set(tags=...) (defaults)": lambda i: cache.set(
                f"t{i % KEYS}", value(i), ttl=TTL, tags=tags_of(i % KEYS)
            ),
        },
        ops=n(3000),
    )
    count = UNIVERSE // 100
    windows = [[f"u{j}" for j in range(start * 100, start * 100 + 100)] for start in range(count)]
    raw_windows = [["raw:" + k for k in w] for w in windows]

    async def raw_mget(i: int) -> Any:
        found = {row[0]: row[1] for row in await mget_stmt.fetch(raw_windows[i % count])}
        return {k: CODEC.decode(found[k]) for k in raw_windows[i % count] if k in found}

    before = l1_counts(cache)
    rows = await compare(
        "mget 100, L1 misses",
        {
            "raw prepared SELECT ANY($1) + decode": raw_mget,
            "cachetier mget (defaults)": lambda i: cache.mget(windows[i % count]),
            "cachetier mget, L1 off": lambda i: off.mget(windows[i % count]),
        },
        ops=n(600),
    )
    rows[1].note = l1_note(before, l1_counts(cache))
    out += rows
    windows = [[f"w{j}" for j in range(start, start + 100)] for start in range(0, KEYS, 100)]
    raw_windows = [["raw:" + k for k in w] for w in windows]

    async def raw_mset(i: int) -> Any:
        rows = [(k, CODEC.encode(value(j)), float(TTL), []) for j, k in enumerate(raw_windows[i % 10])]
        await set_stmt.executemany(rows)

    out += await compare(
        "mset 100",
        {
            "raw prepared executemany + encode": raw_mset,
            "cachetier mset (defaults)": lambda i: cache.mset(
                {k: value(j) for j, k in enumerate(windows[i % 10])}, ttl=TTL
            ),
        },
        ops=n(300),
    )
    keys = [f"inv{i}" for i in range(1000)]
    scenario = "invalidate a tag of 1,000 keys"
    reps = max(3, int(10 * scale))
    out += await timed_with_setup(
        scenario,
        {
            "raw prepared DELETE WHERE tags && $1": (
                lambda: set_stmt.executemany(
                    [(f"raw:{k}", CODEC.encode(i), float(TTL), ["inv"]) for i, k in enumerate(keys)]
                ),
                lambda: invalidate_stmt.fetch(["inv"]),
            ),
            "cachetier invalidate_by_tag (defaults)": (
                lambda: cache.mset({k: i for i, k in enumerate(keys)}, ttl=TTL, tags=["inv"]),
                lambda: cache.invalidate_by_tag("inv"),
            ),
        },
        reps,
    )

    async def pool_get(key: str) -> Any:
        data = await pool.fetchval(get_sql, "raw:" + key)
        return None if data is None else CODEC.decode(data)

    async def pool_put(key: str, item: Any) -> Any:
        return await pool.execute(set_sql, "raw:" + key, CODEC.encode(item), float(TTL), [])

    scenario = "64 tasks, 90% get / 10% set"
    per_task = max(10, int(150 * scale))
    out += await concurrent(
        scenario,
        {
            "raw asyncpg.Pool (10)": mixed(pool_get, pool_put),
            "cachetier, defaults (10 connections)": mixed(cache.get, lambda k, v: cache.set(k, v, ttl=TTL)),
            "cachetier, L1 off (10 connections)": mixed(off.get, lambda k, v: off.set(k, v, ttl=TTL)),
        },
        tasks=64,
        ops_per_task=per_task,
    )
    await asyncio.sleep(0)
    return out
