"""Fixtures for driving the example apps: the backends they run on, a movable clock, the examples on sys.path.

The examples import their shared modules as top-level `_data` / `_services`
(they are scripts run from `examples/`), so that folder goes on `sys.path`
the way `python examples/starlette_app.py` puts it there.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from example_support import Clock

from cachetier import CacheConfig
from cachetier.integrations.decorators import set_default_cache

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

BACKENDS = ["sqlite", "redis", "postgres"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> tuple[str, CacheConfig]:
    """(adapter name, config) of one backend: the embedded SQLite default, or the real Redis / PostgreSQL."""
    name: str = request.param
    if name == "redis":
        return name, CacheConfig(adapter="redis", redis_url=request.getfixturevalue("redis_url"))
    if name == "postgres":
        return name, CacheConfig(adapter="postgres", database_url=request.getfixturevalue("postgres_dsn"))
    return name, CacheConfig()  # auto, no server configured: create_for_testing uses a temporary SQLite file


@pytest.fixture(autouse=True)
def _forget_default_cache() -> Iterator[None]:
    """The examples point the decorators' default cache at theirs; don't let it outlive the test."""
    yield
    set_default_cache(None)


@pytest.fixture
def clock() -> Clock:
    return Clock()
