"""The ASGI fast path's shortcuts agree with the full flow: plain-GET keys, and fresh-hit ages."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachetier.integrations.http_cache.asgi_scope import PlainGets, request_of
from cachetier.integrations.http_cache.headers import format_http_date
from cachetier.integrations.http_cache.policy import Options, Use, decide, entry_facts
from cachetier.integrations.http_cache.request import Request
from cachetier.integrations.http_cache.storage import StoredResponse, index_key

T0 = 1_700_000_000.0


def scope_with(headers: list[tuple[bytes, bytes]], **fields: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/café",
        "raw_path": b"/caf%C3%A9",
        "query_string": b"b=2&a=1",
        "headers": headers,
    }
    scope.update(fields)
    return scope


@pytest.mark.parametrize(
    "scope",
    [
        scope_with([(b"host", b"example.test"), (b"accept", b"*/*")]),
        scope_with([(b"Host", b"Example.TEST:8080"), (b"host", b"other.test")]),
        scope_with([(b"host", b"example.test")], query_string=b""),
        scope_with([(b"user-agent", b"wrk"), (b"host", b"example.test")], raw_path=b"/a%2Fb"),
        scope_with([(b"host", b"example.test:443")], scheme="https"),
        scope_with([(b"host", b"example.test"), (b"x-forwarded-proto", b"https")]),
    ],
)
def test_plain_get_keys_are_the_keys_of_the_full_request(scope: dict[str, Any]) -> None:
    trusted = ("x-forwarded-proto",)
    url = request_of(scope).url(trusted)
    assert PlainGets("http", trusted=trusted).keys_of(scope) == (url, index_key("http", url))


def test_the_key_is_the_effective_request_uri() -> None:
    plain = PlainGets("http")
    http = plain.keys_of(scope_with([(b"host", b"example.test")]))
    assert http == plain.keys_of(scope_with([(b"host", b"Example.test:80")]))
    assert http != plain.keys_of(scope_with([(b"host", b"example.test")], scheme="https"))
    assert http != plain.keys_of(scope_with([(b"host", b"example.test:8080")]))
    https = plain.keys_of(scope_with([(b"host", b"example.test")], scheme="https"))
    assert https == plain.keys_of(scope_with([(b"host", b"example.test:443")], scheme="https"))


@pytest.mark.parametrize(
    "scope",
    [
        scope_with([(b"host", b"example.test"), (b"cache-control", b"max-age=0")]),
        scope_with([(b"host", b"example.test"), (b"Cache-Control", b"no-cache")]),
        scope_with([(b"host", b"example.test"), (b"pragma", b"no-cache")]),
        scope_with([(b"host", b"example.test"), (b"Authorization", b"Bearer t")]),
        scope_with([(b"host", b"example.test"), (b"if-none-match", b'"v1"')]),
        scope_with([(b"host", b"example.test"), (b"If-Modified-Since", b"Tue, 14 Nov 2023 22:13:20 GMT")]),
        scope_with([(b"host", b"example.test")], method="HEAD"),
        scope_with([(b"host", b"example.test")], method="POST"),
        scope_with([(b"host", b"example.test")], method="get"),
        scope_with([(b"accept", b"*/*")]),
        scope_with([(b"host", b"example.test")], raw_path=None),
        scope_with([(b"host", b"example.test"), (b"cookie", b"session=alice")]),
        scope_with([(b"host", b"example.test"), (b"range", b"bytes=0-1")]),
        scope_with([(b"host", b"example.test"), (b"x-forwarded-host", b"evil.test")]),
        scope_with([(b"host", b"example.test"), (b"forwarded", b"host=evil.test")]),
    ],
)
def test_requests_asking_the_cache_something_or_lacking_a_host_or_raw_path_are_not_plain(
    scope: dict[str, Any],
) -> None:
    assert PlainGets("http").keys_of(scope) is None


def test_plain_get_memo_is_cleared_when_it_reaches_its_bound() -> None:
    plain = PlainGets("http", max_urls=2)
    first = scope_with([(b"host", b"example.test")], raw_path=b"/1")
    keys = plain.keys_of(first)
    for n in range(2, 6):
        plain.keys_of(scope_with([(b"host", b"example.test")], raw_path=f"/{n}".encode()))
    assert len(plain._keys) <= 2
    assert plain.keys_of(first) == keys


def test_plain_get_memo_does_not_keep_urls_longer_than_its_byte_bound() -> None:
    plain = PlainGets("http", max_url_bytes=64)
    long = scope_with([(b"host", b"example.test")], raw_path=b"/" + b"x" * 100)
    url = request_of(long).url()
    assert plain.keys_of(long) == (url, index_key("http", url))
    assert plain._keys == {}


DIRECTIVES = ["max-age=60", "max-age=0", "s-maxage=30", "no-cache", 'no-cache="set-cookie"', "must-revalidate"]
DIRECTIVES += ["stale-while-revalidate=30", "public", "private", "no-store", "max-age=abc"]


@given(
    directives=st.lists(st.sampled_from(DIRECTIVES), max_size=3),
    date_offset=st.one_of(st.none(), st.integers(-120, 120)),
    age_header=st.one_of(st.none(), st.integers(0, 100).map(str), st.just("junk")),
    expires_offset=st.one_of(st.none(), st.integers(-120, 120)),
    last_modified_ago=st.one_of(st.none(), st.integers(0, 10_000)),
    delay=st.floats(0, 5),
    elapsed=st.floats(-10, 200),
)
def test_fresh_age_is_what_decide_answers_to_a_request_asking_nothing(
    directives: list[str],
    date_offset: int | None,
    age_header: str | None,
    expires_offset: int | None,
    last_modified_ago: int | None,
    delay: float,
    elapsed: float,
) -> None:
    headers = [("cache-control", ", ".join(directives))] if directives else []
    if date_offset is not None:
        headers.append(("date", format_http_date(T0 + date_offset)))
    if age_header is not None:
        headers.append(("age", age_header))
    if expires_offset is not None:
        headers.append(("expires", format_http_date(T0 + expires_offset)))
    if last_modified_ago is not None:
        headers.append(("last-modified", format_http_date(T0 - last_modified_ago)))
    entry = StoredResponse(200, headers, b"x", request_time=T0 - delay, response_time=T0)
    options = Options()
    now = T0 + elapsed
    decision = decide(Request("GET", "example.test", "/", "", [("accept", "*/*")]), entry, now, options)
    age = entry_facts(entry, options).fresh_age(now)
    assert (age is not None) == (decision.use is Use.FRESH)
    if age is not None:
        assert age == decision.age
