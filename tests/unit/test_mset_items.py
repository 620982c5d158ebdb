"""`mset_items`: every item shape `mset` accepts, read one way (the seed's entries included)."""

from __future__ import annotations

from typing import Any

import pytest

from cachetier.api_types import mset_items
from cachetier.errors import CacheError, InvalidKeyError


def test_mapping_tuples_and_seed_entries_read_as_key_value_options() -> None:
    assert mset_items({"a": 1}) == [("a", 1, {})]
    items: list[Any] = [
        ("a", 1),
        ("b", 2, {"ttl": 5}),
        {"key": "c", "value": 3, "options": {"ttl": 60, "tags": ["users"]}},
        {"key": "d", "value": None},
    ]
    assert mset_items(items) == [
        ("a", 1, {}),
        ("b", 2, {"ttl": 5}),
        ("c", 3, {"ttl": 60, "tags": ["users"]}),
        ("d", None, {}),
    ]


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ({"key": "a"}, "item 1: expected"),
        ({"key": "a", "value": 1, "ttl": 3}, "ttl"),
        (("a",), "item 1: expected"),
        ("ab", "got str"),
        (("a", 1, {"tll": 3}), "tll"),
        ({"key": "a", "value": 1, "options": ["ttl"]}, "options may hold"),
    ],
)
def test_a_malformed_item_raises_naming_its_position(item: Any, match: str) -> None:
    with pytest.raises(InvalidKeyError, match=match) as info:
        mset_items([("ok", 1), item])
    assert isinstance(info.value, CacheError)
