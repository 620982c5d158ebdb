"""Shared by the decorator tests (test_decorator*.py): a fresh in-memory `cache` and `Calls`, which counts real calls.

A module imports the fixture as ``from decorator_support import fixture_cache  # noqa: F401``
and its tests request it by name, `cache`; the function carries a ``fixture_`` name so
that a test's parameter does not shadow the import.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from cachetier import CacheManager, create_with_config
from cachetier.adapters.memory import MemoryAdapter


@pytest.fixture(name="cache")
async def fixture_cache() -> AsyncIterator[CacheManager]:
    """A `CacheManager` over a fresh `MemoryAdapter` (namespace ``decorators``), closed afterwards."""
    manager = create_with_config(adapter=MemoryAdapter(), namespace="decorators")
    try:
        yield manager
    finally:
        await manager.close()


class Calls:
    """Records the underlying calls a cached function made."""

    def __init__(self) -> None:
        self.args: list[Any] = []

    def __call__(self, *args: Any) -> None:
        self.args.append(args)

    @property
    def count(self) -> int:
        return len(self.args)
