from __future__ import annotations

import pytest

from cachetier.integrations.http_cache.conditional import entity_tags, not_modified, validating_headers, weak_match
from cachetier.integrations.http_cache.headers import format_http_date
from cachetier.integrations.http_cache.storage import StoredResponse

T0 = 1_700_000_000.0
STORED = [("etag", '"abc"'), ("last-modified", format_http_date(T0 - 100)), ("date", format_http_date(T0))]


def test_entity_tag_lists_parse_with_weakness_and_bare_tokens() -> None:
    assert entity_tags('"a", W/"b" ,bare, w/"c", "d,e"') == ['"a"', '"b"', '"bare"', '"c"', '"d,e"']


@pytest.mark.parametrize(
    ("etag", "candidates", "expected"),
    [
        ('"1"', ['"1"'], True),
        ('W/"1"', ['"1"'], True),
        ('"1"', ['"2"'], False),
        ('W/"1"', ['"2"', '"1"'], True),
        ("1", ['"1"'], True),
    ],
)
def test_weak_comparison(etag: str, candidates: list[str], expected: bool) -> None:
    assert weak_match(etag, candidates) is expected


@pytest.mark.parametrize(
    ("if_none_match", "expected"),
    [('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True), ("*", True), ('"x"', False), ('"abc', False)],
)
def test_if_none_match(if_none_match: str, expected: bool) -> None:
    assert not_modified("GET", [("if-none-match", if_none_match)], 200, STORED, T0) is expected


def test_weak_stored_etag_matches_strong_request_tag() -> None:
    assert not_modified("GET", [("if-none-match", '"abc"')], 200, [("etag", 'W/"abc"')], T0)


def test_if_modified_since_compares_with_last_modified() -> None:
    assert not_modified("GET", [("if-modified-since", format_http_date(T0 - 100))], 200, STORED, T0)
    assert not not_modified("GET", [("if-modified-since", format_http_date(T0 - 101))], 200, STORED, T0)


def test_if_modified_since_falls_back_to_date_then_receipt() -> None:
    dated = [("date", format_http_date(T0))]
    assert not_modified("HEAD", [("if-modified-since", format_http_date(T0))], 200, dated, T0)
    assert not not_modified("GET", [("if-modified-since", format_http_date(T0 - 1))], 200, [], T0)


def test_if_none_match_takes_precedence_over_if_modified_since() -> None:
    headers = [("if-none-match", '"other"'), ("if-modified-since", format_http_date(T0))]
    assert not not_modified("GET", headers, 200, STORED, T0)


def test_invalid_if_modified_since_is_ignored() -> None:
    assert not not_modified("GET", [("if-modified-since", "yesterday")], 200, STORED, T0)


def test_only_200_responses_to_get_or_head_become_304() -> None:
    assert not not_modified("GET", [("if-none-match", "*")], 404, STORED, T0)
    assert not not_modified("POST", [("if-none-match", "*")], 200, STORED, T0)


def test_validating_headers_replace_the_clients_validators_with_the_stored_ones() -> None:
    entry = StoredResponse(200, STORED, b"", T0, T0)
    sent = validating_headers([("if-none-match", '"client"'), ("accept", "x")], entry)
    assert ("if-none-match", '"abc"') in sent
    assert ("if-modified-since", format_http_date(T0 - 100)) in sent
    assert ("if-none-match", '"client"') not in sent
    assert validating_headers([("if-none-match", '"client"')], None) == []
