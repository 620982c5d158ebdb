"""The run's figures as a chart (PNG) next to `bench/results/latest.md`: matplotlib, bench-only.

Left: per operation, each contender's median time as a multiple of the raw
client's in the same run (1 = raw; lower is faster; log scale). Right: how
L2 costs grow with the number of keys (`bench.growth`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt  # after choosing the backend
from matplotlib.patches import Patch

from bench._measure import Table
from bench.growth import Growth

SERIES = ("cachetier, defaults", "cachetier, L1 off", "cashews", "aiocache", "hishel")  # legend order
COLOURS = {
    "cachetier, defaults": "#1f6fb4",
    "cachetier, L1 off": "#8fb8de",
    "cashews": "#e07b39",
    "aiocache": "#8c8c8c",
    "hishel": "#6a9f4b",
}
SKIP = ("64 tasks",)  # throughput scenarios: a median latency says little there


def _series_of(contender: str) -> str | None:
    if contender.startswith("cachetier"):
        if "(defaults" in contender or "CacheMiddleware" in contender:
            return "cachetier, defaults"
        if ", L1 off" in contender:
            return "cachetier, L1 off"
        return None
    for label in ("cashews", "aiocache", "hishel"):
        if contender.startswith(label):
            return label
    return None


def ratios(tables: list[tuple[str, Table]]) -> list[tuple[str, dict[str, float]]]:
    """[(operation label, {series: median / raw median})] in table order."""
    out: list[tuple[str, dict[str, float]]] = []
    for prefix, table in tables:
        seen: list[str] = []
        for row in table.rows:
            if row.scenario not in seen and not row.scenario.startswith(SKIP):
                seen.append(row.scenario)
        for scenario in seen:
            base = table.baseline(scenario)
            values: dict[str, float] = {}
            for row in table.rows:
                series = _series_of(row.contender) if row.scenario == scenario else None
                if series is not None and series not in values:
                    values[series] = row.median / base.median
            if values:
                out.append((f"{prefix}: {scenario}", values))
    return out


def draw(tables: list[tuple[str, Table]], growth: list[Growth], path: Path, title: str) -> Path:
    """Write the chart to `path` (PNG) and return it."""
    bars = ratios(tables)
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(15, max(6.0, 0.42 * len(bars) * 2)), gridspec_kw={"width_ratios": [3, 2]}
    )
    for position, (_, values) in enumerate(reversed(bars)):
        present = [series for series in SERIES if series in values]
        height = 0.8 / len(present)
        for slot, series in enumerate(present):  # top to bottom in legend order, centred on the label
            y = position + ((len(present) - 1) / 2 - slot) * height
            left.barh(y, values[series], height=height, color=COLOURS[series])
    left.set_yticks(range(len(bars)), [label for label, _ in reversed(bars)], fontsize=8)
    left.set_xscale("log")
    left.axvline(1.0, color="black", linewidth=1)
    left.set_xlabel("median time per operation / the raw client's (HTTP: a bare route's), same run; lower is faster")
    shown = [series for series in SERIES if any(series in values for _, values in bars)]
    left.legend([Patch(color=COLOURS[series]) for series in shown], shown, loc="lower right", fontsize=8)
    left.set_title("Ratio to the raw client, per operation", fontsize=10)
    for backend, marker in (("Redis", "o"), ("PostgreSQL", "s"), ("SQLite", "^")):
        points = [row for row in growth if row.backend == backend]
        if points:
            keys = [row.keys for row in points]
            right.plot(keys, [row.invalidate_ms for row in points], marker=marker, label=f"{backend}: invalidate a tag")
            right.plot(
                keys, [row.get_us / 1000 for row in points], marker=marker, linestyle="--", label=f"{backend}: get"
            )
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("keys held (a tag holds a tenth of them)")
    right.set_ylabel("ms")
    right.set_title("Cost growth (L1 off)", fontsize=10)
    right.legend(fontsize=8)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
