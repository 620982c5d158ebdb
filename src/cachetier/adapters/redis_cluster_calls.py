"""Building `RedisClusterAdapter`'s script calls: entries grouped by slot, tags by tag (see `redis_cluster`)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Final

from cachetier.adapters import redis_cluster_scripts as scripts
from cachetier.adapters.redis_cluster_batch import Call
from cachetier.adapters.redis_cluster_names import TAG_INDEX, TAG_MARK, companions, internal, slot_of
from cachetier.protocols import L2Entry

TICKET_MS: Final = 5_000  # a write's ticket outlives any normal write; a slower one stores nothing
_PLAIN_CHUNK: Final = 500  # entries per untagged-write script: a longer one holds its node up longer


def ms(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


def glob_escape(text: str) -> str:
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def by_slot(keys: Iterable[str]) -> dict[int, list[str]]:
    groups: dict[int, list[str]] = defaultdict(list)
    for key in keys:
        groups[slot_of(key)].append(key)
    return groups


def triples(keys: Sequence[str]) -> list[str]:
    names: list[str] = []
    for key in keys:
        names.append(key)
        names.extend(companions(key))
    return names


def plain_calls(entries: Sequence[L2Entry]) -> list[Call]:
    groups: dict[int, list[L2Entry]] = defaultdict(list)
    for entry in entries:
        groups[slot_of(entry.key)].append(entry)
    calls: list[Call] = []
    for group in groups.values():
        for start in range(0, len(group), _PLAIN_CHUNK):
            chunk = group[start : start + _PLAIN_CHUNK]
            args = [arg for entry in chunk for arg in (entry.value, ms(entry.ttl))]
            calls.append((scripts.SET_PLAIN, triples([entry.key for entry in chunk]), args))
    return calls


def ticket_call(key: str, ticket: str) -> Call:
    return (scripts.GRANT_TICKET, [companions(key)[1]], [ticket, TICKET_MS])


def index_calls(entries: Sequence[L2Entry], token: int, slack_ms: int) -> list[Call]:
    members: dict[str, list[Any]] = defaultdict(list)
    for entry in entries:
        for tag in dict.fromkeys(entry.tags):
            members[tag] += [ms(entry.ttl), entry.key]
    return [
        (scripts.INDEX_ADD, [internal(TAG_INDEX, tag), internal(TAG_MARK, tag)], [token, slack_ms, *pairs])
        for tag, pairs in members.items()
    ]


def write_calls(entries: Sequence[L2Entry], tickets: Sequence[str], *, drop_on_loss: bool) -> list[Call]:
    groups: dict[int, list[tuple[L2Entry, str]]] = defaultdict(list)
    for entry, ticket in zip(entries, tickets, strict=True):
        groups[slot_of(entry.key)].append((entry, ticket))
    calls: list[Call] = []
    for group in groups.values():
        args: list[Any] = []
        for entry, ticket in group:
            tags = list(dict.fromkeys(entry.tags))
            args += [ticket, entry.value, ms(entry.ttl), "1" if drop_on_loss else "0", len(tags), *tags]
        calls.append((scripts.WRITE, triples([entry.key for entry, _ in group]), args))
    return calls
