"""Reading and writing CDN tag headers (pure string logic)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachetier.errors import ConfigError
from cachetier.integrations.cdn import DIALECTS, parse_tag_header, render_tag_headers


def test_parse_accepts_commas_spaces_and_mixtures() -> None:
    assert parse_tag_header("a,b, c  d,\te") == ["a", "b", "c", "d", "e"]


def test_parse_drops_empty_items_and_keeps_first_seen_order_of_duplicates() -> None:
    assert parse_tag_header(" ,, b a ,b,, a ") == ["b", "a"]
    assert parse_tag_header("") == []
    assert parse_tag_header("  , ,") == []


def test_render_uses_each_dialects_header_and_separator() -> None:
    headers = render_tag_headers(["user:1", "team:2"], ["fastly", "cloudflare", "varnish"])
    assert headers == [
        ("Surrogate-Key", "user:1 team:2"),
        ("Cache-Tag", "user:1,team:2"),
        ("xkey", "user:1 team:2"),
    ]


def test_render_deduplicates_in_order() -> None:
    assert render_tag_headers(["b", "a", "b"], ["cloudflare"]) == [("Cache-Tag", "b,a")]


def test_render_drops_tags_with_separators_control_characters_or_non_ascii() -> None:
    tags = ["ok", "has space", "has,comma", "tab\there", "nul\x00", "caf\u00e9", "fine-2"]
    assert render_tag_headers(tags, ["fastly", "cloudflare"]) == [
        ("Surrogate-Key", "ok fine-2"),
        ("Cache-Tag", "ok,fine-2"),
    ]


def test_render_emits_no_header_when_no_tag_survives() -> None:
    assert render_tag_headers([], ["fastly"]) == []
    assert render_tag_headers(["bad tag"], ["fastly", "varnish"]) == []


def test_render_drops_a_fastly_key_over_1024_bytes_but_keeps_the_rest() -> None:
    long_key = "k" * 1025
    exact_key = "e" * 1024
    assert render_tag_headers(["a", long_key, exact_key, "b"], ["fastly"]) == [
        ("Surrogate-Key", f"a {exact_key} b"),
    ]


def test_render_cuts_fastly_header_at_a_tag_boundary_within_16384_bytes() -> None:
    tags = [f"{i:04d}" + "x" * 995 for i in range(20)]  # 999-byte keys
    ((name, value),) = render_tag_headers(tags, ["fastly"])
    assert name == "Surrogate-Key"
    assert len(value.encode()) <= 16_384
    kept = value.split(" ")
    assert kept == tags[: len(kept)]
    assert len(kept) == 16  # 16 * 999 + 15 separators = 16,000; a 17th would pass 16,384


def test_render_cuts_cloudflare_header_at_16_kb_without_splitting_a_tag() -> None:
    tags = [f"tag-{i:05d}" for i in range(3000)]  # 9 bytes + comma each
    ((_, value),) = render_tag_headers(tags, ["cloudflare"])
    assert len(value) <= 16 * 1024
    kept = value.split(",")
    assert kept == tags[: len(kept)]
    assert len(value) + 1 + len(tags[len(kept)]) > 16 * 1024


def test_render_drops_a_single_tag_longer_than_the_whole_header_limit() -> None:
    assert render_tag_headers(["x" * (16 * 1024 + 1), "small"], ["cloudflare"]) == []


def test_render_rejects_an_unknown_dialect() -> None:
    with pytest.raises(ConfigError, match="akamai"):
        render_tag_headers(["a"], ["akamai"])


def test_render_dialect_names_are_case_insensitive() -> None:
    assert render_tag_headers(["a"], ["Fastly"]) == [("Surrogate-Key", "a")]


_tag = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), min_size=0, max_size=40)


@given(tags=st.lists(_tag, max_size=60), dialect=st.sampled_from(sorted(DIALECTS)))
def test_rendered_header_fits_its_limit_and_parses_back_to_distinct_input_tags(tags: list[str], dialect: str) -> None:
    rendered = render_tag_headers(tags, [dialect])
    limits = DIALECTS[dialect]
    if not rendered:
        return
    ((name, value),) = rendered
    assert name == limits.header
    if limits.max_header_bytes is not None:
        assert len(value.encode()) <= limits.max_header_bytes
    parsed = parse_tag_header(value)
    assert len(parsed) == len(set(parsed))
    assert all(tag in tags for tag in parsed)
