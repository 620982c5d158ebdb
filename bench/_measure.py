"""Timing, CPU pinning and markdown tables shared by the benchmark scenarios.

Latencies are per operation. Where one operation is far shorter than a
`perf_counter` call (L1 hits), each sample is the mean of a batch of calls.
Contenders of one scenario run in interleaved rounds, so drift in machine load
hits them alike; ratios are only ever taken within one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

Op = Callable[[int], Awaitable[Any]]

# In-process scenarios put the client on the servers' CPU: on a 2-vCPU VM a wake-up
# across vCPUs adds about 100 µs to every round trip, which would drown the
# client-side costs being compared. The HTTP load tool is a second process and
# takes the other CPU (`CLIENT_CPU`), so that it does not steal the server's.
SERVER_CPU = 1
CLIENT_CPU = 0
IN_PROCESS_CPU = SERVER_CPU


@dataclass
class Row:
    """One contender in one scenario. `median`/`p99` are seconds per op."""

    scenario: str
    contender: str
    median: float
    p99: float
    ops_per_s: float
    note: str = ""


@dataclass
class Table:
    """One tier's rows; the first row of each scenario is its baseline."""

    title: str
    preamble: str = ""
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def baseline(self, scenario: str) -> Row:
        return next(row for row in self.rows if row.scenario == scenario)

    def find(self, scenario: str, contender: str) -> Row | None:
        return next((r for r in self.rows if r.scenario == scenario and r.contender.startswith(contender)), None)

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        if self.preamble:
            lines += [self.preamble, ""]
        lines += [
            "| scenario | contender | median µs/op | p99 µs/op | ops/s | median ratio to baseline | note |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for row in self.rows:
            base = self.baseline(row.scenario)
            ratio = "baseline" if row is base else f"{row.median / base.median:.2f}x"
            lines.append(
                f"| {row.scenario} | {row.contender} | {_us(row.median)} | {_us(row.p99)} | "
                f"{row.ops_per_s:,.0f} | {ratio} | {row.note} |"
            )
        lines += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines).rstrip() + "\n"


def _us(seconds: float) -> str:
    micro = seconds * 1e6
    return f"{micro:.3f}" if micro < 10 else f"{micro:,.1f}"


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def compare(
    scenario: str,
    contenders: dict[str, Op],
    *,
    ops: int,
    batch: int = 1,
    rounds: int = 20,
    notes: dict[str, str] | None = None,
) -> list[Row]:
    """Run each contender `ops` times (index 0..ops-1), in `rounds` interleaved rounds."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    spent = dict.fromkeys(contenders, 0.0)
    per_round = max(batch, ops // rounds // batch * batch)
    clock = time.perf_counter
    for op in contenders.values():  # warm-up: connections, prepared statements, caches
        for i in range(min(per_round, 50)):
            await op(-1 - i)  # negative indexes: keys the timed rounds never use
    for start in range(0, per_round * rounds, per_round):
        for name, op in contenders.items():
            into = samples[name]
            for first in range(start, start + per_round, batch):
                began = clock()
                for i in range(first, first + batch):
                    await op(i)
                took = clock() - began
                into.append(took / batch)
                spent[name] += took
    notes = notes or {}
    return [
        Row(scenario, name, statistics.median(s), p99(s), len(s) * batch / spent[name], notes.get(name, ""))
        for name, s in samples.items()
    ]


async def concurrent(
    scenario: str, contenders: dict[str, Op], *, tasks: int, ops_per_task: int, rounds: int = 5
) -> list[Row]:
    """`tasks` tasks per contender, each running its op `ops_per_task` times in all; throughput over wall time.

    The work is cut into `rounds` turns that the contenders take in order, so
    drift in machine load hits them alike.
    """
    clock = time.perf_counter
    latencies: dict[str, list[float]] = {name: [] for name in contenders}
    walls = dict.fromkeys(contenders, 0.0)
    per_round = max(1, ops_per_task // rounds)

    async def worker(op: Op, into: list[float], first: int, count: int) -> None:
        for i in range(first, first + count):
            began = clock()
            await op(i)
            into.append(clock() - began)

    for op in contenders.values():  # warm the pools
        await asyncio.gather(*(worker(op, [], t * 1_000_003, per_round) for t in range(tasks // 4)))
    for turn in range(rounds):
        for name, op in contenders.items():
            began = clock()
            await asyncio.gather(
                *(worker(op, latencies[name], t * ops_per_task + turn * per_round, per_round) for t in range(tasks))
            )
            walls[name] += clock() - began
    return [
        Row(scenario, name, statistics.median(lat), p99(lat), len(lat) / walls[name]) for name, lat in latencies.items()
    ]


Action = tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]


async def timed_with_setup(scenario: str, contenders: dict[str, Action], reps: int) -> list[Row]:
    """Time each contender's action alone, `reps` times, after its untimed setup; contenders take turns."""
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(reps):
        for name, (setup, action) in contenders.items():
            await setup()
            began = time.perf_counter()
            await action()
            samples[name].append(time.perf_counter() - began)
    return [Row(scenario, name, statistics.median(s), p99(s), reps / sum(s)) for name, s in samples.items()]


def pin_self(cpu: int = IN_PROCESS_CPU) -> str:
    """Pin this process to one CPU when the machine has more than one."""
    if len(os.sched_getaffinity(0)) < 2:
        return "not pinned (one CPU)"
    os.sched_setaffinity(0, {cpu})
    return f"client pinned to CPU {cpu}"


@contextlib.contextmanager
def pinned(pids: list[int], cpu: int = SERVER_CPU) -> Iterator[str]:
    """Pin server processes to `cpu` for the duration, restoring their affinity after (best effort)."""
    saved: dict[int, set[int]] = {}
    for pid in pids:
        try:
            saved[pid] = os.sched_getaffinity(pid)
            os.sched_setaffinity(pid, {cpu})
        except OSError:
            continue
    try:
        yield f"server pids {sorted(saved)} pinned to CPU {cpu}" if saved else "servers not pinned (no permission)"
    finally:
        for pid, cpus in saved.items():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, cpus)
