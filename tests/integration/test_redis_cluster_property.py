"""Property on Redis Cluster: after invalidate_by_tag(s) returns, no key carrying a tag is readable, from
L1 or L2, while keys and tags spread over every primary (the same model as test_tag_invalidation_property)."""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachetier import CacheConfig, create_with_config
from cachetier.adapters.redis_cluster import RedisClusterAdapter
from cluster_servers import RedisClusterServers

KEYS = [f"k{i}" for i in range(6)]
TAGS = ["a", "b", "c"]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(KEYS), st.lists(st.sampled_from(TAGS), max_size=2, unique=True)),
        st.tuples(st.just("mset"), st.lists(st.sampled_from(TAGS), max_size=2, unique=True)),
        st.tuples(st.just("invalidate"), st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True)),
        st.tuples(st.just("get"), st.sampled_from(KEYS)),
        st.tuples(st.just("delete"), st.sampled_from(KEYS)),
        st.tuples(st.just("expire"), st.sampled_from(KEYS)),
    ),
    max_size=30,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_no_tagged_key_is_readable_after_its_tag_invalidation_on_a_cluster(
    redis_cluster: RedisClusterServers, ops: list[tuple[object, ...]]
) -> None:
    async def run() -> None:
        config = CacheConfig(namespace=f"p{uuid.uuid4().hex[:8]}")
        async with create_with_config(config, l2=RedisClusterAdapter.from_url(redis_cluster.url)) as cache:
            model: dict[str, tuple[int, set[str]]] = {}
            for step, op in enumerate(ops):
                if op[0] == "set":
                    key, tags = str(op[1]), list(op[2])  # type: ignore[call-overload]
                    await cache.set(key, step, tags=tags)
                    model[key] = (step, set(tags))
                elif op[0] == "mset":
                    tags = list(op[1])  # type: ignore[call-overload]
                    await cache.mset(dict.fromkeys(KEYS, step), tags=tags)
                    model = {key: (step, set(tags)) for key in KEYS}
                elif op[0] == "invalidate":
                    gone = set(op[1])  # type: ignore[call-overload]
                    await cache.invalidate_by_tags(sorted(gone))
                    model = {key: entry for key, entry in model.items() if not entry[1] & gone}
                    for key in KEYS:  # nothing tagged may be readable, from either tier
                        assert await cache.get(key) == model.get(key, (None, set()))[0]
                elif op[0] == "delete":
                    await cache.delete(str(op[1]))
                    model.pop(str(op[1]), None)
                elif op[0] == "expire":
                    await cache.expire(str(op[1]), 120)
                else:
                    assert await cache.get(str(op[1])) == model.get(str(op[1]), (None, set()))[0]
            await cache.clear()

    asyncio.run(run())
