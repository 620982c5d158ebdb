"""A small Flask service (users and posts) behind cachetier's WSGI HTTP cache, with tag purges.

Run: python examples/flask_app.py   (Flask's development server on http://127.0.0.1:8000)

The cache comes from the environment (`create_cache()`, behind the blocking
`SyncCache` facade): with nothing set it is the embedded SQLite file;
`REDIS_URL=redis://127.0.0.1:6379/0 CACHE_ENVIRONMENT=production` puts it on
Redis, `DATABASE_URL=postgresql://...` on PostgreSQL. `PURGE_TOKEN` protects
`POST /_cache/purge` (a random token is generated and logged when it is unset).

The same routes as `starlette_app.py`, with sync code throughout: the
service methods and the cache-aside loader run in the request's thread. The
cache is created by `create_app()`, never at import time; `create_app(cache)`
takes a `SyncCache` from a test (and then the test closes it).
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import flask
from _data import GREETINGS, Database, Post, User, language_of
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from cachetier import create_cache, create_health_check
from cachetier.integrations.decorators import cache_class, cache_method, no_cache, set_default_cache
from cachetier.integrations.wsgi import CacheMiddleware, purge_endpoint
from cachetier.sync import SyncCache

logger = logging.getLogger("examples.flask_app")
NO_STORE = {"Cache-Control": "no-store"}


@cache_class(namespace="examples.flask.users", default_ttl=60)
class UserService:
    """Reads of users, cached in the default cache `create_app` sets; `count` gets the class's 60 s default."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @cache_method(ttl=300, tags=["user:{user_id}"])
    def get_user(self, user_id: int) -> User | None:
        self.db.wait_blocking()
        return self.db.user(user_id)

    @cache_method(ttl=300, tags=["user-list"])
    def list_users(self) -> list[User]:
        self.db.wait_blocking()
        return self.db.all_users()

    def count(self) -> int:
        self.db.wait_blocking()
        return len(self.db.all_users())

    @no_cache
    def rename(self, user_id: int, name: str) -> User | None:
        """A write is never cached; the route invalidates the tags it changed."""
        self.db.wait_blocking()
        return self.db.rename_user(user_id, name)


def posts_of(cache: SyncCache, db: Database, user_id: int) -> list[Post]:
    """Cache-aside on one user's posts: the loader runs (in this thread) only on a miss."""

    def load() -> list[Post]:
        db.wait_blocking()
        return db.posts_of(user_id)

    posts: list[Post] = cache.get(f"posts-of:{user_id}", load, ttl=300, tags=[f"posts-of:{user_id}"])
    return posts


def create_app(
    cache: SyncCache | None = None,
    *,
    db: Database | None = None,
    purge_token: str | None = None,
    clock: Callable[[], float] = time.time,
) -> flask.Flask:
    """The app; a cache it creates itself (`cache=None`) is connected now and closed at exit.

    Args:
        cache: the cache to use, e.g. `SyncCache(create_for_testing())`; built from the environment when None.
        db: the stand-in database (a fresh one when None).
        purge_token: bearer token of the purge endpoint; `PURGE_TOKEN` or a random one when None.
        clock: the HTTP cache's clock (seconds since the epoch), for tests.
    """
    configured_token = purge_token or os.environ.get("PURGE_TOKEN")
    token = configured_token or secrets.token_urlsafe(16)
    if cache is None:
        cache = SyncCache(create_cache())
        cache.run(cache.manager.start())
        atexit.register(cache.close)
        logger.info("cache: %s (%s)", cache.manager.adapter_type, cache.manager.selection_reason)
        if configured_token is None:
            logger.warning("PURGE_TOKEN is not set; this run's purge token is %s", token)
    sync = cache
    database = db if db is not None else Database()
    set_default_cache(sync)  # where UserService's decorators cache
    users = UserService(database)
    health = create_health_check(sync.manager)
    renders: Counter[str] = Counter()
    app = flask.Flask(__name__)

    def page(payload: Any, *, tags: Sequence[str], vary: str | None = None) -> flask.Response:
        """A cacheable JSON page tagged for purges; Flask answers a matching `If-None-Match` with 304."""
        renders[flask.request.path] += 1
        response = flask.jsonify(payload)
        response.headers["Cache-Control"] = "max-age=60"
        response.headers["Cache-Tag"] = ", ".join(tags)
        if vary:
            response.vary.add(vary)
        response.add_etag()
        response.make_conditional(flask.request)  # turns it into a 304 when If-None-Match matches
        return response

    def not_found(what: str) -> flask.Response:
        response = flask.jsonify({"error": f"no such {what}"})
        response.status_code = 404
        return response

    @app.get("/")
    def home() -> flask.Response:
        language = language_of(flask.request.headers.get("Accept-Language"))
        return page({"greeting": GREETINGS[language]}, tags=["home"], vary="Accept-Language")

    @app.get("/users")
    def list_users() -> flask.Response:
        return page({"users": users.list_users(), "total": users.count()}, tags=["users", "user-list"])

    @app.get("/users/<int:user_id>")
    def get_user(user_id: int) -> flask.Response:
        user = users.get_user(user_id)
        return not_found("user") if user is None else page(user, tags=["users", f"user:{user_id}"])

    @app.put("/users/<int:user_id>")
    def update_user(user_id: int) -> flask.Response:
        name = (flask.request.get_json(silent=True) or {}).get("name")
        if not isinstance(name, str) or not name:
            return flask.make_response(flask.jsonify({"error": "name must be a non-empty string"}), 422)
        user = users.rename(user_id, name)
        if user is None:
            return not_found("user")
        sync.invalidate_by_tags([f"user:{user_id}", "user-list"])
        return flask.jsonify(user)

    @app.get("/users/<int:user_id>/posts")
    def user_posts(user_id: int) -> flask.Response:
        return page({"posts": posts_of(sync, database, user_id)}, tags=["posts", f"posts-of:{user_id}"])

    @app.get("/posts")
    def list_posts() -> flask.Response:
        database.wait_blocking()
        return page({"posts": database.all_posts()}, tags=["posts", "post-list"])

    @app.get("/posts/<int:post_id>")
    def get_post(post_id: int) -> flask.Response:
        database.wait_blocking()
        post = next((p for p in database.all_posts() if p["id"] == post_id), None)
        return not_found("post") if post is None else page(post, tags=["posts", f"post:{post_id}"])

    @app.post("/posts")
    def create_post() -> flask.Response:
        data = flask.request.get_json(silent=True) or {}
        user_id, title = data.get("user_id"), data.get("title")
        if not isinstance(user_id, int) or not isinstance(title, str) or not title:
            return flask.make_response(flask.jsonify({"error": "user_id (int) and title (str) are required"}), 422)
        database.wait_blocking()
        post = database.add_post(user_id, title)
        sync.invalidate_by_tags(["post-list", f"posts-of:{user_id}"])
        return flask.make_response(flask.jsonify(post), 201, {"Location": f"/posts/{post['id']}"})

    @app.delete("/posts/<int:post_id>")
    def delete_post(post_id: int) -> flask.Response:
        database.wait_blocking()
        post = database.delete_post(post_id)
        if post is None:
            return not_found("post")
        sync.invalidate_by_tags([f"post:{post_id}", "post-list", f"posts-of:{post['user_id']}"])
        return flask.make_response("", 204)

    @app.get("/welcome")
    def welcome() -> flask.Response:
        renders[flask.request.path] += 1
        # Cacheable by its Cache-Control, but the Set-Cookie makes it per-visitor: never stored.
        response = flask.make_response("Welcome!", 200, {"Cache-Control": "max-age=60"})
        response.set_cookie("visited", "1")
        return response

    @app.get("/stats")
    def stats() -> flask.Response:
        renders[flask.request.path] += 1
        payload = {"db_queries": database.queries, "renders": dict(renders), "cache": sync.get_stats().to_dict()}
        return flask.make_response(flask.jsonify(payload), 200, NO_STORE)

    async def check_health() -> dict[str, Any]:
        return await health()  # SyncCache.run takes a coroutine; HealthCheck promises an awaitable

    @app.get("/health")
    def healthz() -> flask.Response:
        report = sync.run(check_health())
        return flask.make_response(flask.jsonify(report), 503 if report["status"] == "unhealthy" else 200, NO_STORE)

    cached = CacheMiddleware(app.wsgi_app, cache=sync, clock=clock)
    app.wsgi_app = DispatcherMiddleware(cached, {"/_cache/purge": purge_endpoint(sync, token=token)})  # type: ignore[method-assign]
    app.extensions["cachetier"] = {"cache": sync, "db": database, "users": users, "renders": renders}
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    example = create_app()
    try:
        example.run(host="127.0.0.1", port=8000)  # returns on Ctrl-C
    finally:
        example.extensions["cachetier"]["cache"].close()  # before interpreter exit (atexit is the fallback)
