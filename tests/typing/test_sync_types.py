"""Call sites mypy must accept: `SyncCache.get` gives back the loader's type, the `type=` class, or the default's.

Checked by `mypy tests/typing`; the function below is never called.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, assert_type

from cachetier.sync import SyncCache


@dataclass
class Item:
    name: str


def load_item() -> Item:
    return Item("x")


def call_sites(cache: SyncCache) -> None:
    assert_type(cache.get("k"), Any | None)
    assert_type(cache.get("k", default=0), Any | int)
    assert_type(cache.get("k", load_item), Item)
    assert_type(cache.get("k", lambda: 3, ttl=60, tags=["t"]), int)
    assert_type(cache.get("k", type=Item), Item | None)
    assert_type(cache.get("k", lambda: {"name": "x"}, type=Item, namespace="n"), Item)
