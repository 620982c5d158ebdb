"""Fixtures for tests on the machine's shared Redis: a key prefix of their own, a `RedisAdapter`, a raw client.

A module imports the ones it uses::

    from redis_fixtures import fixture_adapter, fixture_prefix, fixture_raw  # noqa: F401 (fixtures)

and its tests request them by name: `prefix`, `adapter`, `raw`. (The functions carry
a ``fixture_`` name so that a test's parameter does not shadow the import.) A class
that defines its own `prefix`, as the contract suites do, overrides this one.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from cachetier.adapters.redis import RedisAdapter


@pytest.fixture(name="prefix")
def fixture_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix no other test uses: the module's name (``redis-tags`` for test_redis_tags) and 12 hex digits."""
    label = request.module.__name__.removeprefix("test_").replace("_", "-")
    return f"{label}-{uuid.uuid4().hex[:12]}:"


@pytest.fixture(name="adapter")
async def fixture_adapter(redis_url: str, prefix: str) -> AsyncIterator[RedisAdapter]:
    """A `RedisAdapter` on the shared server; afterwards it clears every key under `prefix` and closes."""
    adapter = RedisAdapter.from_url(redis_url)
    yield adapter
    await adapter.clear(prefix)
    await adapter.close()


@pytest.fixture(name="raw")
async def fixture_raw(redis_url: str) -> AsyncIterator[Redis]:
    """A redis-py client on the shared server, for looking behind the adapter."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()
