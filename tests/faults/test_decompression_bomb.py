"""A stored zlib bomb is a corrupt entry: inflated no further than `max_inflated_bytes`, then a logged miss.

Before the cap, a 1 MB frame that inflates to 1 GiB blocked the event loop for
7.5 s (and was returned, and kept in L1, as a 1 GiB string); here the bomb
inflates to 64 MiB against a 1 MiB cap, and the memory traced during the read
shows that no more than about the cap was ever inflated.
"""

from __future__ import annotations

import functools
import struct
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hostile_backends import BACKENDS, Backend, open_backend

from cachetier.codecs import JsonCodec
from cachetier.config import CacheConfig
from cachetier.errors import DeserializationError
from cachetier.framing import DEFAULT_MAX_INFLATED_BYTES, FLAG_ZLIB, decode_frame, encode_frame

MIB = 2**20
CAP = MIB
BOMB_INFLATES_TO = 64 * MIB
PEAK_ALLOWED = 4 * CAP  # the inflated prefix, the buffer it grew in, and bookkeeping; the whole bomb is 64x the cap


@functools.lru_cache(maxsize=1)
def bomb_frame() -> bytes:
    """A valid frame (JSON codec, zlib flag) whose payload inflates to a 64 MiB JSON string of spaces."""
    deflate = zlib.compressobj(9)
    chunk = b" " * MIB
    parts = [deflate.compress(b'"')]
    parts += [deflate.compress(chunk) for _ in range(BOMB_INFLATES_TO // MIB)]
    parts += [deflate.compress(b'"'), deflate.flush()]
    header = struct.pack(">BBBQH", 1, FLAG_ZLIB, JsonCodec.codec_id, int((time.time() + 3600) * 1000), 0)
    return header + b"".join(parts)


def traced_peak(run: object) -> int:
    """Peak bytes allocated while `run()` runs."""
    tracemalloc.start()
    try:
        run()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_bomb_is_small_and_would_inflate_64_times_past_the_cap() -> None:
    frame = bomb_frame()
    assert len(frame) < BOMB_INFLATES_TO // 500
    assert len(zlib.decompress(frame[13:])) == BOMB_INFLATES_TO + 2


def test_a_frame_inflating_past_the_cap_is_rejected_after_inflating_at_most_the_cap() -> None:
    frame = bomb_frame()
    errors: list[DeserializationError] = []

    def read() -> None:
        try:
            decode_frame(JsonCodec(), frame, CAP)
        except DeserializationError as exc:
            errors.append(exc)

    peak = traced_peak(read)
    assert len(errors) == 1
    assert "max_inflated_bytes" in str(errors[0])
    assert peak < PEAK_ALLOWED, f"{peak / MIB:.1f} MiB allocated to reject a bomb under a {CAP // MIB} MiB cap"


def test_values_larger_than_the_cap_are_stored_uncompressed_so_the_writer_can_read_them() -> None:
    codec = JsonCodec()
    value = "x" * (2 * CAP)
    data = encode_frame(codec, value, time.time() + 60, (), True, 1024, CAP)
    assert not data[1] & FLAG_ZLIB
    assert decode_frame(codec, data, CAP).value == value
    small = encode_frame(codec, "y" * (CAP // 2), time.time() + 60, (), True, 1024, CAP)
    assert small[1] & FLAG_ZLIB
    assert decode_frame(codec, small, CAP).value == "y" * (CAP // 2)


def test_the_default_cap_is_documented_and_configurable() -> None:
    assert CacheConfig().max_inflated_bytes == DEFAULT_MAX_INFLATED_BYTES == 64 * MIB
    assert CacheConfig.from_env({"CACHE_MAX_INFLATED_BYTES": "1048576"}).max_inflated_bytes == MIB


@pytest.fixture(
    params=[(name, l1) for name in BACKENDS for l1 in (True, False)],
    ids=lambda param: f"{param[0]}-{'l1' if param[1] else 'no l1'}",
)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each backend with L1 on and off: the reads decode frames, or values only, on different paths."""
    name, l1_enabled = request.param
    async for opened in open_backend(name, request, tmp_path, max_inflated_bytes=CAP, l1_enabled=l1_enabled):
        yield opened


@pytest.mark.parametrize("read", ["get", "mget"])
async def test_a_bomb_stored_in_l2_reads_as_a_logged_miss_without_inflating_it(
    backend: Backend, read: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = backend.cache
    full = f"{backend.namespace}:bomb"
    await backend.adapter.set(full, bomb_frame(), 3600, ())
    await cache.set("fine", {"ok": True})
    tracemalloc.start()
    try:
        if read == "mget":
            found = await cache.mget(["bomb", "fine"])
        else:
            found = {"bomb": await cache.get("bomb", default="miss"), "fine": await cache.get("fine")}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found.get("bomb", "miss") == "miss"
    assert found["fine"] == {"ok": True}
    assert peak < PEAK_ALLOWED, f"{peak / MIB:.1f} MiB allocated reading a bomb on {backend.name}"
    assert any("max_inflated_bytes" in record.getMessage() for record in caplog.records)
    stats = await cache.get_stats()
    assert stats.l1.entries == int(cache.config.l1_enabled)  # "fine" only: the bomb never reached L1
    assert stats.l2.errors == 0
    assert await cache.is_healthy()
    await cache.set("after", 1)
    assert await cache.get("after") == 1
