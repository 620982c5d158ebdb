"""Redis: cachetier in its default configuration against raw `redis.asyncio` and peers.

cachetier runs as users run it: L1 on, the change feed on (client tracking;
a plain set goes through the feed's NOLOOP tracker and is never echoed, other
writes' echoes are checked), leases on (a miss with a loader is one
lease-read script, the loader and one leased-store script). Reads that must
reach Redis ("L1 miss" rows) cycle over 50,000 keys written by another
manager, five times what the default L1 holds, so each read misses L1: a get
then fills L1 (evicting, as a full L1 does), an mget only notes in the ghost
list the keys a full L1 has not seen lately; the note says how many hit L1.
Rows marked "L1 off" turn the in-process tier (and with it the feed) off.

The raw client does the same work with the same codec (cachetier's `JsonCodec`)
over a `BlockingConnectionPool` of the same size (64), with redis-py's default
5 s socket timeout; the "socket_timeout=None" rows show the same client with no
timeout at all, which cachetier's bounded sends come close to. cashews and aiocache are
set up as their docs show (`cache.setup("redis://...")`, `RedisCache(...)`), so
they use their default serializers (pickle for cashews, JSON for aiocache).
Peers have no loader API of the same shape, so their "miss + loader" is the
hand-written get / load / set.
"""

from __future__ import annotations

from typing import Any

from aiocache import RedisCache
from cashews import Cache as CashewsCache
from redis.asyncio import BlockingConnectionPool, Redis

from bench._measure import Op, Row, compare, concurrent, timed_with_setup
from cachetier import CacheConfig, CacheManager, create_cache
from cachetier.codecs import JsonCodec

HOST, PORT = "127.0.0.1", 6379
URL = f"redis://{HOST}:{PORT}/0"
KEYS = 1000
UNIVERSE = 50_000  # keys the L1-miss rows cycle over: five times the default L1 (10,000 entries)
TTL = 3600
TAGS = ("team", "org", "all")
CODEC = JsonCodec()


def value(i: int) -> dict[str, Any]:
    return {"id": i, "name": f"user {i}", "active": True, "score": 1.5}


def tags_of(i: int) -> list[str]:
    """Key `t<i>`'s tags; a rewrite keeps them (re-tagging costs the exact-tags path a second round trip)."""
    return [f"team:{i % 10}", f"org:{i % 3}", "all"]


def loader_for(i: int) -> Any:
    return lambda: value(i)


def mixed(get: Any, put: Any) -> Op:
    """The 64-task scenario's op: 90% `get(key)`, 10% `put(key, value)`, over scattered keys."""

    async def op(i: int) -> Any:
        key = f"k{(i * 7919) % KEYS}"
        if i % 10 == 0:
            return await put(key, value(i))
        return await get(key)

    return op


class Contenders:
    """Clients under one run-unique prefix; `close()` removes every key they made."""

    def __init__(self, run: str) -> None:
        self.prefix = f"bench{run}"
        self.raw = Redis(connection_pool=BlockingConnectionPool(host=HOST, port=PORT, max_connections=64))
        # redis-py's default socket_timeout (5 s) sends through asyncio.wait_for, a task per command;
        # without a timeout a client is faster but waits forever on a dead server.
        self.raw_untimed = Redis(
            connection_pool=BlockingConnectionPool(host=HOST, port=PORT, max_connections=64, socket_timeout=None)
        )
        config = CacheConfig(adapter="redis", redis_url=URL, namespace=self.prefix)  # the defaults
        self.cache: CacheManager = create_cache(config)
        self.cache_l1_off: CacheManager = create_cache(config.replace(namespace=self.prefix + "off", l1_enabled=False))
        # Writes the default manager's keys as another process would, leaving its L1 empty.
        self.writer: CacheManager = create_cache(config.replace(l1_enabled=False))
        self.cashews = CashewsCache()
        self.cashews.setup(URL)
        self.aio = RedisCache(endpoint=HOST, port=PORT, namespace=self.prefix + "aio:")

    def raw_key(self, key: str) -> str:
        return f"{self.prefix}raw:{key}"

    def cw_key(self, key: str) -> str:
        return f"{self.prefix}cw:{key}"

    async def start(self) -> None:
        await self.cache.start()
        await self.cache_l1_off.start()
        await self.writer.start()

    async def populate(self) -> None:
        for start in range(0, UNIVERSE, 5000):
            items = {f"u{i}": value(i) for i in range(start, start + 5000)}
            await self.writer.mset(items, ttl=TTL)
            await self.cache_l1_off.mset(items, ttl=TTL)
            async with self.raw.pipeline(transaction=False) as pipe:
                for key, item in items.items():
                    pipe.set(self.raw_key(key), CODEC.encode(item), px=TTL * 1000)
                await pipe.execute()
        items = {f"k{i}": value(i) for i in range(KEYS)}
        await self.writer.mset(items, ttl=TTL)
        await self.cache_l1_off.mset(items, ttl=TTL)
        async with self.raw.pipeline(transaction=False) as pipe:
            for key, item in items.items():
                pipe.set(self.raw_key(key), CODEC.encode(item), px=TTL * 1000)
            await pipe.execute()
        await self.cashews.set_many({self.cw_key(k): v for k, v in items.items()}, expire=TTL)
        await self.aio.multi_set(list(items.items()), ttl=TTL)

    async def close(self) -> None:
        await self.cache.clear()
        await self.cache_l1_off.clear()
        await self.cache.close()
        await self.cache_l1_off.close()
        await self.writer.close()
        cursor: int | None = None
        while cursor != 0:
            cursor, found = await self.raw.scan(cursor or 0, match=f"*{self.prefix}*", count=1000)
            if found:
                await self.raw.unlink(*found)
        await self.raw.aclose()
        await self.raw_untimed.aclose()
        await self.cashews.close()
        await self.aio.close()


async def rows(run: str, scale: float) -> list[Row]:
    c = Contenders(run)
    await c.start()
    try:
        await c.populate()
        return await _rows(c, scale)
    finally:
        await c.close()


def l1_note(before: tuple[int, int], after: tuple[int, int]) -> str:
    hits, requests = after[0] - before[0], after[1] - before[1]
    return f"L1 hits {hits:,} of {requests:,} reads"


def l1_counts(cache: CacheManager) -> tuple[int, int]:
    l1 = cache._l1  # the bench reads the counters directly: get_stats() is async and asks L2 too
    return l1.hits, l1.hits + l1.misses


async def _rows(c: Contenders, scale: float) -> list[Row]:
    raw, cache, off, cw, aio = c.raw, c.cache, c.cache_l1_off, c.cashews, c.aio

    def n(ops: int) -> int:
        return max(20, int(ops * scale))

    out: list[Row] = []
    untimed = c.raw_untimed

    async def raw_get(i: int) -> Any:
        return CODEC.decode(await raw.get(c.raw_key(f"u{i % UNIVERSE}")))

    async def untimed_get(i: int) -> Any:
        return CODEC.decode(await untimed.get(c.raw_key(f"u{i % UNIVERSE}")))

    before = l1_counts(cache)
    rows = await compare(
        "get, L1 miss (Redis hit)",
        {
            "raw redis.asyncio GET + decode": raw_get,
            "same, socket_timeout=None": untimed_get,
            "cachetier get (defaults)": lambda i: cache.get(f"u{i % UNIVERSE}"),
            "cachetier get, L1 off": lambda i: off.get(f"u{i % UNIVERSE}"),
            "cashews get": lambda i: cw.get(c.cw_key(f"k{i % KEYS}")),
            "aiocache get": lambda i: aio.get(f"k{i % KEYS}"),
        },
        ops=n(4000),
    )
    rows[2].note = l1_note(before, l1_counts(cache))
    out += rows

    async def raw_miss(i: int) -> Any:
        key = c.raw_key(f"m{i}")
        data = await raw.get(key)
        if data is not None:
            return CODEC.decode(data)
        loaded = loader_for(i)()
        await raw.set(key, CODEC.encode(loaded), px=TTL * 1000)
        return loaded

    def peer_miss(get: Any, put: Any) -> Op:
        async def op(i: int) -> Any:
            found = await get(f"m{i}")
            if found is None:
                found = loader_for(i)()
                await put(f"m{i}", found)
            return found

        return op

    out += await compare(
        "miss + loader",
        {
            "raw GET, load, SET PX": raw_miss,
            "cachetier get(key, loader) (defaults: lease)": lambda i: cache.get(f"m{i}", loader_for(i), ttl=TTL),
            "cachetier get(key, loader), L1 off": lambda i: off.get(f"m{i}", loader_for(i), ttl=TTL),
            "cashews get, load, set": peer_miss(
                lambda k: cw.get(c.cw_key(k)), lambda k, v: cw.set(c.cw_key(k), v, expire=TTL)
            ),
            "aiocache get, load, set": peer_miss(aio.get, lambda k, v: aio.set(k, v, ttl=TTL)),
        },
        ops=n(3000),
        notes={"cachetier get(key, loader) (defaults: lease)": "lease-read script, loader, leased-store script"},
    )

    out += await compare(
        "set",
        {
            "raw SET PX + encode": lambda i: raw.set(c.raw_key(f"s{i % KEYS}"), CODEC.encode(value(i)), px=TTL * 1000),
            "same, socket_timeout=None": lambda i: untimed.set(
                c.raw_key(f"s{i % KEYS}"), CODEC.encode(value(i)), px=TTL * 1000
            ),
            "cachetier set (defaults)": lambda i: cache.set(f"s{i % KEYS}", value(i), ttl=TTL),
            "cachetier set, L1 off": lambda i: off.set(f"s{i % KEYS}", value(i), ttl=TTL),
            "cashews set": lambda i: cw.set(c.cw_key(f"s{i % KEYS}"), value(i), expire=TTL),
            "aiocache set": lambda i: aio.set(f"s{i % KEYS}", value(i), ttl=TTL),
        },
        ops=n(4000),
        notes={"cachetier set (defaults)": "MULTI/EXEC on the change feed's NOLOOP tracker: never echoed back"},
    )

    async def raw_tagged(i: int) -> Any:
        key = c.raw_key(f"t{i % KEYS}")
        async with raw.pipeline(transaction=True) as pipe:
            pipe.set(key, CODEC.encode(value(i)), px=TTL * 1000)
            for tag in tags_of(i % KEYS):
                pipe.sadd(c.raw_key("tag:" + tag), key)
            return await pipe.execute()

    out += await compare(
        "set + 3 tags",
        {
            "raw MULTI SET PX + 3 SADD": raw_tagged,
            "cachetier set(tags=...) (defaults)": lambda i: cache.set(
                f"t{i % KEYS}", value(i), ttl=TTL, tags=tags_of(i % KEYS)
            ),
            "cashews set(tags=...)": lambda i: cw.set(
                c.cw_key(f"t{i % KEYS}"), value(i), expire=TTL, tags=tags_of(i % KEYS)
            ),
        },
        ops=n(3000),
        notes={"cashews set(tags=...)": "one SET then one SADD round trip per tag, not atomic"},
    )

    count = UNIVERSE // 100
    windows = [[f"u{j}" for j in range(start * 100, start * 100 + 100)] for start in range(count)]
    raw_windows = [[c.raw_key(k) for k in w] for w in windows]
    peer_windows = [[f"k{j}" for j in range(start, start + 100)] for start in range(0, KEYS, 100)]
    cw_windows = [[c.cw_key(k) for k in w] for w in peer_windows]

    async def raw_mget(i: int) -> Any:
        return [CODEC.decode(d) for d in await raw.mget(raw_windows[i % count]) if d is not None]

    async def untimed_mget(i: int) -> Any:
        return [CODEC.decode(d) for d in await untimed.mget(raw_windows[i % count]) if d is not None]

    before = l1_counts(cache)
    rows = await compare(
        "mget 100, L1 misses",
        {
            "raw MGET + decode": raw_mget,
            "same, socket_timeout=None": untimed_mget,
            "cachetier mget (defaults)": lambda i: cache.mget(windows[i % count]),
            "cachetier mget, L1 off": lambda i: off.mget(windows[i % count]),
            "cashews get_many": lambda i: cw.get_many(*cw_windows[i % 10]),
            "aiocache multi_get": lambda i: aio.multi_get(peer_windows[i % 10]),
        },
        ops=n(600),
    )
    rows[2].note = l1_note(before, l1_counts(cache))
    out += rows

    mset_windows = [[f"w{j}" for j in range(start, start + 100)] for start in range(0, KEYS, 100)]
    raw_mset_windows = [[c.raw_key(k) for k in w] for w in mset_windows]
    cw_mset_windows = [[c.cw_key(k) for k in w] for w in mset_windows]

    async def raw_mset(i: int) -> Any:
        async with raw.pipeline(transaction=False) as pipe:
            for j, key in enumerate(raw_mset_windows[i % 10]):
                pipe.set(key, CODEC.encode(value(j)), px=TTL * 1000)
            return await pipe.execute()

    out += await compare(
        "mset 100",
        {
            "raw pipelined SET PX + encode": raw_mset,
            "cachetier mset (defaults)": lambda i: cache.mset(
                {k: value(j) for j, k in enumerate(mset_windows[i % 10])}, ttl=TTL
            ),
            "cashews set_many": lambda i: cw.set_many(
                {k: value(j) for j, k in enumerate(cw_mset_windows[i % 10])}, TTL
            ),
            "aiocache multi_set": lambda i: aio.multi_set(
                [(k, value(j)) for j, k in enumerate(mset_windows[i % 10])], TTL
            ),
        },
        ops=n(400),
    )

    out += await _invalidate_rows(c, reps=max(3, int(10 * scale)))
    out += await _concurrent_rows(c, ops_per_task=max(20, int(300 * scale)))
    return out


async def _invalidate_rows(c: Contenders, reps: int) -> list[Row]:
    raw, cache, cw = c.raw, c.cache, c.cashews
    keys = [f"inv{i}" for i in range(1000)]
    tag_key = c.raw_key("tag:inv")

    async def raw_setup() -> None:
        async with raw.pipeline(transaction=False) as pipe:
            for i, key in enumerate(keys):
                pipe.set(c.raw_key(key), CODEC.encode(value(i)), px=TTL * 1000)
                pipe.sadd(tag_key, c.raw_key(key))
            await pipe.execute()

    async def raw_invalidate() -> None:
        members = await raw.smembers(tag_key)
        await raw.unlink(tag_key, *members)

    async def cw_setup() -> None:
        for i, key in enumerate(keys):
            await cw.set(c.cw_key(key), value(i), expire=TTL, tags=["inv"])

    return await timed_with_setup(
        "invalidate a tag of 1,000 keys",
        {
            "raw SMEMBERS + UNLINK": (raw_setup, raw_invalidate),
            "cachetier invalidate_by_tag (defaults)": (
                lambda: cache.mset({k: value(i) for i, k in enumerate(keys)}, ttl=TTL, tags=["inv"]),
                lambda: cache.invalidate_by_tag("inv"),
            ),
            "cashews delete_tags": (cw_setup, lambda: cw.delete_tags("inv")),
        },
        reps,
    )


async def _concurrent_rows(c: Contenders, ops_per_task: int) -> list[Row]:
    raw, cw, aio = c.raw, c.cashews, c.aio

    async def raw_get(key: str) -> Any:
        data = await raw.get(c.raw_key(key))
        return None if data is None else CODEC.decode(data)

    contenders = {
        "raw redis.asyncio (pool 64)": mixed(
            raw_get, lambda k, v: raw.set(c.raw_key(k), CODEC.encode(v), px=TTL * 1000)
        ),
        "cachetier, defaults (pool 64)": mixed(c.cache.get, lambda k, v: c.cache.set(k, v, ttl=TTL)),
        "cachetier, L1 off (pool 64)": mixed(c.cache_l1_off.get, lambda k, v: c.cache_l1_off.set(k, v, ttl=TTL)),
        "cashews": mixed(lambda k: cw.get(c.cw_key(k)), lambda k, v: cw.set(c.cw_key(k), v, expire=TTL)),
        "aiocache": mixed(aio.get, lambda k, v: aio.set(k, v, ttl=TTL)),
    }
    return await concurrent("64 tasks, 90% get / 10% set", contenders, tasks=64, ops_per_task=ops_per_task)
