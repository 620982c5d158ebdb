"""The Flask example over HTTP (httpx's WSGITransport), on SQLite, Redis and PostgreSQL.

The same behaviour as the ASGI examples' tests, through the WSGI middleware
and the blocking `SyncCache` facade.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import flask
import httpx
import pytest
from _data import Database
from example_support import Clock
from flask_app import create_app

from cachetier import CacheConfig, create_for_testing
from cachetier.sync import SyncCache

TOKEN = "e2e-purge-token"


@dataclass
class Site:
    client: httpx.Client
    app: flask.Flask
    cache: SyncCache
    db: Database
    clock: Clock

    @property
    def users(self) -> Any:
        return self.app.extensions["cachetier"]["users"]

    def renders(self, path: str) -> int:
        count: int = self.client.get("/stats").json()["renders"].get(path, 0)
        return count


@pytest.fixture
def site(backend: tuple[str, CacheConfig], clock: Clock) -> Iterator[Site]:
    cache = SyncCache(create_for_testing(backend[1]))
    db = Database(delay=0.001)
    try:
        app = create_app(cache, db=db, purge_token=TOKEN, clock=clock)
        with httpx.Client(transport=httpx.WSGITransport(app), base_url="http://testserver") as client:
            yield Site(client, app, cache, db, clock)
    finally:
        cache.close()


def test_second_request_is_a_hit_with_the_same_body(site: Site) -> None:
    first = site.client.get("/users/1")
    second = site.client.get("/users/1")
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.content == first.content
    assert first.json() == {"id": 1, "name": "Ada", "email": "ada@example.com"}
    assert "cache-tag" not in second.headers
    assert site.renders("/users/1") == 1


def test_purge_endpoint_needs_the_token_and_its_tag_purge_makes_the_next_request_miss(site: Site) -> None:
    site.client.get("/users/1")
    site.client.get("/posts")
    assert site.client.post("/_cache/purge", json={"tags": ["users"]}).status_code == 401
    wrong = site.client.post("/_cache/purge", json={"tags": ["users"]}, headers={"Authorization": "Bearer x"})
    assert wrong.status_code == 403
    assert site.client.get("/users/1").headers["x-cache"] == "HIT"

    purged = site.client.post("/_cache/purge", json={"tags": ["users"]}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert purged.status_code == 200
    assert purged.json()["purged"] >= 1
    assert site.client.get("/users/1").headers["x-cache"] == "MISS"
    assert site.client.get("/posts").headers["x-cache"] == "HIT"


def test_invalidate_by_tag_from_code_makes_the_next_request_miss(site: Site) -> None:
    site.client.get("/posts/1")
    assert site.client.get("/posts/1").headers["x-cache"] == "HIT"
    site.cache.invalidate_by_tag("post:1")
    assert site.client.get("/posts/1").headers["x-cache"] == "MISS"


def test_put_invalidates_the_user_page_the_list_and_the_service_cache(site: Site) -> None:
    site.client.get("/users/1")
    site.client.get("/users")
    site.client.get("/users/2")
    assert site.client.put("/users/1", json={"name": "Ada L."}).status_code == 200

    page = site.client.get("/users/1")
    assert (page.headers["x-cache"], page.json()["name"]) == ("MISS", "Ada L.")
    listing = site.client.get("/users")
    assert listing.headers["x-cache"] == "MISS"
    assert [user["name"] for user in listing.json()["users"]] == ["Ada L.", "Grace"]
    assert site.client.get("/users/2").headers["x-cache"] == "HIT"


def test_no_store_and_set_cookie_responses_are_never_cached(site: Site) -> None:
    welcomes = [site.client.get("/welcome") for _ in range(2)]
    assert [r.headers["x-cache"] for r in welcomes] == ["BYPASS", "BYPASS"]
    assert all(r.cookies.get("visited") == "1" for r in welcomes)
    stats = [site.client.get("/stats") for _ in range(2)]
    assert [r.headers["cache-control"] for r in stats] == ["no-store", "no-store"]
    assert [r.headers["x-cache"] for r in stats] == ["BYPASS", "BYPASS"]
    assert stats[1].json()["renders"]["/stats"] == stats[0].json()["renders"]["/stats"] + 1
    assert stats[1].json()["renders"]["/welcome"] == 2


def test_authorized_requests_are_not_answered_from_the_cache(site: Site) -> None:
    authorized = {"Authorization": "Bearer user-token"}
    first = site.client.get("/posts/2", headers=authorized)
    assert first.headers["x-cache"] == "BYPASS"
    assert site.client.get("/posts/2").headers["x-cache"] == "MISS"

    assert site.client.get("/posts/2").headers["x-cache"] == "HIT"
    again = site.client.get("/posts/2", headers=authorized)
    assert again.headers["x-cache"] != "HIT"
    assert again.content == first.content
    assert site.renders("/posts/2") == 3


def test_matching_if_none_match_gets_a_304_without_a_body(site: Site) -> None:
    first = site.client.get("/posts")
    etag = first.headers["etag"]
    cached = site.client.get("/posts", headers={"If-None-Match": etag})
    assert (cached.status_code, cached.headers["x-cache"], cached.content) == (304, "HIT", b"")
    assert cached.headers["etag"] == etag
    other = site.client.get("/posts", headers={"If-None-Match": '"something-else"'})
    assert (other.status_code, other.content) == (200, first.content)
    assert site.renders("/posts") == 1


def test_vary_keeps_one_variant_per_accept_language(site: Site) -> None:
    french = {"Accept-Language": "fr-FR, en;q=0.5"}
    english = {"Accept-Language": "en"}
    first_fr = site.client.get("/", headers=french)
    first_en = site.client.get("/", headers=english)
    assert (first_fr.headers["x-cache"], first_en.headers["x-cache"]) == ("MISS", "MISS")
    assert (first_fr.json(), first_en.json()) == ({"greeting": "Bonjour"}, {"greeting": "Hello"})
    assert "accept-language" in first_fr.headers["vary"].lower()

    again_en = site.client.get("/", headers=english)
    again_fr = site.client.get("/", headers=french)
    assert (again_en.headers["x-cache"], again_en.json()) == ("HIT", {"greeting": "Hello"})
    assert (again_fr.headers["x-cache"], again_fr.json()) == ("HIT", {"greeting": "Bonjour"})


def test_post_and_delete_invalidate_the_urls_they_change(site: Site) -> None:
    before = site.client.get("/posts")
    assert site.client.get("/posts").headers["x-cache"] == "HIT"
    created = site.client.post("/posts", json={"user_id": 1, "title": "Sketch of the engine"})
    assert created.status_code == 201
    post_id = created.json()["id"]
    assert created.headers["location"] == f"/posts/{post_id}"

    after = site.client.get("/posts")
    assert after.headers["x-cache"] == "MISS"
    assert len(after.json()["posts"]) == len(before.json()["posts"]) + 1

    assert site.client.get(f"/posts/{post_id}").status_code == 200
    assert site.client.get(f"/posts/{post_id}").headers["x-cache"] == "HIT"
    assert site.client.delete(f"/posts/{post_id}").status_code == 204
    assert site.client.get(f"/posts/{post_id}").status_code == 404
    assert len(site.client.get("/posts").json()["posts"]) == len(before.json()["posts"])


def test_expired_page_is_revalidated_with_a_304_from_the_app(site: Site) -> None:
    first = site.client.get("/users/2")
    site.clock.advance(61)
    revalidated = site.client.get("/users/2")
    assert revalidated.status_code == 200
    assert revalidated.headers["x-cache"] == "REVALIDATED"
    assert revalidated.content == first.content
    assert site.renders("/users/2") == 2
    # Flask stamps its 304 with a real-time Date, which the moved clock sees as 61 s old (RFC 9111
    # 4.2.3 apparent age), so the next request revalidates again: still the stored body, via a 304.
    again = site.client.get("/users/2")
    assert (again.headers["x-cache"], again.content) == ("REVALIDATED", first.content)


def test_decorated_service_caches_calls_and_tag_invalidation_reaches_it(site: Site) -> None:
    users = site.users
    before = site.db.queries
    assert users.get_user(1) == users.get_user(1) == {"id": 1, "name": "Ada", "email": "ada@example.com"}
    assert users.count() == users.count() == 2
    assert site.db.queries == before + 2

    site.cache.invalidate_by_tag("user:1")
    users.get_user(1)
    assert site.db.queries == before + 3
    assert users.get_user.invalidate(1) is True
    users.get_user(1)
    assert site.db.queries == before + 4

    users.rename(1, "Countess")
    assert site.db.queries == before + 5
    assert users.get_user(1)["name"] == "Ada"
    site.client.put("/users/1", json={"name": "Countess"})
    assert users.get_user(1)["name"] == "Countess"


def test_cache_aside_posts_of_a_user_load_once_until_a_new_post(site: Site) -> None:
    before = site.db.queries
    first = site.client.get("/users/1/posts")
    site.cache.invalidate_by_tag("posts")
    second = site.client.get("/users/1/posts")
    assert second.headers["x-cache"] == "MISS"
    assert second.content == first.content
    assert site.db.queries == before + 1

    site.client.post("/posts", json={"user_id": 1, "title": "Second note"})
    titles = [post["title"] for post in site.client.get("/users/1/posts").json()["posts"]]
    assert titles == ["Notes on the Analytical Engine", "Second note"]


def test_health_reports_healthy_with_the_adapter_name(site: Site, backend: tuple[str, CacheConfig]) -> None:
    health = site.client.get("/health")
    assert health.status_code == 200
    assert health.headers["cache-control"] == "no-store"
    body = health.json()
    assert (body["status"], body["adapter"]) == ("healthy", backend[0])
