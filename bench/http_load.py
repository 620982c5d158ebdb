"""HTTP: uvicorn serving `bench.http_app`, loaded by wrk (with `--pin`, each on a CPU of its own).

Needs Debian's `wrk` on PATH (`apt-get install -y wrk`); without it, or
without `cachetier.integrations.asgi`, the HTTP table says why it is empty.
The routes of one app are loaded in interleaved rounds and each row is its
median round, so a burst of other load on the machine hits them alike.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from bench._measure import CLIENT_CPU, SERVER_CPU, Row
from bench.http_app import remove_hishel_files

ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 64
FEW_CONNECTIONS = 8
ROUNDS = 3
PIN = False  # set by `python -m bench --pin`


def missing_requirement() -> str | None:
    if shutil.which("wrk") is None:
        return "wrk is not installed (apt-get install -y wrk)"
    if importlib.util.find_spec("cachetier.integrations.asgi") is None:
        return "cachetier.integrations.asgi is not available"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _taskset(cpu: int) -> list[str]:
    if not PIN or shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2:
        return []
    return ["taskset", "-c", str(cpu)]


@contextlib.contextmanager
def serving(factory: str, run: str) -> Iterator[str]:
    port = _free_port()
    command = [
        *_taskset(SERVER_CPU),
        sys.executable,
        "-m",
        "uvicorn",
        f"bench.http_app:{factory}",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "BENCH_RUN": run, "PYTHONPATH": path}
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/cached/item", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wrk(url: str, seconds: float, connections: int = CONNECTIONS) -> tuple[float, float, float, str]:
    """(req/s, median s, p99 s, note) from one wrk run."""
    out = subprocess.run(
        [*_taskset(CLIENT_CPU), "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(label: str) -> float:
        value, unit = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: .*", out)
    return rate, percentile("50"), percentile("99"), errors.group(0) if errors else ""


def _median_round(runs: list[tuple[float, float, float, str]]) -> tuple[float, float, float, str]:
    return sorted(runs)[len(runs) // 2]


def rows(run: str, seconds: float) -> list[Row]:
    """About `seconds` of load per route, in `ROUNDS` interleaved rounds of whole seconds (wrk's unit)."""
    out: list[Row] = []
    routes = [
        ("/const", "bare constant route"),
        ("/uncached", "uncached route (5 ms handler)"),
        ("/cached/item", "cachetier CacheMiddleware (Redis, defaults)"),
        ("/shaped", "bare route sending a hit's exact response"),
        ("/hishel/item", "hishel ASGICacheMiddleware (default SQLite storage)"),
    ]
    per_round = max(1, round(seconds / ROUNDS))
    with serving("cachetier_app", run) as base:
        # 64 connections load the server's CPU; at 8, the 5 ms handler's wait is what limits
        # the uncached route (8 / 5 ms = 1,600 req/s at most), as it does a lightly loaded site.
        for connections, scenario_routes in ((CONNECTIONS, routes), (FEW_CONNECTIONS, routes[:3])):
            runs: dict[str, list[tuple[float, float, float, str]]] = {path: [] for path, _ in scenario_routes}
            for _ in range(ROUNDS):
                for path, _ in scenario_routes:
                    runs[path].append(_wrk(base + path, per_round, connections))
            for path, label in scenario_routes:
                rate, median, p99, note = _median_round(runs[path])
                out.append(Row(f"GET, {connections} connections", label, median, p99, rate, note))
    remove_hishel_files(run)
    with serving("fastapi_cache_app", run) as base:
        rate, median, p99, note = _wrk(base + "/cached/item", seconds)
        out.append(Row("GET, 64 connections", "fastapi-cache2 @cache (Redis), FastAPI", median, p99, rate, note))
    return out
