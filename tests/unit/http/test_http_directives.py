from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachetier.integrations.http_cache.directives import (
    DELTA_MAX,
    delta_seconds,
    field_names,
    parse_cache_control,
    parse_targeted,
)


def test_cache_control_parses_names_case_insensitively_and_arguments() -> None:
    assert parse_cache_control(["Max-Age=60, PUBLIC, s-maxage=10"]) == {
        "max-age": "60",
        "public": None,
        "s-maxage": "10",
    }


def test_cache_control_joins_multiple_field_lines() -> None:
    assert parse_cache_control(["max-age=5", "no-cache"]) == {"max-age": "5", "no-cache": None}


def test_quoted_string_keeps_commas_and_escapes() -> None:
    parsed = parse_cache_control(['private="Set-Cookie, X-Foo", no-cache="a\\"b", max-age=3'])
    assert parsed == {"private": "Set-Cookie, X-Foo", "no-cache": 'a"b', "max-age": "3"}


def test_quoted_delta_seconds_is_accepted() -> None:
    assert delta_seconds(parse_cache_control(['max-age="60"'])["max-age"]) == 60


def test_first_occurrence_of_a_repeated_directive_wins() -> None:
    assert parse_cache_control(["max-age=10, max-age=20"])["max-age"] == "10"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (",,max-age=1,,", {"max-age": "1"}),
        ("max-age=, public", {"max-age": "", "public": None}),
        ("@@@, public", {"public": None}),
        ("max-age=1 2, public", {"max-age": "1", "public": None}),
        ("", {}),
        ('no-cache="unterminated', {"no-cache": "unterminated"}),
    ],
)
def test_malformed_members_do_not_spoil_their_neighbours(value: str, expected: dict[str, str | None]) -> None:
    assert parse_cache_control([value]) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("60", 60),
        ("-1", None),
        ("1.5", None),
        ("abc", None),
        ("", None),
        (None, None),
        ("99999999999", DELTA_MAX),
    ],
)
def test_delta_seconds(value: str | None, expected: int | None) -> None:
    assert delta_seconds(value) == expected


def test_targeted_field_is_a_structured_dictionary() -> None:
    assert parse_targeted("max-age=60, no-store, private;foo=bar") == {
        "max-age": "60",
        "no-store": None,
        "private": None,
    }


@pytest.mark.parametrize("value", ["max-age=60,", "Max-Age=60", "max-age=60 public", "", "=5", 'a="x'])
def test_invalid_targeted_field_is_ignored_whole(value: str) -> None:
    assert parse_targeted(value) is None


def test_targeted_field_drops_values_of_the_wrong_type_and_false_booleans() -> None:
    assert parse_targeted('max-age="60", s-maxage=1.5, no-store=?0, public=?1') == {"public": None}


def test_field_names_of_qualified_directives() -> None:
    assert field_names("Set-Cookie, X-Private ") == ["set-cookie", "x-private"]
    assert field_names(None) == []


@settings(deadline=None)
@given(st.lists(st.text(max_size=60), max_size=3))
def test_cache_control_parsing_never_raises_and_yields_lower_case_names(values: list[str]) -> None:
    parsed = parse_cache_control(values)
    assert all(name == name.lower() and name for name in parsed)


@settings(deadline=None)  # a per-example deadline measures the machine's load, not the parser
@given(st.text(max_size=80))
def test_targeted_parsing_never_raises(value: str) -> None:
    parsed = parse_targeted(value)
    assert parsed is None or all(isinstance(name, str) for name in parsed)


@given(st.dictionaries(st.sampled_from(["max-age", "s-maxage", "no-cache", "public", "x-ext"]), st.integers(0, 10**6)))
def test_rendered_directives_parse_back(directives: dict[str, int]) -> None:
    rendered = ", ".join(f"{name}={value}" for name, value in directives.items())
    assert parse_cache_control([rendered]) == {name: str(value) for name, value in directives.items()}
    assert (parse_targeted(rendered) or {}) == {name: str(value) for name, value in directives.items()}
