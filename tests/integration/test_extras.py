"""A missing optional driver is reported as the extra to install, and the SQLite default needs none.

Each case runs in a fresh interpreter where the driver is made unimportable
(`sys.modules[name] = None`, which is how Python spells "not installed").
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap

import pytest

HIDE = "import sys\nfor _name in {hidden!r}:\n    sys.modules[_name] = None\n"


def _run(code: str, hidden: tuple[str, ...], tmp_path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    script = HIDE.format(hidden=hidden) + textwrap.dedent(code)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )


def test_default_sqlite_cache_works_without_redis_asyncpg_or_web_frameworks(tmp_path: pathlib.Path) -> None:
    code = """
    import asyncio, sys
    import cachetier, cachetier.sync, cachetier.integrations.decorators, cachetier.integrations.patterns

    async def main():
        async with cachetier.create_cache() as cache:
            await cache.set("k", {"v": 1}, tags=["t"])
            assert await cache.get("k") == {"v": 1}
            print(cache.adapter_type)

    asyncio.run(main())
    """
    result = _run(code, ("redis", "asyncpg", "hiredis", "starlette", "fastapi", "flask", "httpx"), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sqlite"


@pytest.mark.parametrize(
    ("settings", "extra"),
    [
        ({"adapter": "redis", "redis_url": "redis://127.0.0.1:6379/0"}, "redis"),
        ({"environment": "production", "redis_url": "redis://127.0.0.1:6379/0"}, "redis"),
        ({"adapter": "postgres", "database_url": "postgresql://postgres@127.0.0.1/test"}, "postgres"),
        ({"database_url": "postgresql://postgres@127.0.0.1/test"}, "postgres"),
    ],
)
def test_configuring_a_backend_whose_driver_is_missing_raises_naming_the_extra(
    settings: dict[str, str], extra: str, tmp_path: pathlib.Path
) -> None:
    code = f"""
    import cachetier
    try:
        cachetier.create_cache(**{settings!r})
    except cachetier.MissingDependencyError as exc:
        assert isinstance(exc, cachetier.ConfigError) and isinstance(exc, ImportError)
        print(exc)
    else:
        raise SystemExit("no error")
    """
    result = _run(code, ("redis", "asyncpg"), tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    assert f"pip install 'cachetier[{extra}]'" in result.stdout


def test_create_for_testing_on_postgres_without_asyncpg_names_the_extra(tmp_path: pathlib.Path) -> None:
    code = """
    import cachetier
    try:
        cachetier.create_for_testing(cachetier.CacheConfig(database_url="postgresql://postgres@127.0.0.1/test"))
    except cachetier.MissingDependencyError as exc:
        print(exc)
    """
    result = _run(code, ("asyncpg",), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "pip install 'cachetier[postgres]'" in result.stdout


def test_missing_fallback_driver_is_skipped_like_an_unreachable_backend(tmp_path: pathlib.Path) -> None:
    # auto in production: Redis is tried first and does not answer; the PostgreSQL fallback has no driver,
    # so it is skipped like an unreachable backend and memory serves.
    code = """
    import asyncio, cachetier

    async def main():
        cache = cachetier.create_cache(
            environment="production",
            redis_url="redis://127.0.0.1:1/0",
            database_url="postgresql://postgres@127.0.0.1/test",
        )
        async with cache:
            await cache.set("k", 1)
            print(cache.adapter_type, "|", cache.selection_reason)

    asyncio.run(main())
    """
    result = _run(code, ("asyncpg",), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("memory |")
    assert "pip install 'cachetier[postgres]'" in result.stdout
