"""Hit ratio of the L1 policy (S3-FIFO) against cachetools' LRU on a Zipf(0.99) trace.

Run: python -m bench.l1_policy   (1M requests over 100k keys, caches sized to 1% of the keys)
"""

from __future__ import annotations

import bisect
import itertools
import random
import time

from cachetools import LRUCache

from cachetier.l1 import L1Store
from cachetier.sentinel import MISS

KEYS = 100_000
REQUESTS = 1_000_000
CAPACITY = KEYS // 100


def zipf_trace(alpha: float = 0.99, seed: int = 1) -> list[int]:
    weights = [1 / (rank**alpha) for rank in range(1, KEYS + 1)]
    cumulative = list(itertools.accumulate(weights))
    total = cumulative[-1]
    rng = random.Random(seed)
    ranks = [bisect.bisect_left(cumulative, rng.random() * total) for _ in range(REQUESTS)]
    shuffle = list(range(KEYS))
    rng.shuffle(shuffle)  # so that key order says nothing about popularity
    return [shuffle[rank] for rank in ranks]


def hit_ratio_s3fifo(trace: list[int]) -> float:
    store = L1Store(CAPACITY)
    expires = time.time() + 3600
    hits = 0
    for key in trace:
        name = str(key)
        if store.get(name) is MISS:
            store.set(name, key, expires)
        else:
            hits += 1
    return hits / len(trace)


def hit_ratio_lru(trace: list[int]) -> float:
    lru: LRUCache[int, int] = LRUCache(maxsize=CAPACITY)
    hits = 0
    for key in trace:
        if key in lru:
            lru[key]
            hits += 1
        else:
            lru[key] = key
    return hits / len(trace)


def report() -> str:
    trace = zipf_trace()
    s3fifo, lru = hit_ratio_s3fifo(trace), hit_ratio_lru(trace)
    return "\n".join(
        [
            f"Zipf(0.99), {REQUESTS:,} requests, {KEYS:,} keys, capacity {CAPACITY:,} (1%)",
            "| policy | hit ratio | gain over LRU |",
            "|---|---:|---:|",
            f"| cachetools LRUCache | {lru:.4f} | — |",
            f"| cachetier L1 (S3-FIFO) | {s3fifo:.4f} | {(s3fifo - lru) * 100:+.2f} points ({s3fifo / lru:.3f}x) |",
        ]
    )


if __name__ == "__main__":
    print(report())
