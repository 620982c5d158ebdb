"""Per-operation DEBUG logging: one record per call, saying where a get was answered."""

from __future__ import annotations

import logging

import pytest

from cachetier import CacheManager, create_with_config
from cachetier.adapters.memory import MemoryAdapter


async def test_debug_logging_says_which_tier_answered_and_how_long_it_took(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="cachetier"):
        async with create_with_config(adapter=MemoryAdapter(), namespace="trace") as cache:
            await cache.get("user:1", lambda: {"name": "Ann"})
            await cache.get("user:1")
            await cache.set("user:2", 2, tags=["users"])
            await cache.invalidate_by_tag("users")
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("cachetier: ")]
    assert any(line.startswith("cachetier: get user:1 loader loaded ") and line.endswith(" ms") for line in lines)
    assert any(line.startswith("cachetier: get user:1 l1 hit ") for line in lines)
    assert any(line.startswith("cachetier: set user:2 ok ") for line in lines)
    assert any(line.startswith("cachetier: invalidate_by_tag users ok ") for line in lines)


async def test_without_debug_the_class_methods_are_used_untouched() -> None:
    logging.getLogger("cachetier").setLevel(logging.INFO)
    try:
        async with create_with_config(adapter=MemoryAdapter(), namespace="trace") as cache:
            assert "get" not in vars(cache)
            assert type(cache).get is CacheManager.get
    finally:
        logging.getLogger("cachetier").setLevel(logging.NOTSET)
