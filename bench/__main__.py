"""`python -m bench [--scale S] [--http-seconds N] [--pin] [--growth-max N]`: every scenario, one table per tier.

cachetier runs in its default configuration (L1, change feed and leases on);
rows that turn a feature off say so. Needs Redis on 127.0.0.1:6379,
PostgreSQL on 127.0.0.1:5432 (db `test`, user `postgres`, trust) and `wrk`
(`apt-get install -y wrk`) for the uvicorn table. Writes
`bench/results/latest.md` and the chart `bench/results/latest.png`. Nothing is
pinned to a CPU unless `--pin` is given (it pins the Redis and PostgreSQL
servers too: only on a machine of your own). Keys and tables are under a run-unique
prefix and removed at the end; nothing is flushed. Not a test: no assertions,
only numbers; compare ratios within one run, never absolute figures across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import time
import uuid
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from bench import chart, growth, http_inprocess, http_load, l1_tier, postgres_tier, redis_tier, stampede
from bench._measure import Table, pin_self, pinned

RESULTS = Path(__file__).parent / "results" / "latest.md"
CHART = RESULTS.with_suffix(".png")


async def _server_pids() -> list[int]:
    client = Redis(host=redis_tier.HOST, port=redis_tier.PORT)
    info = await client.info("server")
    await client.aclose()
    conn = await asyncpg.connect(postgres_tier.DSN)
    try:  # the postmaster is the parent of our backend; new backends inherit its affinity
        stat = await asyncio.to_thread(Path(f"/proc/{conn.get_server_pid()}/stat").read_text)
        postmaster = int(stat.rsplit(")", 1)[1].split()[1])
    except OSError:
        postmaster = -1
    finally:
        await conn.close()
    return [int(info["process_id"]), postmaster]


def _ratio(table: Table, scenario: str, contender: str, over: str | None = None) -> float:
    row = table.find(scenario, contender)
    base = table.find(scenario, over) if over else table.baseline(scenario)
    assert row is not None
    assert base is not None
    return row.median / base.median


def targets(
    l1: Table,
    redis: Table,
    pg: Table,
    zipf: tuple[float, float],
    storm: list[tuple[str, int, float, str]],
    memory: dict[str, float],
    http: Table,
    inprocess: Table,
) -> list[str]:
    """Issue 15's targets (default configuration: L1, change feed and leases on), then the earlier ones."""
    lines = ["| target (cachetier in its default configuration) | measured | met |", "|---|---|---|"]

    def add(name: str, measured: str, met: bool) -> None:
        lines.append(f"| {name} | {measured} | {'yes' if met else '**no**'} |")

    def ratio_to_raw(table: Table, label: str, scenario: str, contender: str, bound: float, raw: str) -> None:
        ratio = _ratio(table, scenario, contender)
        add(f"{label} {scenario}: ≤ {bound:g}x {raw}", f"{ratio:.2f}x", ratio <= bound)

    ratio_to_raw(redis, "Redis", "set", "cachetier set (defaults)", 1.15, "raw SET")
    ratio_to_raw(redis, "Redis", "get, L1 miss (Redis hit)", "cachetier get (defaults)", 1.15, "raw GET")
    ratio_to_raw(redis, "Redis", "mget 100, L1 misses", "cachetier mget (defaults)", 1.3, "raw MGET")
    ratio_to_raw(pg, "PostgreSQL", "get, L1 miss (PostgreSQL hit)", "cachetier get (defaults)", 1.15, "raw SELECT")
    hit = _ratio(l1, "L1 hit", "cachetier")
    add("L1 hit within 4x of dict.get in async def", f"{hit:.2f}x", hit <= 4)
    entries, per_entry = memory["entries"], memory["cachetier L1Store"]
    add(f"L1 overhead at {entries:,.0f} entries ≤ 200 bytes each", f"{per_entry:.0f} B", per_entry <= 200)
    scenario = "GET in process (raw ASGI calls)"
    ours, shaped = inprocess.find(scenario, "cachetier"), inprocess.find(scenario, "bare route sending")
    hishel = inprocess.find(scenario, "hishel ASGICacheMiddleware hit")
    if ours is not None and shaped is not None and hishel is not None:
        add(
            "HTTP in process: a CacheMiddleware hit ≤ a bare route sending the same response",
            f"{ours.median * 1e6:.1f} vs {shaped.median * 1e6:.1f} µs (hishel: {hishel.median * 1e6:,.0f} µs)",
            ours.median <= shaped.median,
        )
    for connections, bound in ((http_load.CONNECTIONS, 0.95), (http_load.FEW_CONNECTIONS, 0.90)):
        scenario = f"GET, {connections} connections"
        cached, uncached = http.find(scenario, "cachetier"), http.find(scenario, "uncached")
        if cached is None or uncached is None:
            continue
        bare = http.baseline(scenario).ops_per_s
        add(
            f"HTTP (uvicorn), {connections} connections: cached ≥ {bound:.2f}x bare req/s",
            f"{cached.ops_per_s / bare:.2f}x",
            cached.ops_per_s >= bound * bare,
        )
        times = cached.ops_per_s / uncached.ops_per_s
        add(f"HTTP (uvicorn), {connections} connections: cached ≥ 3x uncached req/s", f"{times:.2f}x", times >= 3)
    for scenario, contender in (
        ("get, L1 miss (Redis hit)", "cachetier get (defaults)"),
        ("set", "cachetier set (defaults)"),
        ("mget 100, L1 misses", "cachetier mget (defaults)"),
    ):
        for peer in ("cashews", "aiocache"):
            speedup = 1 / _ratio(redis, scenario, contender, peer)
            add(f"Redis {scenario}: ≥ 1.5x faster than {peer}", f"{speedup:.2f}x", speedup >= 1.5)
    scenario = "64 tasks, 90% get / 10% set"
    raw_rate = redis.baseline(scenario).ops_per_s
    for contender in ("cachetier, defaults", "cachetier, L1 off"):
        row = redis.find(scenario, contender)
        assert row is not None
        add(
            f"Redis {scenario}, {contender}: ≥ raw throughput",
            f"{row.ops_per_s / raw_rate:.2f}x raw",
            row.ops_per_s >= raw_rate,
        )
    lru, s3fifo = zipf
    add("Zipf(0.99) hit ratio ≥ LRU's", f"{s3fifo:.4f} vs {lru:.4f}", s3fifo >= lru)
    for name, calls, _, _ in storm:
        if name.startswith("cachetier"):
            add(f"stampede, {name}: loader runs once", f"{calls} call(s)", calls == 1)
    return lines


async def main(scale: float, http_seconds: float, pin: bool, growth_sizes: list[int]) -> tuple[str, Path]:
    run = uuid.uuid4().hex[:10]
    began = time.perf_counter()
    http_load.PIN = pin
    client_note = pin_self() if pin else "not pinned (the machine is shared)"
    servers = pinned(await _server_pids()) if pin else contextlib.nullcontext("servers not pinned")
    with servers as server_note:
        l1 = Table("L1 (in process)", "Hits on 1,000 warm keys; each sample is the mean of 200 calls.")
        l1.rows = await l1_tier.hit_rows(int(200_000 * scale))
        redis = Table(
            "Redis (cachetier in its default configuration: L1, change feed and leases on)",
            redis_tier.__doc__.split("\n\n", 1)[1].strip(),
        )
        redis.rows = await redis_tier.rows(run, scale)
        pg = Table(
            "PostgreSQL (cachetier in its default configuration: L1, change feed and leases on)",
            postgres_tier.__doc__.split("\n\n", 1)[1].strip(),
        )
        pg.rows, _ = await postgres_tier.rows(run, scale)
        storm = await stampede.rows(run)
        inprocess = Table(
            "HTTP in process (cachetier's cache in its default configuration)",
            http_inprocess.__doc__.split("\n\n", 1)[1].strip(),
        )
        inprocess.rows = await http_inprocess.rows(run, scale)
        costs = await growth.rows(run, growth_sizes)
    zipf = l1_tier.zipf_hit_ratios(max(100_000, int(1_000_000 * min(scale, 1.0))))
    memory_entries = 1_000_000 if scale >= 1 else 100_000
    memory: dict[str, float] = {"entries": memory_entries, **l1_tier.memory_per_entry(memory_entries)}
    http = Table(
        "HTTP through uvicorn (wrk -t1, 64 and 8 connections; cachetier's cache in its default configuration)",
        http_load.__doc__.split("\n\n", 1)[1].strip(),
    )
    reason = http_load.missing_requirement()
    if reason is None:
        http.rows = http_load.rows(run, http_seconds)
    else:
        http.notes.append(f"skipped: {reason}")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    chart_path = chart.draw(
        [("Redis", redis), ("PostgreSQL", pg), ("HTTP", inprocess)],
        costs,
        CHART,
        f"cachetier benchmarks, default configuration, {stamp} (ratios within one run)",
    )
    parts = [
        "# cachetier benchmarks",
        "",
        f"{stamp}. Python {platform.python_version()} on {os.cpu_count()} CPUs; {client_note}; {server_note}. "
        f"Scale {scale:g} (operation counts multiplied by it); run took {time.perf_counter() - began:.0f} s.",
        "cachetier runs in its default configuration (L1 on, change feed on, leases on) unless a row says otherwise.",
        "Ratios are medians divided by the baseline (first row) of the same scenario in this run: below 1 is faster.",
        "",
        f"![ratios to the raw clients and peers]({chart_path.name})",
        "",
        "## Targets",
        "",
        *targets(l1, redis, pg, zipf, storm, memory, http, inprocess),
        "",
        l1.markdown(),
        redis.markdown(),
        pg.markdown(),
        "### Stampede: 1,000 concurrent misses on one key, 50 ms loader",
        "",
        "| contender | loader calls | wall ms for all callers | note |",
        "|---|---:|---:|---|",
        *(f"| {name} | {calls} | {took * 1000:,.0f} | {note} |" for name, calls, took, note in storm),
        "",
        "### L1 policy: Zipf(0.99), caches sized to 1% of the keys",
        "",
        "| policy | hit ratio |",
        "|---|---:|",
        f"| cachetools LRUCache | {zipf[0]:.4f} |",
        f"| cachetier L1 (S3-FIFO) | {zipf[1]:.4f} |",
        "",
        f"### Memory per entry, {memory_entries:,} small entries (tracemalloc; key and value objects built beforehand)",
        "",
        "| structure | bytes per entry beyond key and value |",
        "|---|---:|",
        *(f"| {name} | {size:.0f} |" for name, size in memory.items() if name != "entries"),
        "",
        growth.markdown(costs),
        inprocess.markdown(),
        http.markdown(),
    ]
    return "\n".join(parts), chart_path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply operation counts (default 1)")
    parser.add_argument("--http-seconds", type=float, default=5.0, help="wrk duration per route (default 5)")
    parser.add_argument(
        "--pin", action="store_true", help="pin this process and the servers to one CPU (only on a machine of your own)"
    )
    parser.add_argument(
        "--growth-max", type=float, default=1e5, help="largest key count in the cost growth table (default 1e5)"
    )
    args = parser.parse_args()
    sizes = [size for size in (10_000, 100_000, 1_000_000) if size <= args.growth_max]
    report, picture = asyncio.run(main(args.scale, args.http_seconds, args.pin, sizes))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(report)
    print(f"\nwritten to {RESULTS} and {picture}")
