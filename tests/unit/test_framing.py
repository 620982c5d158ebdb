from __future__ import annotations

import datetime as dt
import struct
import time
import zlib

import pytest

from cachetier.codecs import JsonCodec
from cachetier.errors import DeserializationError, SerializationError
from cachetier.framing import FLAG_ZLIB, decode_frame, decode_frames, decode_values, encode_frame

codec = JsonCodec()


def test_frame_carries_value_expiry_and_tags() -> None:
    expires = time.time() + 60
    frame = decode_frame(codec, encode_frame(codec, {"a": 1}, expires, ("ns:users", "ns:u1"), False, 1024))
    assert frame.value == {"a": 1}
    assert frame.expires_at == pytest.approx(expires, abs=0.001)
    assert frame.tags == ("ns:users", "ns:u1")


def test_large_values_are_compressed_and_decode_the_same() -> None:
    value = "x" * 10_000
    data = encode_frame(codec, value, time.time() + 60, (), True, 1024)
    assert data[1] & FLAG_ZLIB
    assert len(data) < 1000
    assert decode_frame(codec, data).value == value


def test_values_below_threshold_are_not_compressed() -> None:
    data = encode_frame(codec, "x" * 100, time.time() + 60, (), True, 1024)
    assert not data[1] & FLAG_ZLIB


def test_ascii_integers_decode_as_counters_without_expiry() -> None:
    frame = decode_frame(codec, b"-42")
    assert frame.value == -42
    assert frame.expires_at is None


def test_foreign_codec_and_truncated_bytes_are_rejected() -> None:
    data = bytearray(encode_frame(codec, 1, time.time() + 60, (), False, 0))
    data[2] = 99
    with pytest.raises(DeserializationError):
        decode_frame(codec, bytes(data))
    with pytest.raises(DeserializationError):
        decode_frame(codec, b"\x01\x00")


@pytest.mark.parametrize("batched", [False, True], ids=["one by one", "decode_many"])
def test_decode_values_reads_what_decode_frame_reads_and_reports_the_rest(batched: bool) -> None:
    expires = time.time() + 60
    stored: dict[str, bytes | None] = {
        "plain": encode_frame(codec, {"a": 1}, expires, (), False, 1024),
        "tagged": encode_frame(codec, [1, 2], expires, ("ns:t1", "ns:t2"), False, 1024),
        "compressed": encode_frame(codec, "x" * 10_000, expires, ("ns:t",), True, 1024),
        "large": encode_frame(codec, {"big": "y" * 5000}, expires, (), False, 1024),
        "typed": encode_frame(codec, {1, 2}, expires, (), False, 1024),
        "counter": b"7",
        "absent": None,
        "short": b"\x01\x00\x01\x00",
        "foreign": b"\x01\x00\x09" + b"\x00" * 10 + b"1",
        "corrupt": encode_frame(codec, "v", expires, (), False, 1024)[:-1] + b"{",
    }
    errors: list[str] = []
    found = decode_values(
        codec,
        list(stored),
        list(stored.values()),
        view=True,
        decode_many=codec.decode_many if batched else None,
        on_error=lambda key, exc: errors.append(key),
    )
    readable = ("plain", "tagged", "compressed", "large", "typed", "counter")
    assert found == {key: decode_frame(codec, stored[key] or b"").value for key in readable}
    assert errors == ["short", "foreign", "corrupt"]


@pytest.mark.parametrize("batched", [False, True], ids=["one by one", "decode_many"])
@pytest.mark.parametrize("mixed", [False, True], ids=["small plain frames", "every kind"])
def test_decode_frames_reads_what_decode_frame_reads_and_reports_the_rest(batched: bool, mixed: bool) -> None:
    expires = time.time() + 60
    stored: dict[str, bytes | None] = {
        "plain": encode_frame(codec, {"a": 1}, expires, (), False, 1024),
        "tagged": encode_frame(codec, [1, 2], expires, ("ns:t1", "ns:t2"), False, 1024),
        "typed": encode_frame(codec, {1, 2}, expires, ("ns:t",), False, 1024),
        "absent": None,
    }
    if mixed:
        bad_tags = bytearray(encode_frame(codec, 1, expires, ("users",), False, 0))
        bad_tags[13] = 0xFF
        stored |= {
            "compressed": encode_frame(codec, "x" * 10_000, expires, ("ns:t",), True, 1024),
            "large": encode_frame(codec, {"big": "y" * 5000}, expires, (), False, 1024),
            "counter": b"7",
            "short": b"\x01\x00\x01\x00",
            "foreign": b"\x01\x00\x09" + b"\x00" * 10 + b"1",
            "corrupt": encode_frame(codec, "v", expires, (), False, 1024)[:-1] + b"{",
            "bad tags": bytes(bad_tags),
        }
    errors: list[str] = []
    found = decode_frames(
        codec,
        list(stored),
        list(stored.values()),
        decode_many=codec.decode_many if batched else None,
        on_error=lambda key, exc: errors.append(key),
    )
    readable = {"plain", "tagged", "typed", "compressed", "large", "counter"}
    assert found == [decode_frame(codec, data) if key in readable and data else None for key, data in stored.items()]
    assert errors == (["short", "foreign", "corrupt", "bad tags"] if mixed else [])


def test_corrupt_tag_bytes_are_rejected_as_undecodable() -> None:
    data = bytearray(encode_frame(codec, 1, time.time() + 60, ("users",), False, 0))
    data[13] = 0xFF  # the first tag byte: not UTF-8
    with pytest.raises(DeserializationError):
        decode_frame(codec, bytes(data))


def test_decode_many_batch_of_plain_frames_keeps_each_value_with_its_key() -> None:
    expires = time.time() + 60
    values: list[object] = [{"a": 1}, [1, 2], "s", 7, None, {3, 4}, {"when": dt.date(2026, 1, 2)}, 2.5]
    keys = [f"k{i}" for i in range(len(values))] + ["absent"]
    blobs: list[bytes | None] = [encode_frame(codec, value, expires, (), False, 1024) for value in values] + [None]
    errors: list[str] = []
    found = decode_values(
        codec, keys, blobs, decode_many=codec.decode_many, on_error=lambda key, exc: errors.append(key)
    )
    assert found == dict(zip(keys, values, strict=False))
    assert list(found) == keys[:-1]
    assert errors == []


def _frame(payload: bytes, flags: int = 0) -> bytes:
    header = struct.pack(">BBBQH", 1, flags, codec.codec_id, int((time.time() + 60) * 1000), 0)
    return header + payload


def test_truncated_and_oversized_compressed_payloads_are_corrupt_entries() -> None:
    packed = zlib.compress(b'"' + b"a" * 5000 + b'"')
    with pytest.raises(DeserializationError, match="truncated"):
        decode_frame(codec, _frame(packed[:-8], FLAG_ZLIB))
    with pytest.raises(DeserializationError, match="max_inflated_bytes"):
        decode_frame(codec, _frame(packed, FLAG_ZLIB), 4096)
    assert decode_frame(codec, _frame(packed, FLAG_ZLIB), 5002).value == "a" * 5000  # exactly the cap is fine


def test_hostile_payloads_the_codec_chokes_on_are_deserialization_errors() -> None:
    # A tagged payload nested deeper than orjson reads (1,024 levels), and than the interpreter's
    # default recursion limit, which another library in the process may have raised.
    nested = _frame(b"\x00" + b"[" * 5000 + b"]" * 5000)
    with pytest.raises(DeserializationError):
        decode_frame(codec, nested)
    errors: list[str] = []
    found = decode_values(codec, ["deep", "ok"], [nested, _frame(b"1")], on_error=lambda key, exc: errors.append(key))
    assert (found, errors) == ({"ok": 1}, ["deep"])


class _BrokenCodec:
    codec_id = 7

    def encode(self, value: object) -> bytes:
        raise ValueError("cannot")

    def decode(self, data: bytes) -> object:
        raise KeyError("cannot")


def test_a_codec_raising_its_own_errors_still_gives_cache_errors() -> None:
    with pytest.raises(SerializationError):
        encode_frame(_BrokenCodec(), 1, time.time() + 60, (), False, 0)
    frame = bytes((1, 0, 7)) + _frame(b"1")[3:]
    with pytest.raises(DeserializationError):
        decode_frame(_BrokenCodec(), frame)
