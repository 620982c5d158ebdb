"""Starlette and FastAPI wiring: a lifespan that starts and closes the cache, and a way for routes to get it.

Needs the `starlette` extra (FastAPI includes it)::

    from cachetier.integrations.starlette import CacheDep, cache_lifespan

    app = FastAPI(lifespan=cache_lifespan())  # create_cache() from the environment

    @app.get("/users/{user_id}")
    async def get_user(user_id: int, cache: CacheDep) -> dict[str, object]:
        return await cache.get(f"user:{user_id}", lambda: load_user(user_id), ttl=60)

`CacheDep` is `Annotated[CacheManager, Depends(get_cache)]`; plain Starlette
handlers call `get_cache(request)`. The cache lives on `app.state.cache`, so the
app's middleware (`CacheMiddleware(cache=...)`) can share it when it is created
up front and passed in: `cache_lifespan(cache)`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any

from cachetier import CacheManager, ConfigError, create_cache
from cachetier.drivers import missing
from cachetier.integrations.decorators import set_default_cache

try:
    from starlette.requests import HTTPConnection
except ImportError as exc:
    raise missing("starlette", "starlette", "cachetier.integrations.starlette") from exc

Lifespan = Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]

STATE_KEY = "cache"


def cache_lifespan(
    cache: CacheManager | Callable[[], CacheManager] | None = None,
    *,
    lifespan: Lifespan | None = None,
    close: bool = True,
    set_default: bool = True,
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]:
    """A lifespan for `Starlette(lifespan=...)` / `FastAPI(lifespan=...)`.

    On startup it builds the cache (`cache` itself, a factory, or `create_cache()`
    when `None`), connects it (`await cache.start()`, so a bad configuration fails
    the startup rather than the first request), puts it on `app.state.cache`, and
    with `set_default` makes it the decorators' default. Then it runs `lifespan`
    (the app's own, if any) inside. On shutdown the cache is closed (unless
    `close=False`) after the inner lifespan finished. State the inner lifespan
    yields is passed on (typed `Any` so both Starlette's and FastAPI's lifespan
    signatures accept it).
    """

    @contextlib.asynccontextmanager
    async def run(app: Any) -> AsyncIterator[Mapping[str, Any] | None]:
        built = create_cache() if cache is None else cache if isinstance(cache, CacheManager) else cache()
        await built.start()
        setattr(app.state, STATE_KEY, built)
        if set_default:
            set_default_cache(built)
        try:
            if lifespan is None:
                yield None
            else:
                async with lifespan(app) as state:
                    yield state
        finally:
            if set_default:
                set_default_cache(None)
            if close:
                await built.close()

    return run


def get_cache(connection: HTTPConnection) -> CacheManager:
    """The cache `cache_lifespan` put on the app (works for requests and websockets)."""
    cache = getattr(connection.app.state, STATE_KEY, None)
    if not isinstance(cache, CacheManager):
        raise ConfigError("no cache on app.state: pass lifespan=cache_lifespan(...) to the app")
    return cache


if TYPE_CHECKING:
    CacheDep = Annotated[CacheManager, "Depends(get_cache)"]
else:
    try:
        from fastapi import Depends

        CacheDep = Annotated[CacheManager, Depends(get_cache)]
    except ImportError:  # plain Starlette: use get_cache(request)
        CacheDep = CacheManager
