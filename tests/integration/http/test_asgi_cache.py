"""The ASGI middleware against a scriptable raw ASGI origin (RFC 9111 behaviour as a client sees it)."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest
from http_origin import T0, Clock, Origin, replying

from cachetier import CacheManager
from cachetier.integrations.asgi import CacheMiddleware
from cachetier.integrations.http_cache.headers import format_http_date


async def test_miss_then_hit_serves_the_identical_body_with_an_age(
    client: httpx.AsyncClient, origin: Origin, clock: Clock
) -> None:
    first = await client.get("/page")
    clock.advance(7)
    second = await client.get("/page")
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.content == first.content == b"hello"
    assert second.headers["age"] == "7"
    assert second.headers["etag"] == first.headers["etag"]
    assert origin.calls == 1


@pytest.mark.parametrize(
    "headers",
    [
        [("cache-control", "no-store, max-age=60")],
        [("cache-control", "private, max-age=60")],
        [("cache-control", "max-age=60"), ("set-cookie", "session=1")],
        [("cache-control", "max-age=60"), ("vary", "*")],
    ],
)
async def test_uncacheable_responses_are_never_served_from_cache(
    client: httpx.AsyncClient, origin: Origin, headers: list[tuple[str, str]]
) -> None:
    origin.reply = replying(200, headers, b"x")
    responses = [await client.get("/page") for _ in range(2)]
    assert origin.calls == 2
    assert [r.headers["x-cache"] for r in responses] == ["BYPASS", "BYPASS"]  # neither stored nor served


async def test_set_cookie_responses_are_cached_when_allowed(make_client: Any, origin: Origin) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=60"), ("set-cookie", "a=b")], b"x")
    client, _ = make_client(cache_set_cookie=True)
    async with client:
        await client.get("/page")
        client.cookies.clear()  # a request with the cookie is not served a shared page (cache_credentialed=False)
        assert (await client.get("/page")).headers["x-cache"] == "HIT"


async def test_authorized_requests_bypass_the_cache(client: httpx.AsyncClient, origin: Origin) -> None:
    await client.get("/page")
    authorized = await client.get("/page", headers={"Authorization": "Bearer t"})
    assert authorized.headers["x-cache"] == "BYPASS"
    assert (await client.get("/page", headers={"Authorization": "Bearer t"})).headers["x-cache"] == "BYPASS"
    assert origin.calls == 3


@pytest.mark.parametrize("directive", ["public, max-age=60", "s-maxage=60"])
async def test_authorized_requests_use_public_or_s_maxage_responses(
    client: httpx.AsyncClient, origin: Origin, directive: str
) -> None:
    origin.reply = replying(200, [("cache-control", directive)], b"shared")
    await client.get("/page", headers={"Authorization": "Bearer t"})
    hit = await client.get("/page", headers={"Authorization": "Bearer other"})
    assert hit.headers["x-cache"] == "HIT"
    assert origin.calls == 1


@pytest.mark.parametrize("if_none_match", ["{etag}", "W/{etag}", '"nope", {etag}', "*"])
async def test_if_none_match_is_answered_with_304_from_storage(
    client: httpx.AsyncClient, origin: Origin, if_none_match: str
) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=60"), ("etag", '"v1"'), ("x-other", "1")], b"body")
    await client.get("/page")
    response = await client.get("/page", headers={"If-None-Match": if_none_match.format(etag='"v1"')})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == '"v1"'
    assert response.headers["cache-control"] == "max-age=60"
    assert "age" in response.headers
    assert "x-other" not in response.headers
    assert origin.calls == 1


async def test_non_matching_if_none_match_gets_the_full_response(client: httpx.AsyncClient) -> None:
    await client.get("/page")
    response = await client.get("/page", headers={"If-None-Match": '"other"'})
    assert (response.status_code, response.content) == (200, b"hello")


async def test_if_modified_since_is_answered_with_304(client: httpx.AsyncClient, origin: Origin) -> None:
    modified = format_http_date(T0 - 3600)
    origin.reply = replying(200, [("cache-control", "max-age=60"), ("last-modified", modified)], b"body")
    await client.get("/page")
    assert (await client.get("/page", headers={"If-Modified-Since": modified})).status_code == 304
    earlier = format_http_date(T0 - 7200)
    assert (await client.get("/page", headers={"If-Modified-Since": earlier})).status_code == 200


async def test_client_validators_on_a_miss_are_not_forwarded_but_evaluated(
    client: httpx.AsyncClient, origin: Origin
) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=60"), ("etag", '"v1"')], b"body")
    response = await client.get("/page", headers={"If-None-Match": '"v1"'})
    assert response.status_code == 304
    assert "if-none-match" not in origin.seen[0][2]
    assert (await client.get("/page")).content == b"body"


async def test_vary_keeps_separate_variants(client: httpx.AsyncClient, origin: Origin) -> None:
    origin.reply = lambda method, path, headers: (
        200,
        [("cache-control", "max-age=60"), ("vary", "Accept-Language")],
        [headers.get("accept-language", "none").encode()],
    )
    en = await client.get("/page", headers={"Accept-Language": "en"})
    fr = await client.get("/page", headers={"Accept-Language": "fr"})
    en_again = await client.get("/page", headers={"Accept-Language": "en"})
    fr_again = await client.get("/page", headers={"Accept-Language": "fr"})
    none = await client.get("/page")
    assert [r.content for r in (en, fr, en_again, fr_again, none)] == [b"en", b"fr", b"en", b"fr", b"none"]
    assert [r.headers["x-cache"] for r in (en_again, fr_again, none)] == ["HIT", "HIT", "MISS"]
    assert origin.calls == 3


async def test_post_invalidates_the_url_and_its_location(client: httpx.AsyncClient, origin: Origin) -> None:
    def reply(method: str, path: str, headers: dict[str, str]) -> Any:
        if method == "POST":
            return 201, [("location", "/items/2")], [b"created"]
        return 200, [("cache-control", "max-age=60")], [path.encode()]

    origin.reply = reply
    for path in ("/items", "/items/2", "/other"):
        await client.get(path)
    posted = await client.post("/items", content=b"{}")
    assert posted.headers["x-cache"] == "BYPASS"
    after = {path: (await client.get(path)).headers["x-cache"] for path in ("/items", "/items/2", "/other")}
    assert after == {"/items": "MISS", "/items/2": "MISS", "/other": "HIT"}


async def test_failed_unsafe_request_does_not_invalidate(client: httpx.AsyncClient, origin: Origin) -> None:
    await client.get("/items")
    origin.reply = replying(500, [], b"boom")
    await client.delete("/items")
    origin.reply = replying(200, [("cache-control", "max-age=60")], b"new")
    assert (await client.get("/items")).headers["x-cache"] == "HIT"


async def test_expired_entry_is_revalidated_and_a_304_serves_the_stored_body_with_updated_headers(
    client: httpx.AsyncClient, origin: Origin, clock: Clock
) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=10"), ("etag", '"v1"'), ("x-version", "1")], b"stored")
    await client.get("/page")
    clock.advance(30)
    origin.reply = replying(304, [("cache-control", "max-age=100"), ("etag", '"v1"'), ("x-version", "2")])
    revalidated = await client.get("/page")
    assert origin.seen[-1][2]["if-none-match"] == '"v1"'
    assert revalidated.status_code == 200
    assert revalidated.content == b"stored"
    assert revalidated.headers["x-cache"] == "REVALIDATED"
    assert revalidated.headers["x-version"] == "2"
    assert revalidated.headers["age"] == "0"
    clock.advance(50)
    again = await client.get("/page")
    assert (again.headers["x-cache"], again.headers["x-version"], again.content) == ("HIT", "2", b"stored")
    assert origin.calls == 2


async def test_expired_entry_replaced_by_a_new_200(client: httpx.AsyncClient, origin: Origin, clock: Clock) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=10"), ("etag", '"v1"')], b"old")
    await client.get("/page")
    clock.advance(30)
    origin.reply = replying(200, [("cache-control", "max-age=10"), ("etag", '"v2"')], b"new")
    assert (await client.get("/page")).content == b"new"
    assert (await client.get("/page")).headers["x-cache"] == "HIT"


async def test_no_cache_response_is_stored_but_validated_every_time(client: httpx.AsyncClient, origin: Origin) -> None:
    origin.reply = replying(200, [("cache-control", "no-cache"), ("etag", '"v1"')], b"body")
    await client.get("/page")
    origin.reply = replying(304, [("etag", '"v1"')])
    second = await client.get("/page")
    assert (second.headers["x-cache"], second.content) == ("REVALIDATED", b"body")
    assert origin.calls == 2


async def test_request_no_cache_revalidates(client: httpx.AsyncClient, origin: Origin) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=60"), ("etag", '"v1"')], b"body")
    await client.get("/page")
    origin.reply = replying(304, [("etag", '"v1"')])
    response = await client.get("/page", headers={"Cache-Control": "no-cache"})
    assert response.headers["x-cache"] == "REVALIDATED"
    assert origin.calls == 2


async def test_request_max_stale_and_only_if_cached(client: httpx.AsyncClient, origin: Origin, clock: Clock) -> None:
    empty = await client.get("/page", headers={"Cache-Control": "only-if-cached"})
    assert empty.status_code == 504
    assert origin.calls == 0
    await client.get("/page")
    clock.advance(100)
    stale = await client.get("/page", headers={"Cache-Control": "max-stale=60"})
    assert (stale.headers["x-cache"], stale.content) == ("STALE", b"hello")
    assert (await client.get("/page", headers={"Cache-Control": "only-if-cached"})).status_code == 504
    assert origin.calls == 1


async def test_stale_while_revalidate_serves_stale_and_refreshes_in_background(
    make_client: Any, origin: Origin, clock: Clock
) -> None:
    client, middleware = make_client()
    origin.reply = replying(200, [("cache-control", "max-age=10, stale-while-revalidate=60")], b"v1")
    async with client:
        await client.get("/page")
        clock.advance(30)
        origin.reply = replying(200, [("cache-control", "max-age=10, stale-while-revalidate=60")], b"v2")
        stale = await client.get("/page")
        assert (stale.headers["x-cache"], stale.content) == ("STALE", b"v1")
        await middleware.wait_background()
        fresh = await client.get("/page")
        assert (fresh.headers["x-cache"], fresh.content) == ("HIT", b"v2")
        assert origin.calls == 2


async def test_stale_if_error_serves_stale_on_5xx_and_on_exceptions(
    client: httpx.AsyncClient, origin: Origin, clock: Clock
) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=10, stale-if-error=60")], b"good")
    await client.get("/page")
    clock.advance(30)
    origin.reply = replying(503, [], b"down")
    on_5xx = await client.get("/page")
    assert (on_5xx.status_code, on_5xx.content, on_5xx.headers["x-cache"]) == (200, b"good", "STALE")
    origin.error = RuntimeError("app crashed")
    on_error = await client.get("/page")
    assert (on_error.status_code, on_error.content) == (200, b"good")
    clock.advance(100)
    with pytest.raises(RuntimeError, match="app crashed"):
        await client.get("/page")


async def test_app_errors_pass_through_untouched(client: httpx.AsyncClient, origin: Origin) -> None:
    origin.error = ValueError("bug")
    with pytest.raises(ValueError, match="bug"):
        await client.get("/page")
    with pytest.raises(ValueError, match="bug"):
        await client.post("/page")


async def test_tag_purge_makes_the_next_request_miss(
    client: httpx.AsyncClient, origin: Origin, cache: CacheManager
) -> None:
    origin.reply = lambda method, path, headers: (
        200,
        [("cache-control", "max-age=60"), ("cache-tag", f"user:123,{path.strip('/')}")],
        [b"page"],
    )
    first = await client.get("/a")
    await client.get("/b")
    assert "cache-tag" not in first.headers
    assert (await client.get("/a")).headers["x-cache"] == "HIT"
    assert await cache.invalidate_by_tag("user:123") >= 2
    assert (await client.get("/a")).headers["x-cache"] == "MISS"
    assert (await client.get("/b")).headers["x-cache"] == "MISS"


async def test_surrogate_key_and_xkey_tags_and_cdn_dialects(
    make_client: Any, origin: Origin, cache: CacheManager
) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=60"), ("surrogate-key", "a b"), ("xkey", "c")], b"x")
    client, _ = make_client(cdn_dialects=["fastly"])
    async with client:
        response = await client.get("/page")
        assert set(response.headers["surrogate-key"].split()) == {"a", "b", "c"}
        assert "xkey" not in response.headers
        hit = await client.get("/page")
        assert set(hit.headers["surrogate-key"].split()) == {"a", "b", "c"}
        await cache.invalidate_by_tag("c")
        assert (await client.get("/page")).headers["x-cache"] == "MISS"


async def test_targeted_fields_take_precedence_over_cache_control(client: httpx.AsyncClient, origin: Origin) -> None:
    origin.reply = replying(
        200,
        [("cache-control", "no-store"), ("cdn-cache-control", "no-store"), ("cachetier-cache-control", "max-age=60")],
        b"x",
    )
    response = await client.get("/page")
    assert "cachetier-cache-control" not in response.headers
    assert response.headers["cdn-cache-control"] == "no-store"
    assert (await client.get("/page")).headers["x-cache"] == "HIT"


async def test_cdn_cache_control_applies_when_ours_is_absent(client: httpx.AsyncClient, origin: Origin) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=60"), ("cdn-cache-control", "no-store")], b"x")
    await client.get("/page")
    assert (await client.get("/page")).headers["x-cache"] == "BYPASS"


async def test_streaming_over_max_body_size_passes_through_unstored(make_client: Any, origin: Origin) -> None:
    chunks = [b"a" * 400, b"b" * 400, b"c" * 400]
    origin.reply = replying(200, [("cache-control", "max-age=60")], *chunks)
    client, _ = make_client(max_body_size=1000)
    async with client:
        first = await client.get("/big")
        assert first.content == b"".join(chunks)
        assert first.headers["x-cache"] == "BYPASS"
        assert "etag" not in first.headers
        assert (await client.get("/big")).headers["x-cache"] == "BYPASS"
        small = replying(200, [("cache-control", "max-age=60")], b"a" * 500, b"b" * 500)
        origin.reply = small
        await client.get("/small")
        assert (await client.get("/small")).headers["x-cache"] == "HIT"


async def test_concurrent_misses_run_the_app_once(client: httpx.AsyncClient, origin: Origin) -> None:
    origin.delay = 0.05
    responses = await asyncio.gather(*(client.get("/page") for _ in range(10)))
    assert origin.calls == 1
    assert {r.content for r in responses} == {b"hello"}
    assert sorted(r.headers["x-cache"] for r in responses) == ["HIT"] * 9 + ["MISS"]


async def test_followers_run_the_app_themselves_when_the_leaders_response_is_uncacheable(
    client: httpx.AsyncClient, origin: Origin
) -> None:
    origin.delay = 0.05
    origin.reply = replying(200, [("cache-control", "no-store")], b"x")
    await asyncio.gather(*(client.get("/page") for _ in range(4)))
    assert origin.calls == 4


async def test_head_is_served_from_a_stored_get(client: httpx.AsyncClient, origin: Origin) -> None:
    await client.get("/page")
    head = await client.head("/page")
    assert (head.headers["x-cache"], head.content, head.headers["content-length"]) == ("HIT", b"", "5")
    assert origin.calls == 1


async def test_generated_etags_are_deterministic_and_never_override_the_apps(make_client: Any, origin: Origin) -> None:
    client, _ = make_client()
    async with client:
        generated = (await client.get("/a")).headers["etag"]
        assert generated == (await client.get("/b")).headers["etag"] == '"9555e8555c62dcfd"'
        origin.reply = replying(200, [("cache-control", "max-age=60"), ("etag", 'W/"app"')], b"hello")
        assert (await client.get("/c")).headers["etag"] == 'W/"app"'
    client, _ = make_client(generate_etags=False, key_prefix="other")
    origin.reply = replying(200, [("cache-control", "max-age=60")], b"hello")
    async with client:
        assert "etag" not in (await client.get("/d")).headers


async def test_key_includes_host_and_query_as_sent(client: httpx.AsyncClient, origin: Origin) -> None:
    await client.get("/page?a=1&b=2")
    assert (await client.get("/page?a=1&b=2")).headers["x-cache"] == "HIT"
    assert (await client.get("/page?b=2&a=1")).headers["x-cache"] == "MISS"
    assert (await client.get("http://other.test/page?a=1&b=2")).headers["x-cache"] == "MISS"


async def test_age_from_upstream_counts(client: httpx.AsyncClient, origin: Origin, clock: Clock) -> None:
    origin.reply = replying(200, [("cache-control", "max-age=60"), ("age", "50")], b"x")
    assert (await client.get("/page")).headers["age"] == "50"
    clock.advance(5)
    assert (await client.get("/page")).headers["age"] == "55"
    clock.advance(6)
    assert (await client.get("/page")).headers["x-cache"] == "MISS"


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
async def test_non_http_scopes_pass_straight_through(cache: CacheManager, scope_type: str) -> None:
    seen: list[MutableMapping[str, Any]] = []

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)

    async def receive() -> dict[str, Any]:
        return {}

    async def send(message: Any) -> None:
        return None

    scope = {"type": scope_type}
    await CacheMiddleware(app, cache=cache)(scope, receive, send)
    assert seen == [scope]
