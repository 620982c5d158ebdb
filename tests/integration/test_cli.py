"""The `cachetier` command, run as a subprocess against the real SQLite file and Redis server."""

from __future__ import annotations

import json
import os
import pathlib
import pty
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator

import pytest

from cachetier import CacheConfig, CacheManager, create_with_config

BIN = pathlib.Path(sys.executable).parent


def cli(env: dict[str, str], *args: str, script: bool = False) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "cachetier")] if script else [sys.executable, "-m", "cachetier"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60, env=env)


def clean_env(tmp_path: pathlib.Path, **settings: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CACHE_", "REDIS_")) and name not in {"DATABASE_URL", "ENVIRONMENT"}
    }
    env.update({"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "xdg")}, **settings)
    return env


@pytest.fixture(params=["sqlite", "redis"])
async def target(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> AsyncIterator[tuple[CacheManager, dict[str, str]]]:
    """A cache seeded through the library, and the environment that points the command at the same data."""
    namespace = f"cli_{uuid.uuid4().hex[:10]}"
    if request.param == "redis":
        settings = {"CACHE_ADAPTER": "redis", "REDIS_URL": request.getfixturevalue("redis_url")}
        config = CacheConfig(adapter="redis", redis_url=settings["REDIS_URL"], namespace=namespace)
    else:
        url = f"sqlite:///{tmp_path / 'cache.sqlite3'}"
        settings = {"CACHE_ADAPTER": "sqlite", "CACHE_DATABASE_URL": url}
        config = CacheConfig(adapter="sqlite", database_url=url, namespace=namespace)
    cache = create_with_config(config)
    await cache.set("user:1", {"name": "Ann"}, tags=["users"])
    await cache.set("user:2", {"name": "Bo"}, tags=["users"])
    await cache.set("page:1", "<p>", tags=["pages"])
    await cache.set("other", 1, namespace=f"{namespace}_b")
    yield cache, clean_env(tmp_path, CACHE_NAMESPACE=namespace, **settings)
    await cache.clear()
    await cache.clear(namespace=f"{namespace}_b")
    await cache.close()


async def test_get_prints_the_stored_value_and_exits_1_when_absent(target: tuple[CacheManager, dict[str, str]]) -> None:
    _, env = target
    found = cli(env, "get", "user:1")
    assert (found.returncode, json.loads(found.stdout)) == (0, {"name": "Ann"})
    as_json = cli(env, "get", "user:1", "--json")
    assert json.loads(as_json.stdout) == {"key": "user:1", "found": True, "value": {"name": "Ann"}}
    absent = cli(env, "get", "nope")
    assert (absent.returncode, absent.stdout) == (1, "")
    assert "not found" in absent.stderr
    assert json.loads(cli(env, "--json", "get", "nope").stdout)["found"] is False


async def test_delete_invalidate_and_clear_change_what_the_library_sees(
    target: tuple[CacheManager, dict[str, str]],
) -> None:
    cache, env = target
    deleted = cli(env, "--json", "delete", "page:1")
    assert (deleted.returncode, json.loads(deleted.stdout)) == (0, {"key": "page:1", "deleted": True})
    invalidated = cli(env, "--json", "invalidate", "users", "nothing-tagged")
    assert invalidated.returncode == 0
    assert json.loads(invalidated.stdout)["removed"] >= 2
    fresh = create_with_config(cache.config)  # no L1 copies: it reads what the command left in L2
    try:
        assert await fresh.mget(["user:1", "user:2", "page:1"]) == {}
    finally:
        await fresh.close()

    await cache.set("left", 1)
    other = f"{cache.config.namespace}_b"
    cleared = cli(env, "clear", "--namespace", other, "--json")
    assert json.loads(cleared.stdout) == {"namespace": other, "removed": 1}
    assert json.loads(cli(env, "--json", "get", "left").stdout)["found"] is True  # own namespace untouched
    assert json.loads(cli(env, "--json", "clear").stdout)["removed"] == 1
    assert json.loads(cli(env, "--json", "get", "left").stdout)["found"] is False


async def test_stats_as_table_and_json(target: tuple[CacheManager, dict[str, str]]) -> None:
    _, env = target
    table = cli(env, "stats")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == ["adapter", env["CACHE_ADAPTER"]]
    document = json.loads(cli(env, "stats", "--json").stdout)
    assert document["adapter"] == env["CACHE_ADAPTER"]
    assert set(document) >= {"l1", "l2", "combined"}


async def test_health_is_0_when_the_configured_backend_answers(target: tuple[CacheManager, dict[str, str]]) -> None:
    _, env = target
    result = cli(env, "health", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "healthy"


def test_health_is_1_when_the_configured_redis_does_not_answer(tmp_path: pathlib.Path) -> None:
    env = clean_env(
        tmp_path,
        CACHE_ADAPTER="redis",
        REDIS_URL="redis://127.0.0.1:1/0",
        CACHE_DATABASE_URL=f"sqlite:///{tmp_path / 'c.sqlite3'}",
    )
    degraded = cli(env, "--json", "health")
    assert (degraded.returncode, json.loads(degraded.stdout)["status"]) == (1, "degraded")


def test_with_no_backend_answering_health_is_2_and_commands_refuse(tmp_path: pathlib.Path) -> None:
    # auto in production: Redis, then PostgreSQL, then only this process's memory.
    env = clean_env(
        tmp_path,
        CACHE_ENVIRONMENT="production",
        REDIS_URL="redis://127.0.0.1:1/0",
        CACHE_DATABASE_URL="postgresql://postgres@127.0.0.1:1/test",
    )
    unhealthy = cli(env, "health")
    assert unhealthy.returncode == 2
    assert "unhealthy" in unhealthy.stdout
    assert "Traceback" not in unhealthy.stderr
    cleared = cli(env, "clear")
    assert (cleared.returncode, cleared.stdout) == (1, "")
    assert "no configured backend answered" in cleared.stderr


@pytest.mark.parametrize(
    "args",
    [[], ["bogus"], ["get"], ["invalidate"], ["clear", "--namespace"], ["stats", "--wat"], ["get", "a", "b"]],
)
def test_bad_arguments_print_usage_and_exit_2_without_traceback(args: list[str], tmp_path: pathlib.Path) -> None:
    result = cli(clean_env(tmp_path, CACHE_ADAPTER="memory"), *args)
    assert result.returncode == 2
    assert "usage: cachetier" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_configuration_and_bad_key_exit_2_with_one_line(tmp_path: pathlib.Path) -> None:
    bad_env = cli(clean_env(tmp_path, CACHE_ADAPTER="floppy"), "stats")
    assert bad_env.returncode == 2
    assert bad_env.stderr.startswith("cachetier: CACHE_ADAPTER='floppy' is invalid")
    assert "Traceback" not in bad_env.stderr
    bad_key = cli(clean_env(tmp_path, CACHE_ADAPTER="memory"), "get", "k" * 5000)
    assert bad_key.returncode == 2
    assert len(bad_key.stderr.strip().splitlines()) == 1


def test_console_script_is_installed_and_answers_help(tmp_path: pathlib.Path) -> None:
    if not (BIN / "cachetier").exists():
        pytest.skip("console script not installed in this environment (re-run pip install -e .)")
    result = cli(clean_env(tmp_path), "--help", script=True)
    assert result.returncode == 0
    for command in ("stats", "health", "get", "delete", "invalidate", "clear"):
        assert command in result.stdout


def test_clear_shows_elapsed_time_on_a_terminal_only(tmp_path: pathlib.Path) -> None:
    env = clean_env(
        tmp_path, CACHE_ADAPTER="sqlite", CACHE_DATABASE_URL=f"sqlite:///{tmp_path / 'p.sqlite3'}", CACHE_NAMESPACE="p"
    )
    piped = cli(env, "clear")
    assert "done in" not in piped.stderr
    controller, terminal = pty.openpty()
    try:
        try:
            result = subprocess.run(
                [sys.executable, "-m", "cachetier", "clear"],
                stdout=subprocess.PIPE,
                stderr=terminal,
                env=env,
                timeout=60,
            )
        finally:
            os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert result.returncode == 0
    assert "clear in 'p': done in" in shown.decode()
    assert result.stdout.decode().split() == ["namespace", "p", "removed", "0"]
