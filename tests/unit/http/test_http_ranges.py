from __future__ import annotations

import pytest

from cachetier.integrations.http_cache.ranges import (
    MAX_RANGES,
    if_range_allows,
    parse_ranges,
    ranged,
    whole_representation,
)

BODY = bytes(range(100))
STORED = [
    ("etag", '"v1"'),
    ("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT"),
    ("date", "Tue, 14 Nov 2023 23:00:00 GMT"),
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes=0-9", [(0, 9)]),
        ("bytes=90-", [(90, 99)]),
        ("bytes=-10", [(90, 99)]),
        ("bytes=-1000", [(0, 99)]),
        ("bytes=95-200", [(95, 99)]),
        ("BYTES = 1-2 , 5-6", [(1, 2), (5, 6)]),
        ("bytes=100-", []),
        ("bytes=-0", []),
        ("bytes=100-200, 50-", [(50, 99)]),
        ("items=0-1", None),
        ("bytes=", None),
        ("bytes=5-1", None),
        ("bytes=a-b", None),
        ("bytes=1", None),
        ("bytes=-", None),
        ("bytes=" + ",".join(["0-0"] * (MAX_RANGES + 1)), None),
    ],
)
def test_range_sets_parse_to_satisfiable_ranges_none_to_ignore_or_empty_for_416(
    value: str, expected: list[tuple[int, int]] | None
) -> None:
    assert parse_ranges(value, len(BODY)) == expected


def test_if_range_needs_a_strong_match() -> None:
    assert if_range_allows(None, STORED)
    assert if_range_allows('"v1"', STORED)
    assert not if_range_allows('"v2"', STORED)
    assert not if_range_allows('W/"v1"', STORED)
    assert not if_range_allows('"v1"', [("etag", 'W/"v1"')])
    assert if_range_allows("Tue, 14 Nov 2023 22:13:20 GMT", STORED)
    assert not if_range_allows("Tue, 14 Nov 2023 22:13:21 GMT", STORED)
    weak_date = [("last-modified", "Tue, 14 Nov 2023 22:13:20 GMT"), ("date", "Tue, 14 Nov 2023 22:13:20 GMT")]
    assert not if_range_allows("Tue, 14 Nov 2023 22:13:20 GMT", weak_date)  # modified within its Date's second


def test_one_range_is_a_206_with_content_range() -> None:
    answer = ranged([("range", "bytes=10-19")], 200, STORED, [("content-type", "text/plain")], BODY)
    assert answer == (
        206,
        [("content-type", "text/plain"), ("content-range", "bytes 10-19/100"), ("content-length", "10")],
        BODY[10:20],
    )


def test_several_ranges_are_multipart_byteranges() -> None:
    answer = ranged([("range", "bytes=0-1,-2")], 200, STORED, [("content-type", "text/plain")], BODY)
    assert answer is not None
    status, headers, body = answer
    content_type = dict(headers)["content-type"]
    boundary = content_type.split("boundary=")[1]
    assert (status, content_type.split(";")[0]) == (206, "multipart/byteranges")
    part = f"--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes %s/100\r\n\r\n"
    first, second, end = (part % "0-1").encode(), (part % "98-99").encode(), f"--{boundary}--\r\n".encode()
    expected = b"".join([first, BODY[:2], b"\r\n", second, BODY[98:], b"\r\n", end])
    assert body == expected
    assert dict(headers)["content-length"] == str(len(expected))


def test_unsatisfiable_ranges_are_416_and_ignored_ones_serve_the_whole_response() -> None:
    answer = ranged([("range", "bytes=500-")], 200, STORED, [("content-type", "text/plain")], BODY)
    assert answer == (416, [("content-range", "bytes */100"), ("content-length", "0")], b"")
    assert ranged([("range", "lines=1-2")], 200, STORED, [], BODY) is None
    assert ranged([("range", "bytes=0-1"), ("if-range", '"old"')], 200, STORED, [], BODY) is None
    assert ranged([("range", "bytes=0-1")], 404, STORED, [], BODY) is None


def test_a_206_equals_a_200_only_when_its_one_range_covers_everything() -> None:
    fields = [("content-type", "text/plain"), ("content-range", "bytes 0-99/100")]
    assert whole_representation(fields) == [("content-type", "text/plain")]
    assert whole_representation(fields, 100) == [("content-type", "text/plain")]
    assert whole_representation(fields, 99) is None
    assert whole_representation([("content-range", "bytes 1-99/100")]) is None
    assert whole_representation([("content-range", "bytes 0-99/*")]) is None
    assert whole_representation([("content-range", "bytes 0-1/2"), ("content-range", "bytes 0-1/2")]) is None
    assert whole_representation([]) is None
