"""The example apps' stand-in database and the small HTTP helpers they share; no framework, no cache.

The delay makes a cache hit visibly cheaper than a query, and `queries`
counts every query so the apps' `/stats` page (and the e2e tests) can show
how many reached the "database".
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from typing import TypedDict


class User(TypedDict):
    id: int
    name: str
    email: str


class Post(TypedDict):
    id: int
    user_id: int
    title: str


GREETINGS = {"en": "Hello", "fr": "Bonjour", "de": "Hallo"}


class Database:
    """Users and posts in dicts. Call `wait()` / `wait_blocking()` before a query to pay its latency."""

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.queries = 0
        self._lock = threading.Lock()  # Flask's dev server serves requests on threads
        self.users: dict[int, User] = {
            1: {"id": 1, "name": "Ada", "email": "ada@example.com"},
            2: {"id": 2, "name": "Grace", "email": "grace@example.com"},
        }
        self.posts: dict[int, Post] = {
            1: {"id": 1, "user_id": 1, "title": "Notes on the Analytical Engine"},
            2: {"id": 2, "user_id": 2, "title": "Compilers for everyone"},
        }

    async def wait(self) -> None:
        """The latency of one query, for async callers."""
        await asyncio.sleep(self.delay)

    def wait_blocking(self) -> None:
        """The latency of one query, for sync callers."""
        time.sleep(self.delay)

    def _count(self) -> None:
        with self._lock:
            self.queries += 1

    def user(self, user_id: int) -> User | None:
        self._count()
        user = self.users.get(user_id)
        return None if user is None else User(**user)

    def all_users(self) -> list[User]:
        self._count()
        return [User(**user) for user in self.users.values()]

    def rename_user(self, user_id: int, name: str) -> User | None:
        self._count()
        with self._lock:
            if user_id not in self.users:
                return None
            self.users[user_id]["name"] = name
            return User(**self.users[user_id])

    def all_posts(self) -> list[Post]:
        self._count()
        return [Post(**post) for post in self.posts.values()]

    def posts_of(self, user_id: int) -> list[Post]:
        self._count()
        return [Post(**post) for post in self.posts.values() if post["user_id"] == user_id]

    def add_post(self, user_id: int, title: str) -> Post:
        self._count()
        with self._lock:
            post = Post(id=max(self.posts, default=0) + 1, user_id=user_id, title=title)
            self.posts[post["id"]] = post
            return Post(**post)

    def delete_post(self, post_id: int) -> Post | None:
        self._count()
        with self._lock:
            return self.posts.pop(post_id, None)


def etag_of(body: bytes) -> str:
    """A strong validator for a response body, so the app itself can answer revalidations with 304."""
    return '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison of `If-None-Match` against our ETag."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    candidates = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return etag.removeprefix("W/") in candidates


def language_of(accept_language: str | None) -> str:
    """The first language in `Accept-Language` we have a greeting for (no q-values: it is an example)."""
    for item in (accept_language or "").split(","):
        language = item.split(";", 1)[0].strip().lower()[:2]
        if language in GREETINGS:
            return language
    return "en"
