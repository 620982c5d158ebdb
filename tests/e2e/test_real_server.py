"""The examples as real server processes (uvicorn; Flask's development server) over TCP on 127.0.0.1.

Each server is configured only through the environment, as a deployment
would be: the app factory builds its cache with `create_cache()`, on a
temporary SQLite file or the real Redis under a namespace of its own.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cachetier import CacheConfig, create_with_config
from servers import free_port


@dataclass(frozen=True)
class Server:
    base_url: str
    backend: str
    redis_url: str | None
    namespace: str


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOKEN = "e2e-server-token"
START_TIMEOUT = 20.0
CACHE_VARIABLES = ("CACHE_", "REDIS_", "DATABASE_URL", "ENVIRONMENT", "PURGE_TOKEN")


def server_command(module: str, port: int) -> list[str]:
    if module == "flask_app":
        return [sys.executable, "-m", "flask", "--app", "flask_app:create_app()", "run", "--port", str(port)]
    return [
        sys.executable, "-m", "uvicorn", f"{module}:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--app-dir", str(EXAMPLES),
    ]  # fmt: skip


def on_redis_namespace(redis_url: str, namespace: str, action: str, *args: str) -> None:
    """Call `action` on a separate cache (another process's view) sharing the server's Redis namespace."""

    async def run() -> None:
        async with create_with_config(CacheConfig(adapter="redis", redis_url=redis_url, namespace=namespace)) as cache:
            await getattr(cache, action)(*args)

    asyncio.run(run())


@pytest.fixture(
    params=[
        ("starlette_app", "sqlite"),
        ("starlette_app", "redis"),
        ("fastapi_app", "sqlite"),
        ("flask_app", "sqlite"),
    ],
    ids=lambda param: "-".join(param),
)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """An example serving on a free port; stopped (terminate, wait) afterwards."""
    module, backend = request.param
    env = {name: value for name, value in os.environ.items() if not name.startswith(CACHE_VARIABLES)}
    env.update(PURGE_TOKEN=TOKEN, PYTHONPATH=str(EXAMPLES), CACHE_NAMESPACE=f"e2e_{uuid.uuid4().hex[:12]}")
    redis_url = None
    if backend == "redis":
        redis_url = request.getfixturevalue("redis_url")
        env.update(REDIS_URL=redis_url, CACHE_ENVIRONMENT="production")
    else:
        env.update(CACHE_DATABASE_URL=f"sqlite:///{tmp_path / 'cache.sqlite3'}")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            server_command(module, port), cwd=EXAMPLES, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"{module} exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{base_url}/health", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{module} did not answer within {START_TIMEOUT} s:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield Server(base_url, backend, redis_url, env["CACHE_NAMESPACE"])
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if redis_url is not None:
            on_redis_namespace(redis_url, env["CACHE_NAMESPACE"], "clear")


@pytest.mark.slow
def test_real_server_miss_hit_write_and_purge(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        health = client.get("/health").json()
        assert (health["status"], health["adapter"]) == ("healthy", server.backend)

        first = client.get("/users/1")
        second = client.get("/users/1")
        assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
        assert second.content == first.content
        assert len(second.headers.get_list("date")) == 1  # the server's own; the cache adds no second one

        assert client.put("/users/1", json={"name": "Ada L."}).status_code == 200
        renamed = client.get("/users/1")
        assert (renamed.headers["x-cache"], renamed.json()["name"]) == ("MISS", "Ada L.")
        assert client.get("/users/1").headers["x-cache"] == "HIT"

        purge_path = "/_cache/purge"  # the path the README shows; the one with a slash answers too
        assert client.post(purge_path, json={"tags": ["users"]}).status_code == 401  # not a 307 to ".../purge/"
        assert client.post(purge_path + "/", json={"tags": ["users"]}).status_code == 401
        purged = client.post(purge_path, json={"tags": ["users"]}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert (purged.status_code, purged.json()["tags"]) == (200, ["users"])
        after = client.get("/users/1")
        assert (after.headers["x-cache"], after.json()["name"]) == ("MISS", "Ada L.")


def test_flask_app_owning_its_cache_closes_it_cleanly_at_interpreter_exit(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith(CACHE_VARIABLES)}
    env.update(PURGE_TOKEN=TOKEN, PYTHONPATH=str(EXAMPLES), CACHE_DATABASE_URL=f"sqlite:///{tmp_path / 'c.sqlite3'}")
    script = (
        "import logging, flask_app\n"
        "logging.basicConfig()\n"
        "app = flask_app.create_app()\n"
        "assert app.test_client().get('/users/1').status_code == 200\n"
    )  # create_app() registered cache.close with atexit; the process now just exits
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "failed" not in done.stderr, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("server", [("starlette_app", "redis")], indirect=True, ids=["starlette_app-redis"])
def test_tag_invalidated_in_another_process_reaches_the_servers_l1_over_redis(server: Server) -> None:
    assert server.redis_url is not None
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        client.get("/posts/1")
        assert client.get("/posts/1").headers["x-cache"] == "HIT"
        on_redis_namespace(server.redis_url, server.namespace, "invalidate_by_tag", "post:1")
        # Redis publishes the invalidation; the server drops its L1 copy when the notice arrives.
        deadline = time.monotonic() + 2
        seen = client.get("/posts/1").headers["x-cache"]
        while seen == "HIT" and time.monotonic() < deadline:
            time.sleep(0.02)
            seen = client.get("/posts/1").headers["x-cache"]
        assert seen == "MISS"
