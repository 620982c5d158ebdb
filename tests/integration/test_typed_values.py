"""Typed values on the real backends: each kind of model round-trips as its own type, whichever tier served it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import struct
import threading
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, NamedTuple, TypedDict

import attrs
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend_pairs import BACKENDS, Pair, backend_config, writer_and_reader
from cachetier import (
    CacheConfig,
    CacheManager,
    CachePatterns,
    DeserializationError,
    JsonCodec,
    SerializationError,
    create_for_testing,
)
from cachetier.framing import decode_frame
from cachetier.integrations.decorators import cache_method
from cachetier.sync import SyncCache
from cachetier.typed import TypedCodec, convert, return_type

pydantic = pytest.importorskip("pydantic")  # in the test extra; skipped only where it cannot be installed


@dataclasses.dataclass(frozen=True)
class PointDC:
    x: int
    y: int
    when: dt.datetime | None = None


class PointStruct(msgspec.Struct, frozen=True, rename="camel"):
    user_id: int
    scores: tuple[int, ...]
    price: Decimal


@attrs.frozen
class PointAttrs:
    x: int
    tags: frozenset[str]


class PointDict(TypedDict):
    x: int
    y: list[int]


class PointTuple(NamedTuple):
    x: int
    y: int


class User(pydantic.BaseModel):  # type: ignore[misc,name-defined]
    id: int
    name: str
    joined: dt.date
    nested: PointDC | None = None


class Account(msgspec.Struct):
    owner: User  # a pydantic model inside a Struct
    balance: Decimal


SAMPLES: list[tuple[Any, Any]] = [
    (PointDC(1, 2, dt.datetime(2024, 5, 1, 12, 30)), PointDC),
    (PointStruct(7, (1, 2, 3), Decimal("9.99")), PointStruct),
    (PointAttrs(1, frozenset({"a", "b"})), PointAttrs),
    (PointDict(x=1, y=[2, 3]), PointDict),
    (PointTuple(1, 2), PointTuple),
    (User(id=1, name="Ann", joined=dt.date(2020, 1, 2), nested=PointDC(3, 4)), User),
    (Account(User(id=2, name="Bo", joined=dt.date(2021, 3, 4)), Decimal("10.5")), Account),
    ([PointDC(1, 2), PointDC(3, 4)], list[PointDC]),
    ({"a": PointTuple(1, 2)}, dict[str, PointTuple]),
]
IDS = ["dataclass", "struct", "attrs", "typeddict", "namedtuple", "pydantic", "pydantic-in-struct", "list", "dict"]


@pytest.fixture(params=BACKENDS)
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[Pair]:
    async with writer_and_reader(backend_config(request, request.param)) as value:
        yield value


@pytest.mark.parametrize(("value", "kind"), SAMPLES, ids=IDS)
async def test_each_kind_of_model_is_stored_and_converts_back_from_l2(pair: Pair, value: Any, kind: Any) -> None:
    await pair.writer.set("model", value)  # pydantic models, Structs, attrs: SerializationError before
    from_l2 = await pair.reader.get("model")
    assert convert(from_l2, kind) == value
    assert type(convert(from_l2, kind)) is type(value)


# -- decorated functions: the return annotation is the type -------------------------------


async def _load_user(user_id: int) -> User:
    return User(id=user_id, name="Ann", joined=dt.date(2020, 1, 2), nested=PointDC(1, 2))


def _decorated(cache: CacheManager, calls: list[int]) -> Any:
    @cache_method(cache=cache, key="user:{user_id}")
    async def get_user(user_id: int) -> User:
        calls.append(user_id)
        return await _load_user(user_id)

    return get_user


async def test_a_decorated_result_reads_back_as_its_annotation_from_the_function_l1_and_l2(pair: Pair) -> None:
    calls: list[int] = []
    in_writer, in_reader = _decorated(pair.writer, calls), _decorated(pair.reader, calls)
    loaded = await in_writer(1)  # from the function
    from_l1 = await in_writer(1)
    from_l2 = await in_reader(1)  # another manager: L2
    expected = await _load_user(1)
    assert loaded == from_l1 == from_l2 == expected
    assert {type(loaded), type(from_l1), type(from_l2)} == {User}
    assert type(from_l2.nested) is PointDC
    assert calls == [1]


@dataclasses.dataclass(frozen=True)
class Profile:
    id: int
    email: str  # a field added after entries were stored without it


async def test_a_cached_result_that_no_longer_fits_its_annotation_is_reloaded(pair: Pair) -> None:
    calls: list[int] = []
    await pair.writer.set("profile:1", {"id": 1})  # stored by the previous release

    @cache_method(cache=pair.writer, key="profile:{profile_id}")
    async def profile(profile_id: int) -> Profile:
        calls.append(profile_id)
        return Profile(profile_id, "a@example.com")

    assert await profile(1) == Profile(1, "a@example.com")
    assert await pair.reader.get("profile:1") == {"id": 1, "email": "a@example.com"}
    assert await profile(1) == Profile(1, "a@example.com")
    assert calls == [1]


async def test_a_function_returning_something_else_than_its_annotation_gets_its_value_back(pair: Pair) -> None:
    @cache_method(cache=pair.writer, key="loose:{n}")
    async def loose(n: int) -> Profile:
        return {"id": n}  # type: ignore[return-value]  # the mistake under test

    assert await loose(1) == {"id": 1}  # passed on as returned, not turned into an error


# -- the codec and the converter on their own ----------------------------------------------


def test_typed_decoding_of_plain_json_equals_decoding_then_converting() -> None:
    codec, typed = JsonCodec(), TypedCodec()
    value = {"x": 1, "y": [2, 3]}
    payload = codec.encode(value)
    assert typed.decode(payload, PointDict) == convert(codec.decode(payload), PointDict) == value
    assert typed.decode(codec.encode([PointTuple(1, 2)]), list[PointTuple]) == [PointTuple(1, 2)]
    with pytest.raises(DeserializationError, match="PointTuple"):
        typed.decode(b'{"x": "one"}', PointTuple)


def test_an_entry_written_before_typed_values_existed_reads_back_typed() -> None:
    # Frame version 1 as the first release wrote it: version, flags, codec id, expiry ms, tags length.
    old = struct.pack(">BBBQH", 1, 0, 1, 4_102_444_800_000, 0) + b'{"x":1,"y":2,"when":null}'
    frame = decode_frame(JsonCodec(), old)
    assert convert(frame.value, PointDC) == PointDC(1, 2)


def test_values_that_do_not_fit_or_types_that_cannot_be_built_raise_cache_errors() -> None:
    with pytest.raises(DeserializationError, match="PointDC"):
        convert({"x": "a", "y": 2}, PointDC)
    with pytest.raises(SerializationError, match="cannot convert"):
        convert({}, threading.Lock)
    with pytest.raises(SerializationError, match="object"):
        JsonCodec().encode(object())


def test_plain_json_annotations_are_not_converted_at_all() -> None:
    async def plain() -> dict[str, list[int]]:
        return {}

    async def untyped():  # type: ignore[no-untyped-def]
        return {}

    assert return_type(plain) is None
    assert return_type(untyped) is None
    assert return_type(_load_user) is User


def test_an_unresolvable_return_annotation_is_logged_and_left_untyped(caplog: pytest.LogCaptureFixture) -> None:
    def later() -> NotDefinedAnywhere:  # type: ignore[name-defined]  # noqa: F821
        raise AssertionError

    with caplog.at_level(logging.WARNING, logger="cachetier"):
        assert return_type(later) is None
    assert "NotDefinedAnywhere" in caplog.text


@dataclasses.dataclass(frozen=True)
class Order:
    id: int
    lines: tuple[PointTuple, ...]
    placed: dt.datetime
    total: Decimal
    note: str | None
    labels: frozenset[str]


_orders = st.builds(
    Order,
    id=st.integers(-(2**53), 2**53),
    lines=st.lists(st.builds(PointTuple, st.integers(-1000, 1000), st.integers(-1000, 1000)), max_size=4).map(tuple),
    placed=st.datetimes(timezones=st.just(dt.UTC)),
    total=st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-(10**9), max_value=10**9),
    note=st.none() | st.text(max_size=20),
    labels=st.frozensets(st.text(max_size=5), max_size=3),
)


@given(order=_orders)
def test_any_order_round_trips_through_the_codec_as_itself(order: Order) -> None:
    codec = JsonCodec()
    assert convert(codec.decode(codec.encode(order)), Order) == order
    assert convert(codec.decode(codec.encode([order])), list[Order]) == [order]


# -- reads with a type, through the manager, the sync facade and the patterns --------------------


async def test_a_value_reads_back_the_same_from_l1_and_l2(pair: Pair) -> None:
    await pair.writer.set("p", PointTuple(1, 2))
    assert await pair.writer.get("p") == await pair.reader.get("p") == [1, 2]  # L1, L2
    assert await pair.writer.get("q", lambda: PointDC(1, 2)) == {"x": 1, "y": 2, "when": None}  # the loader's caller
    assert await pair.writer.get("q") == await pair.reader.get("q") == {"x": 1, "y": 2, "when": None}


async def test_get_with_a_type_gives_that_type_from_every_tier(pair: Pair) -> None:
    user = User(id=1, name="Ann", joined=dt.date(2020, 1, 2))
    assert await pair.writer.get("u", lambda: user, type=User) == user  # loaded
    assert await pair.writer.get("u", type=User) == user  # L1
    assert await pair.reader.get("u", type=User) == user  # L2
    assert await pair.reader.mget(["u"], type=User) == {"u": user}
    await pair.writer.set("stale", {"x": 1})  # an older shape
    assert await pair.writer.get("stale", lambda: PointDC(3, 4), type=PointDC) == PointDC(3, 4)  # reloaded
    assert await pair.reader.get("stale", type=PointDC) == PointDC(3, 4)


async def test_cache_aside_and_read_through_take_a_type(pair: Pair) -> None:
    point = PointStruct(1, (2, 3), Decimal("4.5"))
    async with CachePatterns(pair.writer) as patterns:
        handle = patterns.cache_aside("s", lambda: point, type=PointStruct)
        assert await handle.get() == point
        assert await handle.get() == point
        assert await patterns.read_through("s", lambda: point, type=PointStruct) == point
    assert await pair.reader.cache_aside("s", lambda: point, type=PointStruct).get() == point


def test_the_sync_facade_types_l1_hits_too() -> None:
    with SyncCache(create_for_testing(CacheConfig(adapter="sqlite"))) as cache:
        point = PointDC(1, 2)
        assert cache.get("p", lambda: point, type=PointDC) == point  # loaded
        assert cache.get("p", type=PointDC) == point  # an L1 hit, served in this thread
        assert cache.get("p") == {"x": 1, "y": 2, "when": None}
        assert cache.cache_aside("p", lambda: point, type=PointDC).get() == point
        cache.set("old", {"x": 1})
        assert cache.get("old", lambda: point, type=PointDC) == point  # does not fit: reloaded


class Aliased(pydantic.BaseModel):  # type: ignore[misc,name-defined]
    user_id: int = pydantic.Field(alias="userId")
    tags: set[str] = pydantic.Field(default_factory=set)


def test_a_pydantic_model_with_aliases_is_stored_by_alias_and_validates_back() -> None:
    codec = JsonCodec()
    model = Aliased(userId=7, tags={"a"})
    stored = codec.decode(codec.encode(model))
    assert stored == {"userId": 7, "tags": {"a"}}  # by alias; the codec keeps sets
    assert convert(stored, Aliased) == model
    assert convert(codec.decode(codec.encode([model])), list[Aliased]) == [model]
