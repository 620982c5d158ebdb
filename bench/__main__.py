"""`python -m bench [--scale S] [--http-seconds N]`: every scenario, one markdown table per tier.

Needs Redis on 127.0.0.1:6379, PostgreSQL on 127.0.0.1:5432 (db `test`, user
`postgres`, trust) and `wrk` (`apt-get install -y wrk`) for the HTTP table.
Writes `bench/results/latest.md`. Keys and tables are under a run-unique
prefix and removed at the end; nothing is flushed. Not a test: no assertions,
only numbers; compare ratios within one run, never absolute figures across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
import uuid
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from bench import http_load, l1_tier, postgres_tier, redis_tier, stampede
from bench._measure import Table, pin_self, pinned

RESULTS = Path(__file__).parent / "results" / "latest.md"


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
) -> list[str]:
    lines = ["| target | measured | met |", "|---|---|---|"]

    def add(name: str, measured: str, met: bool) -> None:
        lines.append(f"| {name} | {measured} | {'yes' if met else '**no**'} |")

    hit = _ratio(l1, "L1 hit", "cachetier")
    add("L1 hit within 4x of dict.get in async def", f"{hit:.2f}x", hit <= 4)
    for table, label in ((redis, "Redis"), (pg, "PostgreSQL")):
        for scenario in ("L2 hit (L1 off)", "set", "mget 100"):
            ratio = _ratio(table, scenario, "cachetier")
            add(f"{label} {scenario}: ≤ 1.15x raw", f"{ratio:.2f}x", ratio <= 1.15)
    for scenario in ("L2 hit (L1 off)", "set", "mget 100"):
        for peer in ("cashews", "aiocache"):
            speedup = 1 / _ratio(redis, scenario, "cachetier", peer)
            add(f"Redis {scenario}: ≥ 1.5x faster than {peer}", f"{speedup:.2f}x", speedup >= 1.5)
    scenario = "64 tasks, 90% get / 10% set"
    raw_rate = redis.baseline(scenario).ops_per_s
    for contender in ("cachetier, L1 off", "cachetier, L1 on"):
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
    per_entry = memory["cachetier L1Store"]
    add("L1 overhead ≤ 200 bytes per entry", f"{per_entry:.0f} B", per_entry <= 200)
    for connections in (http_load.CONNECTIONS, http_load.FEW_CONNECTIONS):
        scenario = f"GET, {connections} connections"
        cached, uncached = http.find(scenario, "cachetier"), http.find(scenario, "uncached")
        if cached is None or uncached is None:
            continue
        bare = http.baseline(scenario).ops_per_s
        add(
            f"HTTP, {connections} connections: cached ≥ 0.90x bare req/s",
            f"{cached.ops_per_s / bare:.2f}x",
            cached.ops_per_s >= 0.9 * bare,
        )
        times = cached.ops_per_s / uncached.ops_per_s
        add(f"HTTP, {connections} connections: cached ≥ 3x uncached req/s", f"{times:.2f}x", times >= 3)
    return lines


async def main(scale: float, http_seconds: float) -> str:
    run = uuid.uuid4().hex[:10]
    began = time.perf_counter()
    client_note = pin_self()
    with pinned(await _server_pids()) as server_note:
        l1 = Table("L1 (in process)", "Hits on 1,000 warm keys; each sample is the mean of 200 calls.")
        l1.rows = await l1_tier.hit_rows(int(200_000 * scale))
        redis = Table(
            "Redis (L2 hit rows: cachetier with `l1_enabled=False`)", redis_tier.__doc__.split("\n\n", 1)[1].strip()
        )
        redis.rows = await redis_tier.rows(run, scale)
        pg = Table("PostgreSQL (cachetier with `l1_enabled=False`)", postgres_tier.__doc__.split("\n\n", 1)[1].strip())
        pg.rows, _ = await postgres_tier.rows(run, scale)
        storm = await stampede.rows(run)
    zipf = l1_tier.zipf_hit_ratios(max(100_000, int(1_000_000 * min(scale, 1.0))))
    memory = l1_tier.memory_per_entry(100_000)
    http = Table(
        "HTTP (uvicorn on CPU 1, wrk -t1 on CPU 0, 64 and 8 connections)", http_load.__doc__.split("\n\n", 1)[1].strip()
    )
    reason = http_load.missing_requirement()
    if reason is None:
        http.rows = http_load.rows(run, http_seconds)
    else:
        http.notes.append(f"skipped: {reason}")
    parts = [
        "# cachetier benchmarks",
        "",
        f"Python {platform.python_version()} on {os.cpu_count()} CPUs; {client_note}; {server_note}. "
        f"Scale {scale:g} (operation counts multiplied by it); run took {time.perf_counter() - began:.0f} s.",
        "Ratios are medians divided by the baseline (first row) of the same scenario in this run: below 1 is faster.",
        "",
        "## Targets",
        "",
        *targets(l1, redis, pg, zipf, storm, memory, http),
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
        "### Memory per entry, 100,000 small entries (tracemalloc; key and value objects built beforehand)",
        "",
        "| structure | bytes per entry beyond key and value |",
        "|---|---:|",
        *(f"| {name} | {size:.0f} |" for name, size in memory.items()),
        "",
        http.markdown(),
    ]
    return "\n".join(parts)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply operation counts (default 1)")
    parser.add_argument("--http-seconds", type=float, default=5.0, help="wrk duration per route (default 5)")
    args = parser.parse_args()
    report = asyncio.run(main(args.scale, args.http_seconds))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(report)
    print(f"\nwritten to {RESULTS}")
