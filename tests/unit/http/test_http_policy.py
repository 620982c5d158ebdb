from __future__ import annotations

import pytest

from cachetier import ConfigError
from cachetier.integrations.http_cache.headers import format_http_date
from cachetier.integrations.http_cache.policy import (
    Options,
    Use,
    decide,
    invalidated_urls,
    options_from,
    response_policy,
    storable,
    storage_ttl,
)
from cachetier.integrations.http_cache.request import Request
from cachetier.integrations.http_cache.storage import StoredResponse, url_hash

T0 = 1_700_000_000.0
OPTIONS = Options()


def get(*headers: tuple[str, str], method: str = "GET") -> Request:
    return Request(method, "example.test", "/page", "", list(headers))


def can_store(
    cache_control: str | None, *extra: tuple[str, str], request: Request | None = None, status: int = 200
) -> bool:
    headers = [("date", format_http_date(T0)), *extra]
    if cache_control is not None:
        headers.append(("cache-control", cache_control))
    return storable(request or get(), status, headers, T0, OPTIONS)


def test_fresh_responses_are_storable() -> None:
    assert can_store("max-age=60")
    assert can_store(None, ("expires", format_http_date(T0 + 60)))


@pytest.mark.parametrize("cache_control", ["no-store", "private", "max-age=60, no-store", "max-age=60, PRIVATE"])
def test_no_store_and_private_are_never_stored(cache_control: str) -> None:
    assert not can_store(cache_control)


def test_qualified_private_is_stored_without_the_named_fields() -> None:
    assert can_store('max-age=60, private="x-user"')


def test_must_understand_overrides_no_store_for_understood_status() -> None:
    assert can_store("max-age=60, no-store, must-understand")
    assert not can_store("max-age=60, no-store, must-understand", status=299)


def test_set_cookie_is_not_stored_unless_allowed() -> None:
    assert not can_store("max-age=60", ("set-cookie", "a=b"))
    headers = [("cache-control", "max-age=60"), ("set-cookie", "a=b")]
    assert storable(get(), 200, headers, T0, Options(cache_set_cookie=True))


def test_partial_content_304_and_interim_statuses_are_not_stored() -> None:
    for status in (206, 304, 100):
        assert not can_store("max-age=60", status=status)
    assert can_store("max-age=60", status=404)


def test_any_final_status_with_explicit_freshness_is_stored_unless_must_understand_does_not_know_it() -> None:
    for status in (299, 499, 599):
        assert can_store("max-age=60", status=status)
        assert not can_store(None, ("etag", '"v"'), status=status)  # a validator alone is not enough
        assert not can_store("max-age=60, must-understand", status=status)
    assert can_store("max-age=60, must-understand, no-store", status=200)
    assert not can_store("max-age=60, no-store", status=200)


def test_responses_without_freshness_or_validator_are_not_stored() -> None:
    assert not can_store(None)
    assert can_store(None, ("etag", '"v"'))
    assert can_store(None, ("last-modified", format_http_date(T0 - 3600)))


@pytest.mark.parametrize("status", [302, 401, 500])
def test_a_validator_alone_does_not_make_a_status_without_default_caching_storable(status: int) -> None:
    assert not can_store(None, ("etag", '"v"'), status=status)
    assert not can_store("stale-while-revalidate=60", status=status)
    assert can_store("max-age=0", ("etag", '"v"'), status=status)
    assert can_store("public", ("etag", '"v"'), status=status)


def test_vary_star_is_not_stored() -> None:
    assert not can_store("max-age=60", ("vary", "*"))


def test_only_get_is_stored_and_request_no_store_forbids_it() -> None:
    assert not can_store("max-age=60", request=get(method="HEAD"))
    assert not can_store("max-age=60", request=get(("cache-control", "no-store")))


def test_authorized_requests_need_public_s_maxage_or_must_revalidate_when_credentials_are_shared() -> None:
    authorized = get(("authorization", "Bearer x"))
    shared = Options(cache_credentialed=True)
    headers = [("date", format_http_date(T0))]
    assert not storable(authorized, 200, [*headers, ("cache-control", "max-age=60")], T0, shared)
    for allowed in ("max-age=60, public", "s-maxage=60", "max-age=60, must-revalidate"):
        assert storable(authorized, 200, [*headers, ("cache-control", allowed)], T0, shared)


def test_credentialed_requests_store_only_responses_marked_shareable_by_default() -> None:
    with_cookie = get(("cookie", "session=alice"))
    authorized = get(("authorization", "Bearer x"))
    for request in (with_cookie, authorized):
        assert not can_store("max-age=60", request=request)
        assert can_store("max-age=60, public", request=request)
        assert can_store("s-maxage=60", request=request)
    assert can_store("max-age=60", ("vary", "Cookie"), request=with_cookie)
    # Vary: Authorization shares nothing by itself; RFC 9111 3.5 still wants must-revalidate (or public, s-maxage)
    assert not can_store("max-age=60", ("vary", "Authorization"), request=authorized)
    assert not can_store("max-age=60, must-revalidate", request=authorized)
    assert can_store("max-age=60, must-revalidate", ("vary", "Authorization"), request=authorized)
    both = get(("cookie", "a=1"), ("authorization", "Bearer x"))
    assert not can_store("max-age=60, must-revalidate", ("vary", "Authorization"), request=both)


def test_targeted_fields_take_precedence_in_order() -> None:
    headers = [
        ("cache-control", "no-store"),
        ("cdn-cache-control", "max-age=20"),
        ("cachetier-cache-control", "max-age=30"),
    ]
    assert response_policy(headers, OPTIONS).directives == {"max-age": "30"}
    assert response_policy(headers[:2], OPTIONS).directives == {"max-age": "20"}
    assert response_policy([*headers[:2][:1], ("cdn-cache-control", "bad value")], OPTIONS).targeted is False


def entry(cache_control: str, age_at_store: int = 0, **extra: str) -> StoredResponse:
    headers = [("date", format_http_date(T0 - age_at_store)), ("cache-control", cache_control)]
    headers += [(name.replace("_", "-"), value) for name, value in extra.items()]
    return StoredResponse(200, headers, b"body", T0, T0)


def use(stored: StoredResponse | None, elapsed: float, *headers: tuple[str, str]) -> Use:
    return decide(get(*headers), stored, T0 + elapsed, OPTIONS).use


def test_fresh_entry_is_served_until_its_lifetime_then_validated() -> None:
    stored = entry("max-age=60")
    assert use(stored, 59) is Use.FRESH
    assert use(stored, 60) is Use.VALIDATE


def test_no_cache_response_is_always_validated() -> None:
    assert use(entry("max-age=60, no-cache"), 1) is Use.VALIDATE


@pytest.mark.parametrize("request_cc", ["no-cache", "max-age=0", "max-age=5", "min-fresh=55"])
def test_request_directives_force_validation(request_cc: str) -> None:
    assert use(entry("max-age=60"), 10, ("cache-control", request_cc)) is Use.VALIDATE


def test_pragma_no_cache_counts_only_without_cache_control() -> None:
    assert use(entry("max-age=60"), 1, ("pragma", "no-cache")) is Use.VALIDATE
    assert use(entry("max-age=60"), 1, ("pragma", "no-cache"), ("cache-control", "max-stale")) is Use.FRESH


def test_max_stale_allows_stale_within_its_bound() -> None:
    stored = entry("max-age=60")
    assert use(stored, 100, ("cache-control", "max-stale=50")) is Use.STALE
    assert use(stored, 120, ("cache-control", "max-stale=50")) is Use.VALIDATE
    assert use(stored, 10_000, ("cache-control", "max-stale")) is Use.STALE


@pytest.mark.parametrize("directive", ["must-revalidate", "proxy-revalidate", "s-maxage=60"])
def test_revalidation_directives_forbid_max_stale(directive: str) -> None:
    stored = entry(f"max-age=60, {directive}")
    assert use(stored, 100, ("cache-control", "max-stale")) is Use.VALIDATE


def test_stale_while_revalidate_window() -> None:
    stored = entry("max-age=60, stale-while-revalidate=30")
    assert use(stored, 80) is Use.STALE_REVALIDATE
    assert use(stored, 91) is Use.VALIDATE
    assert use(entry("max-age=60, stale-while-revalidate=30, must-revalidate"), 80) is Use.VALIDATE


def test_stale_if_error_window_is_reported_with_validation() -> None:
    stored = entry("max-age=60, stale-if-error=30")
    assert decide(get(), stored, T0 + 80, OPTIONS).stale_if_error
    assert not decide(get(), stored, T0 + 95, OPTIONS).stale_if_error
    requested = decide(get(("cache-control", "stale-if-error=100")), entry("max-age=60"), T0 + 120, OPTIONS)
    assert requested.stale_if_error
    assert not decide(get(), entry("max-age=60, stale-if-error=30, must-revalidate"), T0 + 80, OPTIONS).stale_if_error


@pytest.mark.parametrize("directive", ["must-revalidate", "proxy-revalidate", "no-cache"])
def test_revalidation_directives_forbid_stale_if_error_and_the_configured_default(directive: str) -> None:
    by_default = Options(stale_on_error=300)
    assert decide(get(), entry("max-age=60"), T0 + 80, by_default).stale_if_error
    stored = entry(f"max-age=60, stale-if-error=300, {directive}")
    assert not decide(get(), stored, T0 + 80, OPTIONS).stale_if_error
    assert not decide(get(), stored, T0 + 80, by_default).stale_if_error


def test_credentialed_requests_get_no_stale_stand_in_from_a_page_they_may_not_share() -> None:
    stored = entry("max-age=60, stale-if-error=300")
    assert not decide(get(("cookie", "session=alice")), stored, T0 + 80, OPTIONS).stale_if_error
    shared = entry("public, max-age=60, stale-if-error=300")
    assert decide(get(("cookie", "session=alice")), shared, T0 + 80, OPTIONS).stale_if_error


def test_only_if_cached_without_a_usable_entry_is_a_gateway_timeout() -> None:
    assert use(None, 0, ("cache-control", "only-if-cached")) is Use.GATEWAY_TIMEOUT
    assert use(entry("max-age=60"), 100, ("cache-control", "only-if-cached")) is Use.GATEWAY_TIMEOUT
    assert use(entry("max-age=60"), 10, ("cache-control", "only-if-cached")) is Use.FRESH


def test_authorized_request_is_not_served_a_private_by_default_entry() -> None:
    auth = ("authorization", "Basic eDp5")
    assert use(entry("max-age=60"), 1, auth) is Use.VALIDATE
    assert use(entry("max-age=60, public"), 1, auth) is Use.FRESH


def test_upstream_age_counts_against_freshness() -> None:
    assert use(entry("max-age=60", age_at_store=0, age="50"), 11) is Use.VALIDATE


def test_storage_ttl_keeps_validatable_entries_for_the_retention_period() -> None:
    assert storage_ttl(entry("max-age=60"), T0, OPTIONS) == 60
    assert storage_ttl(entry("max-age=60", etag='"v"'), T0, OPTIONS) == 60 + OPTIONS.stale_retention
    assert storage_ttl(entry("max-age=60, stale-if-error=100"), T0, OPTIONS) == 160
    assert storage_ttl(entry("max-age=60"), T0 + 100, OPTIONS) == 0


def test_unsafe_success_invalidates_the_url_and_same_origin_locations() -> None:
    post = Request("POST", "example.test", "/items/1", "x=1", [])
    headers = [
        ("location", "/items/2"),
        ("content-location", "http://other.test/items/3"),
        ("content-location", "https://example.test/items/4"),
    ]
    assert invalidated_urls(post, 201, headers, OPTIONS) == [
        url_hash("example.test", "/items/1", "x=1"),
        url_hash("example.test", "/items/2", ""),
    ]
    assert invalidated_urls(post, 500, headers, OPTIONS) == []
    assert invalidated_urls(get(), 200, headers, OPTIONS) == []


def test_options_validate_settings() -> None:
    assert options_from({"key_prefix": "pages", "cdn_dialects": ["fastly"]}).prefix == "pages"
    with pytest.raises(ConfigError):
        options_from({"cdn_dialects": ["akamai"]})
    with pytest.raises(ConfigError):
        options_from({"key_prefix": "a:b"})
    assert options_from({"trusted_forwarding_headers": ["X-Forwarded-Proto"]}).trusted_forwarding_headers == {
        "x-forwarded-proto"
    }
    with pytest.raises(ConfigError, match="x-tenant"):
        options_from({"trusted_forwarding_headers": ["x-tenant"]})  # not a forwarding field: Vary is for that
