"""`RedisClusterAdapter`'s change feed: client tracking (BCAST, by prefix) on every primary.

A cluster node tracks only the keys it serves, so the feed is one
`cachetier.adapters.redis_tracking.InvalidationFeed` per primary (a listener and a
tracker connection to that node, made with the cluster client's connection
settings), all reporting to the same `on_change`. Echo checks of our own writes
read through the cluster client (MGET grouped by slot).

Fences (see `redis_tracking`): a node reports its keys in the order it changed
them, so a fence must be written on the node whose changes it follows. A node
feed's fence keys carry a hash tag for a slot of that node (``prefix`` + fence
mark + ``{<slot tag>}`` + id); an invalidation writes one in the last purge
script it sends each node, in that script's slot.

Topology: every `WATCH_INTERVAL` seconds the feed reads ``CLUSTER SLOTS`` from
any node. When the set of primaries changed (a failover promoted a replica, a
node was added or removed), feeds of primaries that are gone are closed, new
primaries get a feed, and ``on_change(None)`` says changes may have been missed
(the promoted replica's writes before its feed started were not reported). So
L1 copies can lag a failover by up to `WATCH_INTERVAL` plus a round trip;
without a feed they would live up to `l1_max_ttl`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, Final, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from cachetier.adapters.redis_cluster_names import slot_of, slot_tag
from cachetier.adapters.redis_tracking import InvalidationFeed, OnChange

WATCH_INTERVAL: Final = 1.0

logger = logging.getLogger("cachetier")


class _NodeClient:
    """The part of a client `InvalidationFeed` uses, for one node: its connection settings; reads via the cluster."""

    def __init__(self, cluster: RedisCluster, host: str, port: int, mget: Callable[[list[str]], Awaitable[Any]]):
        options = dict(cluster.get_connection_kwargs())
        connection_class = options.pop("connection_class")
        for name in ("max_connections", "response_callbacks"):
            options.pop(name, None)
        options.update(host=host, port=port)
        self.connection_pool = SimpleNamespace(connection_kwargs=options, connection_class=connection_class)
        self._cluster = cluster
        self._mget = mget

    async def mget(self, keys: list[str]) -> Any:
        return await self._mget(keys)

    async def set(self, key: str, value: bytes, px: int) -> Any:
        return await self._cluster.set(key, value, px=px)


class NodeFeed(InvalidationFeed):
    """One primary's feed; its fence keys land in a slot of that primary."""

    def __init__(self, client: _NodeClient, prefix: str, on_change: OnChange, slot: int) -> None:
        super().__init__(cast(Redis, client), prefix, on_change)
        self.slot = slot

    def open_fence(self, slot: int | None = None) -> str | None:
        """As `InvalidationFeed.open_fence`, with the key in `slot` (default: one of this node's)."""
        if not self._connected:
            return None
        key = f"{self._fence_prefix}{{{slot_tag(self.slot if slot is None else slot)}}}{uuid.uuid4().hex}"
        self._fences[key] = asyncio.get_running_loop().create_future()
        return key


class ClusterFeed:
    """The feeds of every primary, kept in step with the cluster's topology."""

    def __init__(
        self, client: RedisCluster, prefix: str, on_change: OnChange, mget: Callable[[list[str]], Awaitable[Any]]
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._on_change = on_change
        self._mget = mget
        self.feeds: dict[str, NodeFeed] = {}  # node name (host:port) -> its feed
        self._task: asyncio.Task[None] | None = None
        self.topology_changes = 0

    async def start(self) -> None:
        """Start a feed on every primary (raises `BackendError` when a node refuses tracking)."""
        await self._sync(await self._primaries())
        self._task = asyncio.create_task(self._watch(), name=f"cachetier-cluster-feed:{self._prefix}")

    async def _primaries(self) -> dict[str, tuple[str, int, int]]:
        """Node name -> (host, port, one slot it serves), from CLUSTER SLOTS on any node."""
        ranges = await self._client.execute_command("CLUSTER SLOTS", target_nodes=RedisCluster.RANDOM)
        primaries: dict[str, tuple[str, int, int]] = {}
        for (first, _), node in cast(dict[tuple[int, int], dict[str, Any]], ranges).items():
            host, port = node["primary"][0], int(node["primary"][1])
            primaries.setdefault(f"{host}:{port}", (host, port, first))
        return primaries

    async def _sync(self, primaries: dict[str, tuple[str, int, int]]) -> bool:
        """Match the feeds to `primaries`; True when they changed."""
        gone = [name for name in self.feeds if name not in primaries]
        for name in gone:
            await self.feeds.pop(name).close()
        added = [name for name in primaries if name not in self.feeds]
        for name in added:
            host, port, slot = primaries[name]
            feed = NodeFeed(_NodeClient(self._client, host, port, self._mget), self._prefix, self._on_change, slot)
            await feed.start()
            self.feeds[name] = feed
        return bool(gone or added)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                changed = await self._sync(await self._primaries())
            except Exception as exc:  # a node down, or mid-failover: look again next time
                logger.debug("cachetier: redis cluster feed topology check failed (%s)", exc)
                continue
            if changed:
                self.topology_changes += 1
                logger.warning("cachetier: redis cluster primaries changed; change feed re-subscribed")
                try:
                    self._on_change(None)  # changes made before the new feeds started were not reported
                except Exception:
                    logger.exception("cachetier: change feed callback for %r failed", self._prefix)

    def feed_for_slot(self, slot: int) -> NodeFeed | None:
        """The feed of the primary serving `slot`, as the client knows it now."""
        try:
            node = self._client.nodes_manager.get_node_from_slot(slot)
        except RedisError:
            return None
        return self.feeds.get(node.name)

    def expect(self, key: str, value: bytes | None) -> None:
        """See `InvalidationFeed.expect`; routed to the feed of the key's node."""
        feed = self.feed_for_slot(slot_of(key))
        if feed is not None:
            feed.expect(key, value)

    async def pass_fences(self) -> None:
        """A fence through every node feed, written now (after a `clear`)."""
        await asyncio.gather(*(feed.pass_fence(feed.open_fence(), written=False) for feed in self.feeds.values()))

    async def close(self) -> None:
        """Stop watching and close every node feed; idempotent."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        feeds, self.feeds = list(self.feeds.values()), {}
        for feed in feeds:
            await feed.close()
