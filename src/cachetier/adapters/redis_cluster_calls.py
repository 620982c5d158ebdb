"""Building `RedisClusterAdapter`'s script calls: entries grouped by slot, tags by tag (see `redis_cluster`)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, TypeVar

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterError, RedisClusterException, ResponseError

from cachetier.adapters import redis_cluster_scripts as scripts
from cachetier.adapters.redis_cluster_batch import Call, run_commands, run_scripts
from cachetier.adapters.redis_cluster_names import TAG_INDEX, TAG_MARK, companions, internal, slot_of
from cachetier.protocols import L2Entry

TICKET_MS: Final = 5_000  # a write's ticket outlives any normal write; a slower one stores nothing
_CHUNK: Final = 500  # entries per write script: a longer one holds its node up longer
_READ_CHUNK: Final = 512  # keys per read script
_T = TypeVar("_T")


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


class Layout:
    """Which entries share a script: one slot's; or, given `client` (cross-slot scripts, Redis 7+), one node's."""

    def __init__(self, client: RedisCluster | None = None) -> None:
        self._client = client

    def groups(
        self, items: Iterable[_T], key: Callable[[_T], str], size: int
    ) -> list[tuple[ClusterNode | None, list[_T]]]:
        """`items` in groups of at most `size`, with the node to send each to (None: its slot's owner)."""
        grouped: dict[object, tuple[ClusterNode | None, list[_T]]] = {}
        for item in items:
            slot = slot_of(key(item))
            if self._client is None:
                grouped.setdefault(slot, (None, []))[1].append(item)
            else:
                node = self._client.nodes_manager.get_node_from_slot(slot)
                grouped.setdefault(node.name, (node, []))[1].append(item)
        return [
            (node, group[start : start + size])
            for node, group in grouped.values()
            for start in range(0, len(group), size)
        ]

    def call(self, script: scripts.Script, keys: Sequence[str], args: Sequence[Any], node: ClusterNode | None) -> Call:
        """`script` on `keys` as this layout runs it (per node: the cross-slot variant, names in ARGV)."""
        if node is None:
            return Call(script, keys, args)
        return Call(scripts.CROSS_SLOT[script], (), [len(keys), *keys, *args], node)


PER_SLOT: Final = Layout()


def plain_calls(entries: Sequence[L2Entry], layout: Layout) -> list[Call]:
    calls: list[Call] = []
    for node, chunk in layout.groups(entries, _entry_key, _CHUNK):
        args = [arg for entry in chunk for arg in (entry.value, ms(entry.ttl))]
        calls.append(layout.call(scripts.SET_PLAIN, triples([entry.key for entry in chunk]), args, node))
    return calls


def ticket_calls(entries: Sequence[L2Entry], tickets: Sequence[str], layout: Layout) -> list[Call]:
    calls: list[Call] = []
    for node, chunk in layout.groups(list(zip(entries, tickets, strict=True)), _paired_key, _CHUNK):
        leases = [companions(entry.key)[1] for entry, _ in chunk]
        calls.append(layout.call(scripts.GRANT_TICKETS, leases, [TICKET_MS, *(t for _, t in chunk)], node))
    return calls


def index_calls(entries: Sequence[L2Entry], token: int, slack_ms: int) -> list[Call]:
    members: dict[str, list[Any]] = defaultdict(list)
    for entry in entries:
        for tag in dict.fromkeys(entry.tags):
            members[tag] += [ms(entry.ttl), entry.key]
    return [
        Call(scripts.INDEX_ADD, [internal(TAG_INDEX, tag), internal(TAG_MARK, tag)], [token, slack_ms, *pairs])
        for tag, pairs in members.items()
    ]


def write_calls(
    entries: Sequence[L2Entry], tickets: Sequence[str], *, drop_on_loss: bool, layout: Layout = PER_SLOT
) -> list[Call]:
    calls: list[Call] = []
    for node, chunk in layout.groups(list(zip(entries, tickets, strict=True)), _paired_key, _CHUNK):
        args: list[Any] = []
        for entry, ticket in chunk:
            tags = list(dict.fromkeys(entry.tags))
            args += [ticket, entry.value, ms(entry.ttl), "1" if drop_on_loss else "0", len(tags), *tags]
        calls.append(layout.call(scripts.WRITE, triples([entry.key for entry, _ in chunk]), args, node))
    return calls


def _entry_key(entry: L2Entry) -> str:
    return entry.key


def _paired_key(pair: tuple[L2Entry, str]) -> str:
    return pair[0].key


async def read_many(client: RedisCluster, layout: Layout, keys: Sequence[str]) -> list[bytes | None]:
    """The values of `keys` in order: one read script per node, or (per slot, or a slot being moved) MGETs."""
    unique = list(dict.fromkeys(keys))
    found: dict[str, bytes | None] = {}
    if layout is not PER_SLOT:
        try:
            groups = layout.groups(unique, str, _READ_CHUNK)
            calls = [layout.call(scripts.GET_MANY, group, (), node) for node, group in groups]
            for (_, group), values in zip(groups, await run_scripts(client, calls), strict=True):
                found.update(zip(group, values, strict=True))
            return [found[key] for key in keys]
        except (ResponseError, RedisClusterException, ClusterError):
            found.clear()
    groups_by_slot = by_slot(unique)
    replies = await run_commands(client, [("MGET", *group) for group in groups_by_slot.values()])
    for group, values in zip(groups_by_slot.values(), replies, strict=True):
        found.update(zip(group, values, strict=True))
    return [found[key] for key in keys]
