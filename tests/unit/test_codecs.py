from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachetier.codecs import JsonCodec
from cachetier.errors import DeserializationError, SerializationError

codec = JsonCodec()

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False)
)
tagged_scalars = (
    st.datetimes(timezones=st.none() | st.just(dt.UTC))
    | st.dates()
    | st.times()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.binary()
)
values = st.recursive(
    json_scalars | tagged_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)


@given(values)
def test_json_and_tagged_types_round_trip_equal(value: Any) -> None:
    assert codec.decode(codec.encode(value)) == value


@given(st.lists(json_scalars, max_size=5))
def test_plain_json_values_are_encoded_as_plain_json(value: list[Any]) -> None:
    encoded = codec.encode(value)
    assert encoded[:1] != b"\x00"


def test_tuples_come_back_as_lists_and_uuids_as_strings() -> None:
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert codec.decode(codec.encode({"t": (1, 2), "id": ident})) == {"t": [1, 2], "id": str(ident)}


def test_non_finite_floats_become_null_as_documented() -> None:
    assert codec.decode(codec.encode([float("inf"), float("-inf"), float("nan")])) == [None, None, None]


def test_sets_and_frozensets_round_trip() -> None:
    value = {"s": {1, 2}, "f": frozenset({"a"})}
    assert codec.decode(codec.encode(value)) == value


def test_decimal_keeps_its_precision() -> None:
    assert codec.decode(codec.encode(Decimal("1.10"))) == Decimal("1.10")
    assert str(codec.decode(codec.encode(Decimal("1.10")))) == "1.10"


def test_aware_datetime_keeps_its_offset() -> None:
    moment = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert codec.decode(codec.encode(moment)).utcoffset() == dt.timedelta(hours=2)


@pytest.mark.parametrize("value", [object(), {1: "non-str key"}, {"f": lambda: None}, float("nan") * 1j])
def test_unencodable_values_raise_serialization_error(value: Any) -> None:
    with pytest.raises(SerializationError):
        codec.encode(value)


def test_garbage_bytes_raise_deserialization_error() -> None:
    with pytest.raises(DeserializationError):
        codec.decode(b"{not json")


def test_a_corrupt_tagged_value_raises_deserialization_error() -> None:
    with pytest.raises(DeserializationError):
        codec.decode(b'\x00{"__cachetier_type__": "decimal", "v": "not a number"}')
