"""The Starlette and FastAPI examples over HTTP (httpx's ASGITransport), on SQLite, Redis and PostgreSQL.

Each test builds the example with `create_app(cache)` around an isolated
`create_for_testing` cache and asserts what a client sees: `X-Cache`,
bodies, status codes, and how often the app itself had to render (its
`/stats` page).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from _data import Database
from example_support import Clock, lifespan, renders

from cachetier import CacheConfig, CacheManager, create_for_testing

TOKEN = "e2e-purge-token"


@dataclass
class Site:
    client: httpx.AsyncClient
    app: Any
    cache: CacheManager
    db: Database
    clock: Clock


@pytest.fixture(params=["starlette_app", "fastapi_app"])
async def site(request: pytest.FixtureRequest, backend: tuple[str, CacheConfig], clock: Clock) -> AsyncIterator[Site]:
    module = importlib.import_module(request.param)
    cache = create_for_testing(backend[1])
    db = Database(delay=0.001)
    app = module.create_app(cache, db=db, purge_token=TOKEN, clock=clock)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client:
            yield Site(client, app, cache, db, clock)
    finally:
        await cache.close()


async def test_second_request_is_a_hit_with_the_same_body(site: Site) -> None:
    first = await site.client.get("/users/1")
    second = await site.client.get("/users/1")
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.content == first.content
    assert first.json() == {"id": 1, "name": "Ada", "email": "ada@example.com"}
    assert "cache-tag" not in second.headers  # tags are for the cache, stripped from responses
    assert await renders(site.client, "/users/1") == 1


async def test_purge_endpoint_needs_the_token_and_its_tag_purge_makes_the_next_request_miss(site: Site) -> None:
    await site.client.get("/users/1")
    await site.client.get("/posts")
    assert (await site.client.post("/_cache/purge", json={"tags": ["users"]})).status_code == 401
    wrong = await site.client.post("/_cache/purge", json={"tags": ["users"]}, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 403
    assert (await site.client.get("/users/1")).headers["x-cache"] == "HIT"

    purged = await site.client.post(
        "/_cache/purge", json={"tags": ["users"]}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert purged.status_code == 200
    assert purged.json()["purged"] >= 1
    assert (await site.client.get("/users/1")).headers["x-cache"] == "MISS"
    assert (await site.client.get("/posts")).headers["x-cache"] == "HIT"  # other tags untouched


async def test_invalidate_by_tag_from_code_makes_the_next_request_miss(site: Site) -> None:
    await site.client.get("/posts/1")
    assert (await site.client.get("/posts/1")).headers["x-cache"] == "HIT"
    await site.cache.invalidate_by_tag("post:1")
    assert (await site.client.get("/posts/1")).headers["x-cache"] == "MISS"


async def test_put_invalidates_the_user_page_the_list_and_the_service_cache(site: Site) -> None:
    await site.client.get("/users/1")
    await site.client.get("/users")
    await site.client.get("/users/2")
    updated = await site.client.put("/users/1", json={"name": "Ada L."})
    assert updated.status_code == 200

    page = await site.client.get("/users/1")
    assert (page.headers["x-cache"], page.json()["name"]) == ("MISS", "Ada L.")
    listing = await site.client.get("/users")
    assert listing.headers["x-cache"] == "MISS"
    assert [user["name"] for user in listing.json()["users"]] == ["Ada L.", "Grace"]
    assert (await site.client.get("/users/2")).headers["x-cache"] == "HIT"  # user:2 was not invalidated


async def test_no_store_and_set_cookie_responses_are_never_cached(site: Site) -> None:
    welcomes = [await site.client.get("/welcome") for _ in range(2)]
    assert [r.headers["x-cache"] for r in welcomes] == ["BYPASS", "BYPASS"]
    assert all(r.cookies.get("visited") == "1" for r in welcomes)
    stats = [await site.client.get("/stats") for _ in range(2)]
    assert [r.headers["cache-control"] for r in stats] == ["no-store", "no-store"]
    assert [r.headers["x-cache"] for r in stats] == ["BYPASS", "BYPASS"]
    assert stats[1].json()["renders"]["/stats"] == stats[0].json()["renders"]["/stats"] + 1
    assert stats[1].json()["renders"]["/welcome"] == 2


async def test_authorized_requests_are_not_answered_from_the_cache(site: Site) -> None:
    authorized = {"Authorization": "Bearer user-token"}
    first = await site.client.get("/posts/2", headers=authorized)
    assert first.headers["x-cache"] == "BYPASS"
    assert (await site.client.get("/posts/2")).headers["x-cache"] == "MISS"  # the authorized answer wasn't stored

    assert (await site.client.get("/posts/2")).headers["x-cache"] == "HIT"
    again = await site.client.get("/posts/2", headers=authorized)
    assert again.headers["x-cache"] != "HIT"  # the app was asked (it answered 304: same page)
    assert again.content == first.content
    assert await renders(site.client, "/posts/2") == 3


async def test_matching_if_none_match_gets_a_304_without_a_body(site: Site) -> None:
    first = await site.client.get("/posts")
    etag = first.headers["etag"]
    cached = await site.client.get("/posts", headers={"If-None-Match": etag})
    assert (cached.status_code, cached.headers["x-cache"], cached.content) == (304, "HIT", b"")
    assert cached.headers["etag"] == etag
    other = await site.client.get("/posts", headers={"If-None-Match": '"something-else"'})
    assert (other.status_code, other.content) == (200, first.content)
    assert await renders(site.client, "/posts") == 1


async def test_vary_keeps_one_variant_per_accept_language(site: Site) -> None:
    french = {"Accept-Language": "fr-FR, en;q=0.5"}
    english = {"Accept-Language": "en"}
    first_fr = await site.client.get("/", headers=french)
    first_en = await site.client.get("/", headers=english)
    assert (first_fr.headers["x-cache"], first_en.headers["x-cache"]) == ("MISS", "MISS")
    assert (first_fr.json(), first_en.json()) == ({"greeting": "Bonjour"}, {"greeting": "Hello"})
    assert "accept-language" in first_fr.headers["vary"].lower()

    again_en = await site.client.get("/", headers=english)
    again_fr = await site.client.get("/", headers=french)
    assert (again_en.headers["x-cache"], again_en.json()) == ("HIT", {"greeting": "Hello"})
    assert (again_fr.headers["x-cache"], again_fr.json()) == ("HIT", {"greeting": "Bonjour"})


async def test_post_and_delete_invalidate_the_urls_they_change(site: Site) -> None:
    before = await site.client.get("/posts")
    assert (await site.client.get("/posts")).headers["x-cache"] == "HIT"
    created = await site.client.post("/posts", json={"user_id": 1, "title": "Sketch of the engine"})
    assert created.status_code == 201
    post_id = created.json()["id"]
    assert created.headers["location"] == f"/posts/{post_id}"

    after = await site.client.get("/posts")
    assert after.headers["x-cache"] == "MISS"
    assert len(after.json()["posts"]) == len(before.json()["posts"]) + 1

    assert (await site.client.get(f"/posts/{post_id}")).status_code == 200
    assert (await site.client.get(f"/posts/{post_id}")).headers["x-cache"] == "HIT"
    assert (await site.client.delete(f"/posts/{post_id}")).status_code == 204
    assert (await site.client.get(f"/posts/{post_id}")).status_code == 404
    assert len((await site.client.get("/posts")).json()["posts"]) == len(before.json()["posts"])


async def test_expired_page_is_revalidated_with_a_304_from_the_app(site: Site) -> None:
    first = await site.client.get("/users/2")
    site.clock.advance(61)  # the pages say max-age=60
    revalidated = await site.client.get("/users/2")
    assert revalidated.status_code == 200
    assert revalidated.headers["x-cache"] == "REVALIDATED"
    assert revalidated.content == first.content
    assert await renders(site.client, "/users/2") == 2  # the app was asked, and answered 304
    fresh_again = await site.client.get("/users/2")
    assert (fresh_again.headers["x-cache"], fresh_again.content) == ("HIT", first.content)


async def test_decorated_service_caches_calls_and_tag_invalidation_reaches_it(site: Site) -> None:
    users = site.app.state.users
    before = site.db.queries
    assert await users.get_user(1) == await users.get_user(1) == {"id": 1, "name": "Ada", "email": "ada@example.com"}
    assert await users.count() == await users.count() == 2  # cached by @cache_class's default
    assert site.db.queries == before + 2

    await site.cache.invalidate_by_tag("user:1")
    await users.get_user(1)
    assert site.db.queries == before + 3
    assert await users.get_user.invalidate(1) is True
    await users.get_user(1)
    assert site.db.queries == before + 4

    await users.rename(1, "Countess")  # @no_cache: runs every time, caches nothing
    assert site.db.queries == before + 5
    assert (await users.get_user(1))["name"] == "Ada"  # rename alone does not invalidate...
    await site.client.put("/users/1", json={"name": "Countess"})  # ...the route does, by tag
    assert (await users.get_user(1))["name"] == "Countess"


async def test_cache_aside_posts_of_a_user_load_once_until_a_new_post(site: Site) -> None:
    before = site.db.queries
    first = await site.client.get("/users/1/posts")
    await site.cache.invalidate_by_tag("posts")  # drop the HTTP page; the cache-aside entry has its own tag
    second = await site.client.get("/users/1/posts")
    assert second.headers["x-cache"] == "MISS"
    assert second.content == first.content
    assert site.db.queries == before + 1  # loaded once, then served by the cache-aside entry

    await site.client.post("/posts", json={"user_id": 1, "title": "Second note"})
    titles = [post["title"] for post in (await site.client.get("/users/1/posts")).json()["posts"]]
    assert titles == ["Notes on the Analytical Engine", "Second note"]


async def test_health_reports_healthy_with_the_adapter_name(site: Site, backend: tuple[str, CacheConfig]) -> None:
    health = await site.client.get("/health")
    assert health.status_code == 200
    assert health.headers["cache-control"] == "no-store"
    body = health.json()
    assert (body["status"], body["adapter"]) == ("healthy", backend[0])


@pytest.mark.parametrize("module_name", ["starlette_app", "fastapi_app"])
async def test_app_without_a_cache_builds_one_from_the_environment_and_closes_it_on_shutdown(
    module_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("CACHE_ADAPTER", "REDIS_URL", "REDIS_HOST", "DATABASE_URL", "CACHE_ENVIRONMENT", "ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CACHE_DATABASE_URL", f"sqlite:///{tmp_path / 'cache.sqlite3'}")
    monkeypatch.setenv("PURGE_TOKEN", TOKEN)
    app = importlib.import_module(module_name).create_app()
    cache: CacheManager = app.state.cache
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as client,
    ):
        health = (await client.get("/health")).json()
        assert (health["status"], health["adapter"]) == ("healthy", "sqlite")
        assert (await client.get("/users/1")).headers["x-cache"] == "MISS"
        assert (await client.get("/users/1")).headers["x-cache"] == "HIT"
        purge = await client.post(
            "/_cache/purge", json={"tags": ["user:1"]}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert purge.status_code == 200
    assert (await cache.is_healthy()) is False  # closed by the lifespan, since the app created it
