"""Property: after invalidate_by_tag returns, no key carrying that tag is readable from L1 or L2."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachetier import CacheConfig, CacheManager, create_for_testing, create_with_config
from cachetier.adapters.memory import MemoryAdapter

KEYS = [f"k{i}" for i in range(6)]
TAGS = ["a", "b", "c"]

operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(KEYS), st.lists(st.sampled_from(TAGS), max_size=2, unique=True)),
        st.tuples(st.just("invalidate"), st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True)),
        st.tuples(st.just("get"), st.sampled_from(KEYS)),
        st.tuples(st.just("delete"), st.sampled_from(KEYS)),
    ),
    max_size=30,
)


async def _check(cache: CacheManager, ops: list[tuple[object, ...]]) -> None:
    model: dict[str, tuple[int, set[str]]] = {}
    for step, op in enumerate(ops):
        if op[0] == "set":
            key, tags = str(op[1]), list(op[2])  # type: ignore[call-overload]
            await cache.set(key, step, tags=tags)
            model[key] = (step, set(tags))
        elif op[0] == "invalidate":
            tags = set(op[1])  # type: ignore[call-overload]
            await cache.invalidate_by_tags(sorted(tags))
            model = {key: entry for key, entry in model.items() if not entry[1] & tags}
            for key in KEYS:  # nothing tagged may be readable, from either tier
                expected = model.get(key, (None, set()))[0]
                assert await cache.get(key) == expected
        elif op[0] == "delete":
            await cache.delete(str(op[1]))
            model.pop(str(op[1]), None)
        else:
            assert await cache.get(str(op[1])) == model.get(str(op[1]), (None, set()))[0]
    await cache.clear()


def _memory() -> CacheManager:
    return create_with_config(adapter=MemoryAdapter(), namespace=f"p{uuid.uuid4().hex[:8]}")


def _sqlite() -> CacheManager:
    return create_for_testing(CacheConfig(adapter="sqlite"))


@pytest.mark.parametrize("make_cache", [_memory, _sqlite], ids=["memory", "sqlite"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_no_tagged_key_is_readable_after_its_tag_invalidation(
    make_cache: Callable[[], CacheManager], ops: list[tuple[object, ...]]
) -> None:
    async def run() -> None:
        async with make_cache() as cache:
            await _check(cache, ops)

    asyncio.run(run())
