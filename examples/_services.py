"""What the Starlette and FastAPI examples share: a cached service class, a cache-aside helper, a JSON page.

`UserService` is decorated at import time but caches nowhere until the app
factory calls `set_default_cache(cache)`: the decorators look the default up
on every call, so no cache exists before the app creates one.

Tags are the contract between reads and writes: a user page carries
`user:<id>`, a list carries the tag of the list, and a write invalidates
exactly the tags whose content it changed (in the HTTP cache and in the
service caches at once, since both live in the same `CacheManager`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from _data import Database, Post, User, etag_matches, etag_of
from starlette.requests import Request
from starlette.responses import Response

from cachetier import CacheAside
from cachetier.integrations.decorators import cache_class, cache_method, no_cache
from cachetier.integrations.patterns import CachePatterns


@cache_class(namespace="examples.users", default_ttl=60)
class UserService:
    """Reads of users; methods without their own `@cache_method` get the class's 60 s default."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @cache_method(ttl=300, tags=["user:{user_id}"])
    async def get_user(self, user_id: int) -> User | None:
        await self.db.wait()
        return self.db.user(user_id)

    @cache_method(ttl=300, tags=["user-list"])
    async def list_users(self) -> list[User]:
        await self.db.wait()
        return self.db.all_users()

    async def count(self) -> int:
        await self.db.wait()
        return len(self.db.all_users())

    @no_cache
    async def rename(self, user_id: int, name: str) -> User | None:
        """A write is never cached; the route invalidates the tags it changed."""
        await self.db.wait()
        return self.db.rename_user(user_id, name)


def posts_of(patterns: CachePatterns, db: Database, user_id: int) -> CacheAside[list[Post]]:
    """Cache-aside on one user's posts: `await posts_of(...).get()` loads only on a miss."""

    async def load() -> list[Post]:
        await db.wait()
        return db.posts_of(user_id)

    return patterns.cache_aside(f"posts-of:{user_id}", load, ttl=300, tags=[f"posts-of:{user_id}"])


def json_page(
    request: Request, payload: object, *, tags: Sequence[str], max_age: int = 60, vary: str | None = None
) -> Response:
    """A cacheable JSON response tagged for purges, answering `If-None-Match` itself with 304.

    The 304 is what lets the cache revalidate an expired page without the
    body crossing the wire again.
    """
    renders: Counter[str] = request.app.state.renders
    renders[request.url.path] += 1
    body = json.dumps(payload).encode()
    headers = {"Cache-Control": f"max-age={max_age}", "Cache-Tag": ", ".join(tags), "ETag": etag_of(body)}
    if vary:
        headers["Vary"] = vary
    if etag_matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
