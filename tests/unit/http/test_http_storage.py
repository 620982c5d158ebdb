from __future__ import annotations

from cachetier import JsonCodec
from cachetier.integrations.http_cache.storage import (
    StoredResponse,
    Variant,
    index_with,
    matches,
    parse_index,
    select,
    url_hash,
    variant_key,
    vary_names,
    vary_values,
)


def test_stored_response_round_trips_through_the_core_json_codec() -> None:
    entry = StoredResponse(200, [("etag", '"x"')], b"\x00\xffbody", 1.5, 2.5, {"accept": "text/html"}, ("t",))
    codec = JsonCodec()
    assert StoredResponse.from_dict(codec.decode(codec.encode(entry.to_dict()))) == entry


def test_malformed_stored_values_are_treated_as_absent() -> None:
    assert StoredResponse.from_dict({"status": 200}) is None
    assert StoredResponse.from_dict("nope") is None


def test_url_hash_keeps_query_order_and_ignores_host_case() -> None:
    assert url_hash("a.test", "/p", "a=1&b=2") != url_hash("a.test", "/p", "b=2&a=1")
    assert url_hash("A.test", "/p", "") == url_hash("a.test", "/p", "")
    assert url_hash("a.test", "/p", "") != url_hash("b.test", "/p", "")
    assert len(url_hash("a.test", "/p", "")) == 32


def test_vary_names_are_lower_case_sorted_and_star_never_matches() -> None:
    assert vary_names([("vary", "Accept-Encoding, accept"), ("vary", "User-Agent")]) == [
        "accept",
        "accept-encoding",
        "user-agent",
    ]
    assert vary_names([("vary", "Accept, *")]) is None
    assert vary_names([]) == []


def test_vary_matching_normalises_whitespace_and_treats_absent_as_a_value() -> None:
    stored = vary_values([("accept-encoding", "gzip,  br")], ["accept-encoding", "accept-language"])
    assert stored == {"accept-encoding": "br,gzip", "accept-language": None}
    assert matches(stored, [("accept-encoding", "gzip , br")])
    assert not matches(stored, [("accept-encoding", "gzip, br"), ("accept-language", "en")])
    assert not matches(stored, [("accept-encoding", "br")])


def test_vary_on_list_valued_accept_fields_ignores_order_case_and_whitespace() -> None:
    stored = vary_values([("accept-language", "en-US,fr;q=0.8")], ["accept-language"])
    assert matches(stored, [("accept-language", "fr; q=0.8 ,  en-us")])
    assert matches(stored, [("accept-language", "fr;q=0.8"), ("accept-language", "EN-us")])
    assert not matches(stored, [("accept-language", "en-US,fr;q=0.9")])
    cookie = vary_values([("cookie", "a=1; b=2")], ["cookie"])
    assert not matches(cookie, [("cookie", "A=1; b=2")])  # other fields keep their case


def test_select_returns_the_newest_matching_variant() -> None:
    old = Variant("old", {}, 10)
    new = Variant("new", {"accept": "a"}, 10)
    index, _ = index_with([old], new, limit=8)
    variants = parse_index(index)
    assert [v.key for v in variants] == ["new", "old"]
    assert select(variants, [("accept", "a")]).key == "new"  # type: ignore[union-attr]
    assert select(variants, [("accept", "b")]).key == "old"  # type: ignore[union-attr]


def test_index_keeps_at_most_limit_variants_and_outlives_them() -> None:
    variants: list[Variant] = []
    for i in range(5):
        index, ttl = index_with(variants, Variant(f"k{i}", {"x": str(i)}, float(i + 1)), limit=3)
        variants = parse_index(index)
    assert [v.key for v in variants] == ["k4", "k3", "k2"]
    assert ttl == 5


def test_variant_keys_depend_on_the_vary_values_only() -> None:
    assert variant_key("p", "u", {"a": "1", "b": None}) == variant_key("p", "u", {"b": None, "a": "1"})
    assert variant_key("p", "u", {"a": "1"}) != variant_key("p", "u", {"a": "2"})


def test_parse_index_drops_malformed_members() -> None:
    assert parse_index({"variants": [{"key": "k"}, {"key": "ok", "vary": {}, "ttl": 3}]}) == [Variant("ok", {}, 3.0)]
    assert parse_index(None) == []
