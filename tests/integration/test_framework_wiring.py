"""Framework wiring on real apps: the Starlette/FastAPI lifespan and dependency, and the Flask extension."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import flask
import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cachetier import CacheClosedError, CacheConfig, CacheManager, ConfigError, create_for_testing
from cachetier.integrations.decorators import cache_method
from cachetier.integrations.flask_ext import Cachetier, config_from
from cachetier.integrations.starlette import CacheDep, cache_lifespan, get_cache

CALLS: list[int] = []


@cache_method(ttl=60)
async def slow_square(n: int) -> int:
    CALLS.append(n)
    return n * n


@cache_method(ttl=60)
def sync_square(n: int) -> int:
    CALLS.append(n)
    return n * n


@pytest.fixture(params=["sqlite", "redis"])
def config(request: pytest.FixtureRequest) -> CacheConfig:
    if request.param == "redis":
        return CacheConfig(adapter="redis", redis_url=request.getfixturevalue("redis_url"))
    return CacheConfig(adapter="sqlite")


@pytest.fixture(autouse=True)
def _no_calls() -> Iterator[None]:
    CALLS.clear()
    yield
    CALLS.clear()


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Runs the app's lifespan as an ASGI server does, and a client whose requests carry the lifespan state."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    state: dict[str, Any] = {}
    task = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started

    async def with_state(scope: Any, receive: Any, send: Any) -> None:
        await app({**scope, "state": dict(state)}, receive, send)

    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(with_state), base_url="http://testserver") as client:
            yield client
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        stopped = await outbox.get()
        await task
        assert stopped["type"] == "lifespan.shutdown.complete", stopped


def fastapi_app(config: CacheConfig, seen: list[CacheManager], events: list[str]) -> FastAPI:
    @contextlib.asynccontextmanager
    async def own_lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
        events.append("app started")
        yield {"greeting": "hello"}
        events.append("app stopping")

    app = FastAPI(lifespan=cache_lifespan(lambda: create_for_testing(config), lifespan=own_lifespan))

    @app.put("/items/{name}")
    async def put_item(name: str, cache: CacheDep) -> dict[str, str]:
        await cache.set(f"item:{name}", {"name": name}, tags=["items"])
        return {"stored": name}

    @app.get("/items/{name}")
    async def get_item(name: str, cache: CacheDep, request: Request) -> dict[str, object]:
        seen.append(cache)
        return {"item": await cache.get(f"item:{name}"), "greeting": request.state.greeting}

    @app.get("/square/{n}")
    async def square(n: int) -> dict[str, int]:
        return {"square": await slow_square(n)}

    return app


async def test_fastapi_lifespan_starts_shares_and_closes_the_cache(config: CacheConfig) -> None:
    seen: list[CacheManager] = []
    events: list[str] = []
    app = fastapi_app(config, seen, events)
    async with serving(app) as client:
        assert events == ["app started"]
        assert (await client.put("/items/a")).json() == {"stored": "a"}
        assert (await client.get("/items/a")).json() == {"item": {"name": "a"}, "greeting": "hello"}
        assert (await client.get("/items/b")).json()["item"] is None
        assert [(await client.get("/square/4")).json()["square"] for _ in range(2)] == [16, 16]
        assert CALLS == [4]  # the decorators' default is the app's cache
        cache = app.state.cache
        assert seen == [cache, cache]
        assert cache.adapter_type == config.adapter
    assert events == ["app started", "app stopping"]
    with pytest.raises(CacheClosedError):
        await cache.get("item:a")
    with pytest.raises(ConfigError):  # the default was unset with the shutdown
        sync_square(1)


async def test_starlette_handlers_get_the_cache_from_the_request(config: CacheConfig) -> None:
    async def count(request: Request) -> JSONResponse:
        cache = get_cache(request)
        return JSONResponse({"n": await cache.increment("hits")})

    made: list[CacheManager] = []

    def factory() -> CacheManager:
        made.append(create_for_testing(config))
        return made[-1]

    app = Starlette(routes=[Route("/count", count)], lifespan=cache_lifespan(factory, set_default=False))
    async with serving(app) as client:
        assert [(await client.get("/count")).json()["n"] for _ in range(3)] == [1, 2, 3]
    assert len(made) == 1


async def test_lifespan_with_close_false_leaves_a_given_cache_open() -> None:
    cache = create_for_testing(CacheConfig(adapter="sqlite"))
    app = Starlette(lifespan=cache_lifespan(cache, close=False, set_default=False))
    async with serving(app):
        assert app.state.cache is cache
    assert await cache.get("x") is None  # still open: no CacheClosedError
    async with serving(Starlette(lifespan=cache_lifespan(cache, set_default=False))):
        pass  # close=True (the default) closes it
    with pytest.raises(CacheClosedError):
        await cache.get("x")


async def test_get_cache_without_the_lifespan_is_a_config_error() -> None:
    async def route(request: Request) -> JSONResponse:
        get_cache(request)
        return JSONResponse({})

    app = Starlette(routes=[Route("/", route)])
    async with serving(app) as client:
        with pytest.raises(ConfigError, match="lifespan"):
            await client.get("/")


def flask_settings(config: CacheConfig, tmp_path: pathlib.Path) -> dict[str, object]:
    settings: dict[str, object] = {
        "CACHETIER_ADAPTER": config.adapter,
        "CACHETIER_NAMESPACE": f"flask_{uuid.uuid4().hex[:10]}",
        "CACHETIER_DEFAULT_TTL": 120,
    }
    if config.adapter == "redis":
        settings["CACHETIER_REDIS_URL"] = config.redis_url
    else:
        settings["CACHETIER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'flask.sqlite3'}"
    return settings


def test_flask_extension_reads_app_config_serves_views_and_middleware(
    config: CacheConfig, tmp_path: pathlib.Path
) -> None:
    cachetier = Cachetier()
    app = flask.Flask(__name__)
    app.config.update(flask_settings(config, tmp_path))

    @app.get("/page/<int:n>")
    def page(n: int) -> flask.Response:
        cachetier.cache.set("last", n)
        response = flask.jsonify({"square": sync_square(n), "last": cachetier.cache.get("last")})
        response.headers["Cache-Control"] = "max-age=60"
        return response

    sync = cachetier.init_app(app, middleware=True)
    try:
        assert sync.manager.config.namespace == app.config["CACHETIER_NAMESPACE"]
        assert sync.manager.config.default_ttl == 120
        client = app.test_client()
        first, second = client.get("/page/3"), client.get("/page/3")
        assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
        assert first.json == second.json == {"square": 9, "last": 3}
        assert sync_square(3) == 9
        assert CALLS == [3]  # the view's call and this one share the default cache
        assert sync.manager.adapter_type == config.adapter
        with app.app_context():
            assert cachetier.cache is sync
    finally:
        sync.clear()
        cachetier.close(app)
    with pytest.raises(CacheClosedError):
        sync.get("last")
    with pytest.raises(ConfigError):
        sync_square(5)  # no default after close


def test_flask_unknown_or_invalid_settings_raise_config_error_naming_them() -> None:
    with pytest.raises(ConfigError, match="CACHETIER_REDIS_ULR"):
        config_from({"CACHETIER_REDIS_ULR": "redis://x"})
    with pytest.raises(ConfigError, match="CACHETIER_DEFAULT_TTL"):
        config_from({"CACHETIER_DEFAULT_TTL": -1, "OTHER": 1})
    with pytest.raises(ConfigError, match="unknown Cachetier options"):
        Cachetier(flask.Flask(__name__), midleware=True)


def test_flask_cache_is_closed_when_the_process_exits(tmp_path: pathlib.Path) -> None:
    script = textwrap.dedent(
        f"""
        import flask
        from cachetier.integrations.flask_ext import Cachetier

        app = flask.Flask("probe")
        app.config.update(CACHETIER_ADAPTER="sqlite", CACHETIER_DATABASE_URL="sqlite:///{tmp_path}/exit.sqlite3")
        sync = Cachetier(app).cache_of(app)
        sync.set("k", 1)
        original = sync.close

        def close():
            print("closed at exit")
            original()

        sync.close = close
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "closed at exit"
