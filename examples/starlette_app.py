"""A small Starlette service (users and posts) behind cachetier's HTTP cache, with tag purges.

Run: python examples/starlette_app.py   (uvicorn on http://127.0.0.1:8000)

The cache comes from the environment (`create_cache()`): with nothing set it is
the embedded SQLite file; `REDIS_URL=redis://127.0.0.1:6379/0
CACHE_ENVIRONMENT=production` puts it on Redis, `DATABASE_URL=postgresql://...`
on PostgreSQL. `PURGE_TOKEN` protects `POST /_cache/purge` (a random token
is generated and logged when it is unset). Then try:

    curl -i localhost:8000/users/1          # X-Cache: MISS, then HIT
    curl -i -X PUT localhost:8000/users/1 -d '{"name": "Ada L."}'   # purges tag user:1
    curl -i -X POST localhost:8000/_cache/purge -H "Authorization: Bearer $PURGE_TOKEN" \
        -d '{"tags": ["users"]}'

The cache is created by `create_app()` and connected and closed by the
lifespan, never at import time; `create_app(cache)` takes one from a test.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from _data import GREETINGS, Database, language_of
from _services import UserService, json_page, posts_of
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from cachetier import CacheManager, create_cache, create_health_check
from cachetier.integrations.asgi import CacheMiddleware, purge_endpoint
from cachetier.integrations.decorators import set_default_cache
from cachetier.integrations.patterns import CachePatterns
from cachetier.integrations.starlette import cache_lifespan

logger = logging.getLogger("examples.starlette_app")
NO_STORE = {"Cache-Control": "no-store"}


def create_app(
    cache: CacheManager | None = None,
    *,
    db: Database | None = None,
    purge_token: str | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The app; it closes the cache on shutdown only when it created it (`cache=None`).

    Args:
        cache: the cache to use, e.g. `create_for_testing()`; `create_cache()` when None.
        db: the stand-in database (a fresh one when None).
        purge_token: bearer token of the purge endpoint; `PURGE_TOKEN` or a random one when None.
        clock: the HTTP cache's clock (seconds since the epoch), for tests.
    """
    owned = cache is None
    manager = create_cache() if cache is None else cache
    database = db if db is not None else Database()
    token = purge_token or os.environ.get("PURGE_TOKEN") or secrets.token_urlsafe(16)
    generated_token = not (purge_token or os.environ.get("PURGE_TOKEN"))
    set_default_cache(manager)  # where UserService's decorators cache
    users = UserService(database)
    patterns = CachePatterns(manager)
    health = create_health_check(manager)
    purge = purge_endpoint(manager, token=token)

    async def home(request: Request) -> Response:
        language = language_of(request.headers.get("accept-language"))
        return json_page(request, {"greeting": GREETINGS[language]}, tags=["home"], vary="Accept-Language")

    async def list_users(request: Request) -> Response:
        payload = {"users": await users.list_users(), "total": await users.count()}
        return json_page(request, payload, tags=["users", "user-list"])

    async def get_user(request: Request) -> Response:
        user_id: int = request.path_params["user_id"]
        user = await users.get_user(user_id)
        if user is None:
            return JSONResponse({"error": "no such user"}, status_code=404)
        return json_page(request, user, tags=["users", f"user:{user_id}"])

    async def update_user(request: Request) -> Response:
        user_id: int = request.path_params["user_id"]
        name = (await request.json()).get("name")
        if not isinstance(name, str) or not name:
            return JSONResponse({"error": "name must be a non-empty string"}, status_code=422)
        user = await users.rename(user_id, name)
        if user is None:
            return JSONResponse({"error": "no such user"}, status_code=404)
        await manager.invalidate_by_tags([f"user:{user_id}", "user-list"])
        return JSONResponse(user)

    async def user_posts(request: Request) -> Response:
        user_id: int = request.path_params["user_id"]
        posts = await posts_of(patterns, database, user_id).get()
        return json_page(request, {"posts": posts}, tags=["posts", f"posts-of:{user_id}"])

    async def list_posts(request: Request) -> Response:
        await database.wait()
        return json_page(request, {"posts": database.all_posts()}, tags=["posts", "post-list"])

    async def get_post(request: Request) -> Response:
        post_id: int = request.path_params["post_id"]
        await database.wait()
        post = next((p for p in database.all_posts() if p["id"] == post_id), None)
        if post is None:
            return JSONResponse({"error": "no such post"}, status_code=404)
        return json_page(request, post, tags=["posts", f"post:{post_id}"])

    async def create_post(request: Request) -> Response:
        data: dict[str, Any] = await request.json()
        user_id, title = data.get("user_id"), data.get("title")
        if not isinstance(user_id, int) or not isinstance(title, str) or not title:
            return JSONResponse({"error": "user_id (int) and title (str) are required"}, status_code=422)
        await database.wait()
        post = database.add_post(user_id, title)
        await manager.invalidate_by_tags(["post-list", f"posts-of:{user_id}"])
        return JSONResponse(post, status_code=201, headers={"Location": f"/posts/{post['id']}"})

    async def delete_post(request: Request) -> Response:
        post_id: int = request.path_params["post_id"]
        await database.wait()
        post = database.delete_post(post_id)
        if post is None:
            return JSONResponse({"error": "no such post"}, status_code=404)
        await manager.invalidate_by_tags([f"post:{post_id}", "post-list", f"posts-of:{post['user_id']}"])
        return Response(status_code=204)

    async def welcome(request: Request) -> Response:
        request.app.state.renders[request.url.path] += 1
        # Cacheable by its Cache-Control, but the Set-Cookie makes it per-visitor: never stored.
        response = PlainTextResponse("Welcome!", headers={"Cache-Control": "max-age=60"})
        response.set_cookie("visited", "1")
        return response

    async def stats(request: Request) -> Response:
        request.app.state.renders[request.url.path] += 1
        figures = (await manager.get_stats()).to_dict()
        payload = {"db_queries": database.queries, "renders": dict(request.app.state.renders), "cache": figures}
        return JSONResponse(payload, headers=NO_STORE)

    async def healthz(request: Request) -> Response:
        report = await health()
        return JSONResponse(report, status_code=503 if report["status"] == "unhealthy" else 200, headers=NO_STORE)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        logger.info("cache: %s (%s)", manager.adapter_type, manager.selection_reason)
        if generated_token:
            logger.warning("PURGE_TOKEN is not set; this run's purge token is %s", token)
        try:
            yield
        finally:
            await patterns.aclose()
            if owned:
                set_default_cache(None)

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/users", list_users),
            Route("/users/{user_id:int}", get_user),
            Route("/users/{user_id:int}", update_user, methods=["PUT"]),
            Route("/users/{user_id:int}/posts", user_posts),
            Route("/posts", list_posts),
            Route("/posts", create_post, methods=["POST"]),
            Route("/posts/{post_id:int}", get_post),
            Route("/posts/{post_id:int}", delete_post, methods=["DELETE"]),
            Route("/welcome", welcome),
            Route("/stats", stats),
            Route("/health", healthz),
            # a Route answers on the exact path (a Mount would redirect it to ".../purge/" with a 307)
            Route("/_cache/purge", purge),
            Route("/_cache/purge/", purge),
        ],
        middleware=[Middleware(CacheMiddleware, cache=manager, clock=clock)],
        # connects the cache before `lifespan` runs and closes the one it owns after it
        lifespan=cache_lifespan(manager, lifespan=lifespan, close=owned, set_default=False),
    )
    app.state.renders = Counter[str]()
    app.state.cache = manager
    app.state.db = database
    app.state.users = users
    return app


if __name__ == "__main__":
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(create_app, factory=True, host="127.0.0.1", port=8000)
