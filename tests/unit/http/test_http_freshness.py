from __future__ import annotations

import pytest

from cachetier.integrations.http_cache.directives import parse_cache_control
from cachetier.integrations.http_cache.freshness import (
    Heuristics,
    current_age,
    explicit_lifetime,
    freshness_lifetime,
    heuristic_lifetime,
)
from cachetier.integrations.http_cache.headers import format_http_date, parse_http_date
from cachetier.integrations.http_cache.storage import StoredResponse

T0 = 1_700_000_000.0


def date(offset: float) -> str:
    return format_http_date(T0 + offset)


def lifetime(
    cache_control: str, headers: list[tuple[str, str]] | None = None, *, targeted: bool = False
) -> float | None:
    return explicit_lifetime(parse_cache_control([cache_control]), headers or [], T0, targeted=targeted)


def test_s_maxage_wins_over_max_age_over_expires() -> None:
    expires = [("date", date(0)), ("expires", date(500))]
    assert lifetime("max-age=10, s-maxage=20", expires) == 20
    assert lifetime("max-age=10", expires) == 10
    assert lifetime("", expires) == 500


def test_malformed_max_age_means_stale() -> None:
    assert lifetime("max-age=abc") == 0
    assert lifetime("max-age=-5") == 0


@pytest.mark.parametrize("expires", ["0", "-1", "tomorrow", "Thu, 01 Dec 1994 16:00:00"])
def test_invalid_expires_means_already_stale(expires: str) -> None:
    assert lifetime("", [("expires", expires)]) == 0


def test_expires_without_date_counts_from_receipt() -> None:
    assert lifetime("", [("expires", date(90))]) == 90


def test_expires_in_the_past_is_zero_not_negative() -> None:
    assert lifetime("", [("date", date(0)), ("expires", date(-100))]) == 0


def test_targeted_field_ignores_expires() -> None:
    assert lifetime("", [("expires", date(90))], targeted=True) is None


def test_heuristic_is_a_fraction_of_the_last_modified_age_capped() -> None:
    headers = [("date", date(0)), ("last-modified", date(-1000))]
    assert heuristic_lifetime(200, {}, headers, T0, Heuristics()) == pytest.approx(100)
    assert heuristic_lifetime(200, {}, headers, T0, Heuristics(fraction=0.5, max_lifetime=300)) == 300


def test_heuristic_only_for_heuristically_cacheable_status_or_public() -> None:
    headers = [("date", date(0)), ("last-modified", date(-1000))]
    assert heuristic_lifetime(302, {}, headers, T0, Heuristics()) is None
    assert heuristic_lifetime(302, {"public": None}, headers, T0, Heuristics()) == pytest.approx(100)
    assert heuristic_lifetime(200, {}, [("date", date(0))], T0, Heuristics()) is None


def test_explicit_freshness_takes_precedence_over_heuristics() -> None:
    headers = [("date", date(0)), ("last-modified", date(-100000))]
    assert freshness_lifetime(200, {"max-age": "7"}, headers, T0, Heuristics(), targeted=False) == 7


def entry(headers: list[tuple[str, str]], request_time: float, response_time: float) -> StoredResponse:
    return StoredResponse(200, headers, b"", request_time, response_time)


def test_current_age_is_resident_time_for_a_prompt_dated_response() -> None:
    assert current_age(entry([("date", date(0))], T0, T0), T0 + 30) == 30


def test_current_age_adds_the_upstream_age_and_response_delay() -> None:
    stored = entry([("date", date(0)), ("age", "100")], T0 - 2, T0)
    assert current_age(stored, T0 + 10) == 100 + 2 + 10


def test_current_age_uses_apparent_age_when_the_date_is_older() -> None:
    stored = entry([("date", date(-50))], T0, T0)
    assert current_age(stored, T0 + 1) == 51


def test_date_in_the_future_does_not_make_age_negative() -> None:
    assert current_age(entry([("date", date(500))], T0, T0), T0) == 0


@pytest.mark.parametrize(
    "value", ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"]
)
def test_all_three_http_date_formats_parse(value: str) -> None:
    assert parse_http_date(value) == 784111777


@pytest.mark.parametrize("value", ["", "0", "Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT", None])
def test_invalid_http_dates_are_none(value: str | None) -> None:
    assert parse_http_date(value) is None
