"""A small FastAPI service (users and posts) behind cachetier's HTTP cache, with tag purges.

Run: python examples/fastapi_app.py   (uvicorn on http://127.0.0.1:8000; OpenAPI docs at /docs)

The cache comes from the environment (`create_cache()`): with nothing set it is
the embedded SQLite file; `REDIS_URL=redis://127.0.0.1:6379/0
CACHE_ENVIRONMENT=production` puts it on Redis, `DATABASE_URL=postgresql://...`
on PostgreSQL. `PURGE_TOKEN` protects `POST /_cache/purge` (a random token
is generated and logged when it is unset).

The same routes as `starlette_app.py`, written the FastAPI way: request
bodies are pydantic models and the services arrive through `Depends`. The
cache is created by `create_app()` and connected and closed by the lifespan,
never at import time; `create_app(cache)` takes one from a test.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from _data import GREETINGS, Database, language_of
from _services import UserService, json_page, posts_of
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from cachetier import CacheManager, create_cache, create_health_check
from cachetier.integrations.asgi import CacheMiddleware, purge_endpoint
from cachetier.integrations.decorators import set_default_cache
from cachetier.integrations.patterns import CachePatterns
from cachetier.integrations.starlette import CacheDep, cache_lifespan

logger = logging.getLogger("examples.fastapi_app")
NO_STORE = {"Cache-Control": "no-store"}


class Rename(BaseModel):
    name: str = Field(min_length=1)


class NewPost(BaseModel):
    user_id: int
    title: str = Field(min_length=1)


def users_of(request: Request) -> UserService:
    users: UserService = request.app.state.users
    return users


def db_of(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


Cache = CacheDep  # the cache on app.state, as cache_lifespan and create_app put it there
Users = Annotated[UserService, Depends(users_of)]
Db = Annotated[Database, Depends(db_of)]


def create_app(
    cache: CacheManager | None = None,
    *,
    db: Database | None = None,
    purge_token: str | None = None,
    clock: Callable[[], float] = time.time,
) -> FastAPI:
    """The app; it closes the cache on shutdown only when it created it (`cache=None`).

    Args:
        cache: the cache to use, e.g. `create_for_testing()`; `create_cache()` when None.
        db: the stand-in database (a fresh one when None).
        purge_token: bearer token of the purge endpoint; `PURGE_TOKEN` or a random one when None.
        clock: the HTTP cache's clock (seconds since the epoch), for tests.
    """
    owned = cache is None
    manager = create_cache() if cache is None else cache
    configured_token = purge_token or os.environ.get("PURGE_TOKEN")
    token = configured_token or secrets.token_urlsafe(16)
    set_default_cache(manager)  # where UserService's decorators cache
    patterns = CachePatterns(manager)
    health = create_health_check(manager)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info("cache: %s (%s)", manager.adapter_type, manager.selection_reason)
        if configured_token is None:
            logger.warning("PURGE_TOKEN is not set; this run's purge token is %s", token)
        try:
            yield
        finally:
            await patterns.aclose()
            if owned:
                set_default_cache(None)

    # cache_lifespan connects the cache before `lifespan` runs and closes the one it owns after it
    app = FastAPI(
        title="cachetier FastAPI example",
        lifespan=cache_lifespan(manager, lifespan=lifespan, close=owned, set_default=False),
    )
    app.add_middleware(CacheMiddleware, cache=manager, clock=clock)
    purge = purge_endpoint(manager, token=token)
    # a route answers on the exact path (a mount would redirect it to ".../purge/" with a 307)
    app.add_route("/_cache/purge", purge, include_in_schema=False)
    app.add_route("/_cache/purge/", purge, include_in_schema=False)
    database = db if db is not None else Database()
    app.state.renders = Counter[str]()
    app.state.cache = manager
    app.state.db = database
    app.state.users = UserService(database)
    app.state.patterns = patterns

    @app.get("/")
    async def home(request: Request) -> Response:
        language = language_of(request.headers.get("accept-language"))
        return json_page(request, {"greeting": GREETINGS[language]}, tags=["home"], vary="Accept-Language")

    @app.get("/users")
    async def list_users(request: Request, users: Users) -> Response:
        payload = {"users": await users.list_users(), "total": await users.count()}
        return json_page(request, payload, tags=["users", "user-list"])

    @app.get("/users/{user_id}")
    async def get_user(user_id: int, request: Request, users: Users) -> Response:
        user = await users.get_user(user_id)
        if user is None:
            raise HTTPException(404, "no such user")
        return json_page(request, user, tags=["users", f"user:{user_id}"])

    @app.put("/users/{user_id}")
    async def update_user(user_id: int, body: Rename, users: Users, cache: Cache) -> dict[str, Any]:
        user = await users.rename(user_id, body.name)
        if user is None:
            raise HTTPException(404, "no such user")
        await cache.invalidate_by_tags([f"user:{user_id}", "user-list"])
        return dict(user)

    @app.get("/users/{user_id}/posts")
    async def user_posts(user_id: int, request: Request, db: Db) -> Response:
        posts = await posts_of(request.app.state.patterns, db, user_id).get()
        return json_page(request, {"posts": posts}, tags=["posts", f"posts-of:{user_id}"])

    @app.get("/posts")
    async def list_posts(request: Request, db: Db) -> Response:
        await db.wait()
        return json_page(request, {"posts": db.all_posts()}, tags=["posts", "post-list"])

    @app.get("/posts/{post_id}")
    async def get_post(post_id: int, request: Request, db: Db) -> Response:
        await db.wait()
        post = next((p for p in db.all_posts() if p["id"] == post_id), None)
        if post is None:
            raise HTTPException(404, "no such post")
        return json_page(request, post, tags=["posts", f"post:{post_id}"])

    @app.post("/posts", status_code=201)
    async def create_post(body: NewPost, db: Db, cache: Cache) -> JSONResponse:
        await db.wait()
        post = db.add_post(body.user_id, body.title)
        await cache.invalidate_by_tags(["post-list", f"posts-of:{body.user_id}"])
        return JSONResponse(dict(post), status_code=201, headers={"Location": f"/posts/{post['id']}"})

    @app.delete("/posts/{post_id}", status_code=204)
    async def delete_post(post_id: int, db: Db, cache: Cache) -> Response:
        await db.wait()
        post = db.delete_post(post_id)
        if post is None:
            raise HTTPException(404, "no such post")
        await cache.invalidate_by_tags([f"post:{post_id}", "post-list", f"posts-of:{post['user_id']}"])
        return Response(status_code=204)

    @app.get("/welcome")
    async def welcome(request: Request) -> Response:
        request.app.state.renders[request.url.path] += 1
        # Cacheable by its Cache-Control, but the Set-Cookie makes it per-visitor: never stored.
        response = PlainTextResponse("Welcome!", headers={"Cache-Control": "max-age=60"})
        response.set_cookie("visited", "1")
        return response

    @app.get("/stats")
    async def stats(request: Request, db: Db, cache: Cache) -> JSONResponse:
        request.app.state.renders[request.url.path] += 1
        figures = (await cache.get_stats()).to_dict()
        payload = {"db_queries": db.queries, "renders": dict(request.app.state.renders), "cache": figures}
        return JSONResponse(payload, headers=NO_STORE)

    @app.get("/health")
    async def healthz() -> JSONResponse:
        report = await health()
        return JSONResponse(report, status_code=503 if report["status"] == "unhealthy" else 200, headers=NO_STORE)

    return app


if __name__ == "__main__":
    import uvicorn

    logging.basicConfig(level=logging.INFO)
    uvicorn.run(create_app, factory=True, host="127.0.0.1", port=8000)
