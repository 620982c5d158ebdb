"""Redis Cluster as the L2 store, over redis-py's `redis.asyncio.RedisCluster`.

A cluster runs a script or a multi-key command only on keys of one hash slot, so
the single-node design (one script per write, touching the key and its tags'
indexes) cannot work. Here every step touches one slot, and the order of the
steps is what keeps tag invalidation exact. Names (`redis_cluster_names`): a
value lives under its key as given; its tag list and lease share its slot; a
tag's index (keys scored by expiry) and mark share the tag's slot.

Tokens. Leases need tokens comparable across slots (a tag's mark is compared
with a lease drawn on another node), so they come from one counter, the lease
clock, in a fixed slot; each process draws them in blocks
(`redis_cluster_batch.TokenSupply`). Writes use tokens as tickets.

A tagged write (`set`/`mset` with tags) takes three steps, each one round
trip per node involved, pipelined across entries:

1. key slot: put a fresh ticket in the lease slot (revoking a loader's lease);
2. tag slots: add the key to each tag's index (score: expiry plus the ticket's
   life, since the value is written later, on another node's clock);
3. key slot: store value and tag list only if the ticket is still there.

An invalidation takes three: draw a mark from the clock; per tag, atomically
take the index's live members, delete the index and set the tag's mark; per
slot of the members, revoke their leases and tickets and remove those whose
tag list names an invalidated tag. The race this order closes: a write whose
key was added (step 2) before an index was taken either stored before its
members were purged (and is removed), or finds its ticket revoked at step 3
and stores nothing (deleting the value it replaces, so no older value outlives
a write that returned). A write whose step 2 came after the pop leaves its key
in the new index. So once `invalidate_tags` returns, no value written with
one of the tags before it began is readable; an index may list keys since
re-written without the tag, whose values are left alone (the tag list decides).

A leased store (`set_leased`) is steps 2 and 3 with the lease's token: step 2
refuses when a tag's mark is above the token (an invalidation after the lease
was drawn), step 3 when the lease was revoked. `expire` on a tagged key puts a
ticket, raises the index scores, then resets the TTL if the ticket held.

Costs, in round trips (each one per node, in parallel): `get` 1; `mget`/untagged
`set`/`mset` 1; tagged `set`/`mset` 3; `set_leased` 2 (1 without tags);
`get_or_lease` 1 (plus a clock draw per 256 tokens or per second);
`invalidate_tags` 3 whatever the number of keys; `clear` SCANs every primary;
`delete`, `exists`, `incr` 1. Batches run one script per node and 300-500 keys
(Redis 7 cross-slot scripts, `redis_cluster_calls.Layout`), else per slot. Tag
indexes and marks expire by themselves (`clear` leaves them: an index removed
under a write in flight would lose its key). Change feed: `redis_cluster_feed`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, cast

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterError, RedisClusterException, RedisError, ResponseError

from cachetier.adapters import redis_cluster_purge as purge
from cachetier.adapters import redis_cluster_scripts as scripts
from cachetier.adapters.redis_batching import GetBatcher
from cachetier.adapters.redis_cluster_batch import (
    TokenSupply,
    draw_from_clock,
    load_scripts,
    run_script,
    run_scripts,
)
from cachetier.adapters.redis_cluster_calls import (
    PER_SLOT,
    TICKET_MS,
    Layout,
    index_calls,
    ms,
    plain_calls,
    read_many,
    ticket_calls,
    triples,
    write_calls,
)
from cachetier.adapters.redis_cluster_connection import cluster_client, cluster_options_from_url, options_from_config
from cachetier.adapters.redis_cluster_feed import ClusterFeed
from cachetier.adapters.redis_cluster_names import companions
from cachetier.config import CacheConfig
from cachetier.errors import BackendError, ConfigError, NotAnIntegerError
from cachetier.protocols import L2Entry, Lease

MARK_MIN_MS: Final = 600_000  # marks outlive every lease drawn before them (longer leases raise it)


class RedisClusterAdapter:
    """`L2Adapter` and `LeasingAdapter` over one `RedisCluster` client. Faults are raised as `BackendError`."""

    name = "redis-cluster"

    def __init__(self, client: RedisCluster, *, close_client: bool = False, batch_gets: bool = True) -> None:
        """Wrap `client` (``decode_responses=False``); close it in `close()` only if `close_client`.

        With `batch_gets`, GETs issued while others are in flight go out together
        (`cachetier.adapters.redis_batching`), as one read script per node.
        """
        if client.get_connection_kwargs().get("decode_responses"):
            raise ConfigError("RedisClusterAdapter needs a client with decode_responses=False (values are bytes)")
        self._client = client
        self._close_client = close_client
        self._tokens = TokenSupply(client)
        self._longest_lease_ms = 0
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._feeds: list[ClusterFeed] = []
        self._batcher = GetBatcher(cast(Redis, _BatchedReads(self))) if batch_gets else None
        self._initialized = False
        self._layout = PER_SLOT  # per node (cross-slot scripts) once the servers are known to take them
        self._initializing = asyncio.Lock()

    async def _ready(self) -> None:
        """Discover the cluster before the first command, once.

        redis-py discovers it on first use, but when many calls make the first use
        together, each may start the discovery and drop connections the others are
        using; their retries then repeat commands (an INCR counted twice).
        """
        if self._initialized:
            return
        async with self._initializing:
            if not self._initialized:
                await self._client.initialize()
                self._layout = Layout(self._client) if await load_scripts(self._client) else PER_SLOT
                self._initialized = True

    @property
    def client(self) -> RedisCluster:
        """The underlying redis-py client (for diagnostics; bypasses the tag bookkeeping)."""
        return self._client

    @classmethod
    def from_config(cls, config: CacheConfig) -> RedisClusterAdapter:
        """Build from `redis_url` (whose settings win) or `redis_host`/`redis_port` as one seed node."""
        options = options_from_config(config)
        if config.redis_url:
            return cls.from_url(config.redis_url, **options)
        node = (config.redis_host or "localhost", config.redis_port)
        return cls(cluster_client([node], **options), close_client=True)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisClusterAdapter:
        """Connect lazily to the cluster at `url` (forms in `redis_cluster_connection`); raises `ConfigError`."""
        nodes, url_options = cluster_options_from_url(url)
        return cls(cluster_client(nodes, **{**options, **url_options}), close_client=True)

    # -- reads -------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        """One GET; while others are in flight, it joins the next batch (`mget`, one script per node)."""
        if self._batcher is not None and self._initialized:
            return await self._batcher.get(key)
        try:
            await self._ready()
            return cast(bytes | None, await self._client.get(key))
        except RedisError as exc:
            raise _backend_error("get", exc) from exc

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """One script per node on Redis 7 (else one MGET per slot), pipelined: one round trip per node."""
        if not keys:
            return []
        try:
            await self._ready()
            return await self._read_many(keys)
        except RedisError as exc:
            raise _backend_error("mget", exc) from exc

    async def _read_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return await read_many(self._client, self._layout, keys)

    async def exists(self, key: str) -> bool:
        try:
            await self._ready()
            return bool(await self._client.exists(key))
        except RedisError as exc:
            raise _backend_error("exists", exc) from exc

    # -- writes ------------------------------------------------------------------

    async def set(self, key: str, value: bytes, ttl: float, tags: Sequence[str] = ()) -> None:
        """Store `value` for `ttl` seconds (rounded up to ms) with exactly `tags`."""
        await self.mset([L2Entry(key, value, ttl, tags)])

    async def mset(self, entries: Sequence[L2Entry]) -> None:
        """Untagged entries in one round trip per node; tagged ones in three (see the module docstring)."""
        latest = list({entry.key: entry for entry in entries}.values())  # a later duplicate wins anyway
        if not latest:
            return
        for feed in self._feeds:
            for entry in latest:
                feed.expect(entry.key, entry.value)
        try:
            await self._ready()
            if len(latest) == 1 or self._layout is PER_SLOT:
                await self._write(latest, PER_SLOT)
                return
            try:
                await self._write(latest, self._layout)
            except (ResponseError, RedisClusterException, ClusterError):
                # A slot moving between nodes refuses cross-slot scripts. Written again per slot,
                # with fresh tickets (an entry written by the first attempt may be lost: a miss).
                await self._write(latest, PER_SLOT)
        except RedisError as exc:
            raise _backend_error("set", exc) from exc

    async def _write(self, entries: Sequence[L2Entry], layout: Layout) -> None:
        plain = [entry for entry in entries if not entry.tags]
        tagged = [entry for entry in entries if entry.tags]
        tickets = [str(await self._tokens.take()) for _ in tagged]
        await run_scripts(self._client, [*plain_calls(plain, layout), *ticket_calls(tagged, tickets, layout)])
        if tagged:
            await run_scripts(self._client, index_calls(tagged, 0, TICKET_MS))
            await run_scripts(self._client, write_calls(tagged, tickets, drop_on_loss=True, layout=layout))

    async def delete(self, key: str) -> bool:
        for feed in self._feeds:
            feed.expect(key, None)
        try:
            await self._ready()
            return bool(await run_script(self._client, scripts.UNLINK_ENTRIES, triples([key]), [0, 0]))
        except RedisError as exc:
            raise _backend_error("delete", exc) from exc

    async def expire(self, key: str, ttl: float) -> bool:
        """Reset a live key's TTL (raising its tags' index scores first); False when absent."""
        names = triples([key])
        try:
            await self._ready()
            ticket = str(await self._tokens.take())
            begun = await run_script(self._client, scripts.EXPIRE_BEGIN, names, [ticket, TICKET_MS, ms(ttl)])
            if not isinstance(begun, list):
                return bool(begun)
            tags = [tag.decode() for tag in begun]
            await run_scripts(self._client, index_calls([L2Entry(key, b"", ttl, tags)], 0, TICKET_MS))
            return bool(await run_script(self._client, scripts.EXPIRE_END, names, [ticket, ms(ttl)]))
        except RedisError as exc:
            raise _backend_error("expire", exc) from exc

    async def incr(self, key: str, by: int, ttl: float) -> int:
        """INCRBY, creating a missing key at 0 with `ttl`, in one script (revokes the key's lease)."""
        try:
            await self._ready()
            return int(await run_script(self._client, scripts.INCR, [key, companions(key)[1]], [by, ms(ttl)]))
        except ResponseError as exc:
            if "not an integer" in str(exc):
                raise NotAnIntegerError(f"value at {key!r} is not an integer (or would overflow 64 bits)") from exc
            raise _backend_error("incr", exc) from exc
        except RedisError as exc:
            raise _backend_error("incr", exc) from exc

    # -- leases ------------------------------------------------------------------

    async def get_or_lease(self, key: str, lease_ttl: float) -> Lease:
        """The value, a new lease (one round trip), or busy while another client holds the key's lease."""
        lease_ms = ms(lease_ttl)
        self._longest_lease_ms = max(self._longest_lease_ms, lease_ms)
        try:
            await self._ready()
            token = await self._tokens.take()
            reply = await run_script(self._client, scripts.GRANT, [key, companions(key)[1]], [token, lease_ms])
        except RedisError as exc:
            raise _backend_error("get", exc) from exc
        if isinstance(reply, bytes):
            return Lease(reply)
        return Lease(None, token, False) if reply == 1 else Lease(None, None, True)

    async def set_leased(self, key: str, value: bytes, ttl: float, tags: Sequence[str], token: int) -> bool:
        """Store while `token` holds the key's lease and no tag was invalidated since it was drawn."""
        entry = L2Entry(key, value, ttl, tags)
        for feed in self._feeds:
            feed.expect(key, value)
        try:
            await self._ready()
            if tags:
                slack = max(self._longest_lease_ms, TICKET_MS)
                accepted = await run_scripts(self._client, index_calls([entry], token, slack))
                if not all(accepted):
                    self._tokens.drop()  # our block predates an invalidation: later leases would be refused too
                    await run_script(self._client, scripts.RELEASE, [companions(key)[1]], [token])
                    return False
            written = await run_scripts(self._client, write_calls([entry], [str(token)], drop_on_loss=False))
        except RedisError as exc:
            raise _backend_error("set", exc) from exc
        return bool(written[0][0])

    # -- invalidation --------------------------------------------------------------

    async def invalidate_tags(self, tags: Sequence[str]) -> int:
        """Remove every key carrying any of `tags` (three round trips); count each live key once."""
        unique = list(dict.fromkeys(tags))
        if not unique:
            return 0
        try:
            await self._ready()
            mark = await draw_from_clock(self._client, 1)
            self._tokens.drop(below=mark)
            mark_ms = max(MARK_MIN_MS, 2 * self._longest_lease_ms)
            return await purge.invalidate(self._client, unique, mark, mark_ms, self._feeds, self._layout)
        except RedisError as exc:
            raise _backend_error("invalidate_tags", exc) from exc

    async def clear(self, prefix: str) -> int:
        """Remove every entry under `prefix` with its tag list and lease (SCAN on every primary); count entries."""
        try:
            await self._ready()
            return await purge.clear(self._client, prefix, self._feeds, self._layout)
        except RedisError as exc:
            raise _backend_error("clear", exc) from exc

    async def subscribe_invalidations(
        self, prefix: str, on_change: Callable[[Sequence[str] | None], None]
    ) -> Callable[[], Awaitable[None]]:
        """Report keys under `prefix` that any client changes, on every primary (`redis_cluster_feed`).

        Two dedicated connections per primary until the returned coroutine function
        (or `close`) is called. Raises `BackendError` when a node refuses tracking.
        """
        try:
            await self._ready()
            feed = ClusterFeed(self._client, prefix, on_change, self.mget)
            await feed.start()
        except RedisError as exc:
            raise _backend_error("subscribe", exc) from exc
        self._feeds.append(feed)

        async def unsubscribe() -> None:
            if feed in self._feeds:
                self._feeds.remove(feed)
            if unsubscribe in self._closers:
                self._closers.remove(unsubscribe)
            await feed.close()

        self._closers.insert(0, unsubscribe)
        return unsubscribe

    # -- upkeep ------------------------------------------------------------------

    async def ping(self) -> None:
        """Return when every primary answers."""
        try:
            await self._ready()
            await self._client.ping(target_nodes=RedisCluster.PRIMARIES)
        except RedisError as exc:
            raise _backend_error("ping", exc) from exc

    async def stats(self) -> dict[str, Any]:
        """Keys and memory summed over the primaries, and how many there are."""
        try:
            await self._ready()
            primaries = self._client.get_primaries()
            sizes = await self._client.dbsize(target_nodes=RedisCluster.PRIMARIES)
            memory = await self._client.info("memory", target_nodes=RedisCluster.PRIMARIES)
        except RedisError as exc:
            raise _backend_error("stats", exc) from exc
        used = memory.values() if isinstance(memory, dict) and all(isinstance(v, dict) for v in memory.values()) else []
        return {
            "primaries": len(primaries),
            "keys_in_db": sizes,
            "used_memory": sum(int(info.get("used_memory", 0)) for info in used) or None,
            "pool_max_connections_per_node": self._client.get_connection_kwargs().get("max_connections"),
        }

    async def close(self) -> None:
        """Close the change feeds and (if this adapter made it) the client; idempotent."""
        closers, self._closers = self._closers, []
        if self._batcher is not None:
            await self._batcher.close()
        try:
            for closer in closers:
                await closer()
            if self._close_client:
                self._close_client = False
                await self._client.aclose()
        except RedisError as exc:
            raise _backend_error("close", exc) from exc


class _BatchedReads:
    """What `GetBatcher` calls: a lone GET through the cluster client, batches through `_read_many`."""

    def __init__(self, adapter: RedisClusterAdapter) -> None:
        self._adapter = adapter

    async def get(self, key: str) -> Any:
        return await self._adapter.client.get(key)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self._adapter._read_many(keys)


def _backend_error(operation: str, exc: RedisError) -> BackendError:
    return BackendError(f"redis cluster {operation} failed: {type(exc).__name__}: {exc}")
